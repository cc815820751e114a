-- Billing's ledger: integer nano-USD, double entry, append-only, idempotent by cause.

-- btree_gist lets one exclusion constraint combine "same model" (=) with "overlapping range" (&&).
-- It is a trusted extension (PostgreSQL 13+), so a database owner may create it without superuser.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

-- Billing's view of each customer account: running totals kept in the same transaction as every
-- transfer and hold, and the GCRA rate-limit state (theoretical arrival times, microseconds).
CREATE TABLE accounts (
    account_id   text PRIMARY KEY,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    plan         text NOT NULL DEFAULT 'basic' CHECK (plan IN ('basic', 'pro')),
    known        boolean NOT NULL DEFAULT false,
    credits      bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
    debits       bigint NOT NULL DEFAULT 0 CHECK (debits >= 0),
    holds        bigint NOT NULL DEFAULT 0 CHECK (holds >= 0),
    version      bigint NOT NULL DEFAULT 0,
    rpm_tat_us   bigint NOT NULL DEFAULT 0,
    tpm_tat_us   bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per money movement, from one ledger account to another ('cust:<id>', 'sys:revenue',
-- 'sys:deposits', 'sys:adjustments', 'sys:plan_sales'). Never updated, never deleted.
CREATE TABLE transfers (
    id             bigserial PRIMARY KEY,
    transfer_key   text NOT NULL UNIQUE,
    kind           text NOT NULL CHECK (kind IN ('usage', 'deposit', 'deposit_reversal',
                                                 'adjustment', 'plan_purchase')),
    account_id     text NOT NULL REFERENCES accounts (account_id),
    from_account   text NOT NULL,
    to_account     text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    balance_after  bigint NOT NULL,
    reference      text NOT NULL,
    memo           text NOT NULL DEFAULT '',
    actor          text NOT NULL DEFAULT 'billing',
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (from_account <> to_account),
    CHECK (from_account = 'cust:' || account_id OR to_account = 'cust:' || account_id)
);
CREATE INDEX transfers_account_idx ON transfers (account_id, id DESC);

CREATE FUNCTION transfers_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transfers are append-only: a correction is a new transfer';
END $$;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_are_append_only();

-- Reservations taken at admission; their open total equals accounts.holds.
CREATE TABLE holds (
    hold_id      text PRIMARY KEY,
    request_id   text NOT NULL UNIQUE,
    account_id   text NOT NULL REFERENCES accounts (account_id),
    model        text NOT NULL,
    plan         text NOT NULL,
    started_at   timestamptz NOT NULL,
    amount       bigint NOT NULL CHECK (amount >= 0),
    rate_tokens  bigint NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled', 'expired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    closed_at    timestamptz
);
CREATE INDEX holds_open_expiry_idx ON holds (expires_at) WHERE state = 'open';
CREATE INDEX holds_account_open_idx ON holds (account_id) WHERE state = 'open';

-- Prices in nano-USD per million tokens; one model's ranges never overlap.
CREATE TABLE prices (
    id                      bigserial PRIMARY KEY,
    model_id                text NOT NULL,
    effective               tstzrange NOT NULL CHECK (NOT isempty(effective)),
    input_nano_per_mtok     bigint NOT NULL CHECK (input_nano_per_mtok >= 0),
    output_nano_per_mtok    bigint NOT NULL CHECK (output_nano_per_mtok >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (model_id WITH =, effective WITH &&)
);

-- The priced record of each usage event; request_id (= event id) makes settlement exactly once.
CREATE TABLE usage_records (
    request_id              text PRIMARY KEY,
    account_id              text NOT NULL REFERENCES accounts (account_id),
    key_id                  text NOT NULL,
    model                   text NOT NULL,
    plan                    text NOT NULL,
    route                   text NOT NULL,
    outcome                 text NOT NULL,
    status_code             int NOT NULL,
    started_at              timestamptz NOT NULL,
    finished_at             timestamptz NOT NULL,
    input_tokens            bigint NOT NULL,
    output_tokens           bigint NOT NULL,
    cache_read_tokens       bigint NOT NULL,
    cache_write_5m_tokens   bigint NOT NULL,
    cache_write_1h_tokens   bigint NOT NULL,
    thinking_tokens         bigint NOT NULL,
    cost                    bigint NOT NULL CHECK (cost >= 0),
    price_id                bigint REFERENCES prices (id),
    price_effective_from    timestamptz,
    hold_id                 text,
    content_hash            text NOT NULL,
    settled_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_daily_idx ON usage_records (account_id, started_at);

-- The same event id with different content: kept for an operator, never billed.
CREATE TABLE usage_conflicts (
    id            bigserial PRIMARY KEY,
    request_id    text NOT NULL,
    content_hash  text NOT NULL,
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, content_hash)
);

-- Events written in the same transaction as the change they announce; a relay publishes them
-- with Nats-Msg-Id = event_id and deletes them after the stream acknowledged.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    subject     text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
