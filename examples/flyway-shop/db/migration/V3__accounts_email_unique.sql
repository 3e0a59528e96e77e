-- Release 3: one account per email; built without blocking sign-ups.
-- Flyway runs a file with CONCURRENTLY outside a transaction.
CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (lower(email));
