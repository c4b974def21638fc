-- The cold store of finished orders (`backend/src/archive/`): each order
-- whole, as JSON (the row with its items and packages, its history, its
-- track), under the keys its lookups read, and the mover's checkpoint.

CREATE TABLE archived_orders (
    id           TEXT PRIMARY KEY NOT NULL,
    customer_id  TEXT NOT NULL,
    biz_order_no TEXT NOT NULL,
    biz_type     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    archived_at  BIGINT NOT NULL,
    body         TEXT NOT NULL,
    history      TEXT NOT NULL,
    track        TEXT NOT NULL
);
CREATE INDEX archived_by_customer ON archived_orders (customer_id, created_at DESC, id DESC);
CREATE INDEX archived_by_biz ON archived_orders (biz_order_no, biz_type, created_at DESC, id DESC);

-- One row: the last batch written (its ids, so a mover that died before the
-- hot store's delete finishes it first) and the totals so far.
CREATE TABLE archive_checkpoint (
    id          INTEGER PRIMARY KEY NOT NULL,
    last_batch  TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    orders      BIGINT NOT NULL,
    batches     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
