-- The customer's request log pages newest first by (started_at, request_id): one index serves
-- every page without a sort.
CREATE INDEX IF NOT EXISTS usage_records_log_idx
    ON usage_records (account_id, started_at DESC, request_id DESC);
