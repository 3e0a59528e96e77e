//! Deterministic value generators for seeding and for query parameters.
