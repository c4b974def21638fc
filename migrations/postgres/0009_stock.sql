-- Stock per SKU, and each order's reservation of it (issue: stock and refunds).
-- A SKU without a row is not stock-controlled.
CREATE TABLE stock (
    sku TEXT PRIMARY KEY,
    available BIGINT NOT NULL CHECK (available >= 0),
    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    updated_at BIGINT NOT NULL
);

-- One reservation per business key (an idempotent create reserves once):
-- `reserved` until the order ends, then `released` or `sold`, exactly once.
-- `lines` is the JSON array of the stock-controlled [sku, qty] pairs it holds.
CREATE TABLE stock_reservations (
    biz_type TEXT NOT NULL,
    biz_order_no TEXT NOT NULL,
    state TEXT NOT NULL,
    lines TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    settled_at BIGINT,
    PRIMARY KEY (biz_type, biz_order_no)
);

-- What the sweep looks at: the reservations still open, oldest first.
CREATE INDEX stock_reservations_open ON stock_reservations (created_at) WHERE state = 'reserved';
