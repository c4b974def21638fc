-- Orders, their idempotency records and the transactional outbox (SQLite dialect).

CREATE TABLE orders (
    id             TEXT PRIMARY KEY NOT NULL,
    biz_order_no   TEXT NOT NULL,
    biz_type       TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    rider_id       TEXT,
    status         TEXT NOT NULL,
    version        INTEGER NOT NULL,
    status_version INTEGER NOT NULL,
    pickup_lat     REAL NOT NULL,
    pickup_lon     REAL NOT NULL,
    dropoff_lat    REAL NOT NULL,
    dropoff_lon    REAL NOT NULL,
    promised_at    INTEGER,
    cancel_reason  TEXT,
    cancelled_by   TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- Ingest maps a rider's fix to the orders they hold.
CREATE INDEX orders_by_rider ON orders (rider_id) WHERE rider_id IS NOT NULL;

-- One row per (biz_order_no, biz_type): the unique key makes creation idempotent.
CREATE TABLE order_dedup (
    biz_order_no TEXT NOT NULL,
    biz_type     TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (biz_order_no, biz_type)
);

-- Events written in the same transaction as the order change; the relay moves
-- them into the event log and deletes them.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
