-- When the order's share links were last revoked (Unix ms): share tokens
-- made at or before it are refused.

ALTER TABLE orders ADD COLUMN shares_revoked_at BIGINT;
