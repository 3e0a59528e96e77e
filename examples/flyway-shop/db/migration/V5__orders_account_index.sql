-- Pending (this pull request): look up an account's orders by index.
-- CONCURRENTLY: writes to orders go on while the index builds.
CREATE INDEX CONCURRENTLY orders_account_id_idx ON orders (account_id);
