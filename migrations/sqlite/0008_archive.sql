-- The archive mover's read: finished orders by the age of their last change.
CREATE INDEX orders_finished ON orders (updated_at, id)
    WHERE status IN ('delivered', 'cancelled', 'returned');
