-- Every stored fix of an order's rider while the order was held: the trip, for replay.
-- The key makes writes idempotent: a point delivered twice is stored once.
CREATE TABLE track_points (
    order_id TEXT NOT NULL,
    ts       BIGINT NOT NULL,
    rider_id TEXT NOT NULL,
    lat      DOUBLE PRECISION NOT NULL,
    lon      DOUBLE PRECISION NOT NULL,
    speed    DOUBLE PRECISION,
    heading  DOUBLE PRECISION,
    PRIMARY KEY (order_id, ts)
);
