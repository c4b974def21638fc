-- Orders as logistics centres keep them: recipient and sender, notes and
-- metadata on the order row (JSON text), the goods and their packages in
-- tables of their own (read only when asked for), the durable status
-- history, the indexes of the lookups by customer and by business key, and
-- the leases of the order id generator's node ids.

ALTER TABLE orders ADD COLUMN recipient TEXT;
ALTER TABLE orders ADD COLUMN sender TEXT;
ALTER TABLE orders ADD COLUMN notes TEXT;
ALTER TABLE orders ADD COLUMN metadata TEXT;
ALTER TABLE orders ADD COLUMN item_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN package_count BIGINT NOT NULL DEFAULT 0;

CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_by_biz ON orders (biz_order_no, biz_type, created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id   TEXT NOT NULL,
    line       BIGINT NOT NULL,
    sku        TEXT NOT NULL,
    name       TEXT,
    qty        BIGINT NOT NULL,
    weight_g   BIGINT,
    volume_cm3 BIGINT,
    PRIMARY KEY (order_id, line)
);

-- A package's items are a JSON list of {sku, qty}: always read with it.
CREATE TABLE order_packages (
    order_id   TEXT NOT NULL,
    package_no TEXT NOT NULL,
    line       BIGINT NOT NULL,
    items      TEXT NOT NULL,
    carrier    TEXT,
    waybill    TEXT,
    status     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, package_no)
);

-- Every status change of an order and of its packages, written in the same
-- transaction as the change; never deleted from the hot store but by the archive.
CREATE TABLE order_history (
    id         BIGSERIAL PRIMARY KEY,
    order_id   TEXT NOT NULL,
    package_no TEXT,
    version    BIGINT NOT NULL,
    from_status TEXT,
    to_status  TEXT NOT NULL,
    ts         BIGINT NOT NULL,
    by         TEXT,
    reason     TEXT
);
CREATE INDEX order_history_by_order ON order_history (order_id, id);

-- Node ids of the order id generator, each leased by one process at a time,
-- with the high-water mark of the times it reserved (`backend/src/ids.rs`).
CREATE TABLE id_nodes (
    node       INTEGER PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    mark       BIGINT NOT NULL
);
