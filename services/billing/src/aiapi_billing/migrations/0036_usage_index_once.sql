-- usage_records had two indexes led by (account_id, started_at): usage_records_daily_idx
-- (migration 0001) and usage_records_log_idx (account_id, started_at DESC, request_id DESC;
-- migration 0015). The second serves every query the first did (a B-tree is read in either
-- direction, and its third column only narrows further), so every settled record paid for one
-- index entry nobody needs: settlement writes a record per request.
DROP INDEX IF EXISTS usage_records_daily_idx;
