-- An order's refund (JSON, domain/src/refund.rs), and whether it still waits:
-- the timeouts sweep retries the pending ones whose timer was lost.
ALTER TABLE orders ADD COLUMN refund TEXT;
ALTER TABLE orders ADD COLUMN refund_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX orders_refund_pending ON orders (updated_at) WHERE refund_pending = 1;
