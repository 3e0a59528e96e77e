-- Release 1.10 (after 1.9: Flyway compares versions as numbers, not text).
-- Needs orders.status from V1.9.
CREATE INDEX orders_status_idx ON orders (status);
