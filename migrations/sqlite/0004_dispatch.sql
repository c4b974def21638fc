-- Dispatch timeouts: when the late-delivery alert was raised (once per order),
-- and indexes for the sweeps that back up the delay queue (orders by status
-- and age: unpaid, grabbed but not picked up, open in the pool).

ALTER TABLE orders ADD COLUMN late_alert_at INTEGER;

CREATE INDEX orders_by_status ON orders (status, updated_at);

CREATE INDEX orders_promised ON orders (promised_at)
    WHERE promised_at IS NOT NULL AND late_alert_at IS NULL
      AND status NOT IN ('delivered', 'cancelled', 'returned');
