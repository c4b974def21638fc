-- The assigned rider's display name (customers see its first word) and the
-- pick-up time (customers see the rider's trail from then on), plus an index
-- for the operator view's list of orders still under way.

ALTER TABLE orders ADD COLUMN rider_name TEXT;
ALTER TABLE orders ADD COLUMN picked_up_at INTEGER;

CREATE INDEX orders_active ON orders (created_at)
    WHERE status NOT IN ('delivered', 'cancelled', 'returned');
