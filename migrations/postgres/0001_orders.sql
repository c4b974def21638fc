-- Orders, their idempotency records and the transactional outbox (PostgreSQL dialect).
-- Mirrors migrations/sqlite/0001_orders.sql; the store contract tests hold both to one behaviour.

CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    biz_order_no   TEXT NOT NULL,
    biz_type       TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    rider_id       TEXT,
    status         TEXT NOT NULL,
    version        BIGINT NOT NULL,
    status_version BIGINT NOT NULL,
    pickup_lat     DOUBLE PRECISION NOT NULL,
    pickup_lon     DOUBLE PRECISION NOT NULL,
    dropoff_lat    DOUBLE PRECISION NOT NULL,
    dropoff_lon    DOUBLE PRECISION NOT NULL,
    promised_at    BIGINT,
    cancel_reason  TEXT,
    cancelled_by   TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Ingest maps a rider's fix to the orders they hold.
CREATE INDEX orders_by_rider ON orders (rider_id) WHERE rider_id IS NOT NULL;

-- One row per (biz_order_no, biz_type): the unique key makes creation idempotent.
CREATE TABLE order_dedup (
    biz_order_no TEXT NOT NULL,
    biz_type     TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (biz_order_no, biz_type)
);

-- Events written in the same transaction as the order change; the relay moves
-- them into the event log and deletes them. Per order, ids rise in commit order
-- (a change locks the order row before it inserts here), which the log's
-- origin check relies on.
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    order_id   TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
