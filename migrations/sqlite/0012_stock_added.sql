-- When each SKU was first set: the hub's filter of known SKUs reads the SKUs
-- added since its last refresh (hub/src/orders/known.rs). SKUs set before
-- this migration count as added at 0, so a filter's first load reads them.
ALTER TABLE stock ADD COLUMN added_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX stock_by_added ON stock (added_at, sku);
