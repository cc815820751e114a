-- The operator's business report reads usage and ledger movements of a period across every
-- account; without these it would scan both tables whole. Each costs one more index entry per
-- settled record and per deposit or plan sale (usage transfers are not indexed by time: the
-- report reads revenue from the records, which the auditor proves equal to those transfers).
CREATE INDEX IF NOT EXISTS usage_records_started_idx ON usage_records (started_at);
CREATE INDEX IF NOT EXISTS transfers_booked_idx ON transfers (created_at)
    WHERE kind IN ('deposit', 'deposit_reversal', 'plan_purchase');
-- The console ranks accounts by spend over the last days: the rollup read by day.
CREATE INDEX IF NOT EXISTS usage_daily_day_idx ON usage_daily (day);
