-- A key-record sync names one key (its hash) when only that key changed (issue, revocation);
-- NULL keeps the old meaning: every record of the account (plan or status changed).
ALTER TABLE kv_sync_queue ADD COLUMN key_hash text;

-- Sign-in throttling with growing delays: one row per scope ("email:<sha256>", "ip:<address or
-- IPv6 /64>", "sign-up:<address>"), updated by a single upsert per attempt (atomic across
-- replicas). ``failures`` counts attempts that were let through and did not succeed.
DROP TABLE sign_in_failures;
CREATE TABLE sign_in_attempts (
    scope    text PRIMARY KEY,
    failures integer NOT NULL,
    last_at  timestamptz NOT NULL
);
CREATE INDEX sign_in_attempts_last_idx ON sign_in_attempts (last_at);
