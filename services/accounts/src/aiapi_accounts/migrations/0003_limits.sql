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

-- Fixed-window rate limits of the customer API ("writes:<account>", "deposit-addresses:<account>"):
-- one upsert per use, so the limit holds across replicas.
CREATE TABLE rate_windows (
    scope      text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    used       integer NOT NULL
);
CREATE INDEX rate_windows_started_idx ON rate_windows (started_at);

-- The deposit addresses payments gave each account (they are stable), answered from here once the
-- account's budget of requests to payments is spent. One per account, asset and network.
CREATE TABLE deposit_addresses (
    account_id text NOT NULL REFERENCES accounts (id),
    asset      text NOT NULL,
    network    text NOT NULL,
    address    text NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, asset, network)
);
