-- A key-record sync names one key (its hash) when only that key changed (issue, revocation);
-- NULL keeps the old meaning: every record of the account (plan or status changed).
ALTER TABLE kv_sync_queue ADD COLUMN key_hash text;
