-- Release 2: what an order holds.
CREATE TABLE order_lines (
    order_id bigint NOT NULL REFERENCES orders (id),
    line smallint NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line)
);
