-- Order keys in creation order: the hub's filter of known order ids loads
-- from here at start and reads the orders created since, every few seconds
-- (hub/src/orders/known.rs).
CREATE INDEX orders_by_created ON orders (created_at, id);
