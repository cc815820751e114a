-- Identities: accounts, their sign-in secrets, sessions and API keys; plus the outbox that
-- carries events and key-record syncs to NATS after the transaction that caused them commits.

CREATE TABLE accounts (
    id            text PRIMARY KEY,
    email         text NOT NULL,             -- normalised (trimmed, lower case)
    password_hash text,                      -- argon2id; NULL for an operator-made account
    plan          text NOT NULL CHECK (plan IN ('basic', 'pro')),
    status        text NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- clock_timestamp(): the key records in KV carry it, and newer must win across replicas.
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id),
    key_hash     text NOT NULL UNIQUE,       -- sha256 hex of the key; the key itself is never kept
    name         text NOT NULL,
    hint         text NOT NULL,              -- "sk-cc-...WXYZ" (checksum characters only)
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

CREATE TABLE sessions (
    id           text PRIMARY KEY,           -- public id, for listing and revoking
    token_hash   text NOT NULL UNIQUE,       -- sha256 hex of the cookie value
    account_id   text NOT NULL REFERENCES accounts (id),
    csrf_token   text NOT NULL,
    user_agent   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_account_idx ON sessions (account_id);

-- One row per failed sign-in per scope ("email:<sha256>" and "ip:<address>").
CREATE TABLE sign_in_failures (
    scope text NOT NULL,
    at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_scope_idx ON sign_in_failures (scope, at);

-- Events to publish (deleted once JetStream acknowledged them).
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    event_id   text NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Accounts whose key records must be rewritten in KV (deleted once written).
CREATE TABLE kv_sync_queue (
    id         bigserial PRIMARY KEY,
    account_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
