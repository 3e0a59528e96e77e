//! Seeding: schema, deterministic rows over parallel binary COPY, after_seed
//! SQL, VACUUM (FREEZE, ANALYZE).
