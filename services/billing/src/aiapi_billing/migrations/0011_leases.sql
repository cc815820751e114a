-- Admission leases: money held for an edge replica (counted in accounts.holds like a hold) and a
-- slice of the plan's rate limits, against which the edge admits one account's requests locally.
-- The rules are in leasing.py; leases.py grants, tops up and closes, settlement releases.
CREATE TABLE leases (
    lease_id          text PRIMARY KEY,
    account_id        text NOT NULL REFERENCES accounts (account_id),
    edge_id           text NOT NULL,
    plan              text NOT NULL,
    granted           bigint NOT NULL,          -- money put on hold in total, top-ups included
    open_amount       bigint NOT NULL,          -- still held: part of accounts.holds
    requests          bigint NOT NULL CHECK (requests >= 0),   -- requests/min slice taken
    tokens            bigint NOT NULL CHECK (tokens >= 0),     -- tokens/min slice taken
    admitted          bigint CHECK (admitted >= 0),            -- NULL until closed
    reserved          bigint CHECK (reserved >= 0),            -- NULL until closed
    settled_reserved  bigint NOT NULL DEFAULT 0 CHECK (settled_reserved >= 0),
    settled_count     bigint NOT NULL DEFAULT 0 CHECK (settled_count >= 0),
    state             text NOT NULL DEFAULT 'open'
                      CHECK (state IN ('open', 'closed', 'settled', 'expired')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    admit_until       timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    closed_at         timestamptz,
    CHECK (0 <= open_amount AND open_amount <= granted),
    -- Only a live lease holds money; the edge's report exists exactly when it closed it.
    CHECK (state IN ('open', 'closed') OR open_amount = 0),
    CHECK ((state = 'open') = (admitted IS NULL AND reserved IS NULL) OR state = 'expired')
);
-- The sweeper's scan, and the auditor's and the account's sums of what live leases hold.
CREATE INDEX leases_live_expiry_idx ON leases (expires_at) WHERE state IN ('open', 'closed');
CREATE INDEX leases_account_live_idx ON leases (account_id) WHERE state IN ('open', 'closed');
