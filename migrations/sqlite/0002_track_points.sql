-- Every stored fix of an order's rider while the order was held: the trip, for replay.
-- The key makes writes idempotent: a point delivered twice is stored once.
CREATE TABLE track_points (
    order_id TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    rider_id TEXT NOT NULL,
    lat      REAL NOT NULL,
    lon      REAL NOT NULL,
    speed    REAL,
    heading  REAL,
    PRIMARY KEY (order_id, ts)
);
