-- Trips: the planned route (JSON points), the trip watcher's alert episodes
-- (JSON by kind) with a count of the open ones for the alerts list, the first
-- arrivals at pick-up and drop-off, and what ETA learns from finished trips.

ALTER TABLE orders ADD COLUMN route TEXT;
ALTER TABLE orders ADD COLUMN alerts TEXT;
ALTER TABLE orders ADD COLUMN open_alerts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN arrived_pickup_at BIGINT;
ALTER TABLE orders ADD COLUMN arrived_dropoff_at BIGINT;

CREATE INDEX orders_alerting ON orders (updated_at) WHERE open_alerts > 0;

CREATE TABLE trip_model (
    key TEXT PRIMARY KEY,
    value DOUBLE PRECISION NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
