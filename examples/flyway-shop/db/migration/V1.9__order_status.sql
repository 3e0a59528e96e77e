-- Release 1.9: an order's status. A constant default needs no table rewrite.
ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';
