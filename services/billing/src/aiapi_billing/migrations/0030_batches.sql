-- Message Batches (docs/billing.md, "Batches"): one row per customer batch. The money held for
-- it is an ordinary row of ``holds`` (request_id = batch_id), so the open-holds invariant covers
-- it; its requests settle as ordinary usage records (request_id = batch_id || ':' || custom_id),
-- so each is billed once by the same key. ``items`` keeps, per custom_id, the model requested, the
-- model sold (the price follows it), and the request's estimated input, max_tokens and server
-- tools' worst case (the hold is their sum); a large batch's items arrive in chunks ('staging').
-- ``claimed_by``/``claimed_until`` are the tracker's lease: while it runs, no other edge replica
-- polls the batch (settlement is idempotent anyway; the lease only saves duplicate work).
CREATE TABLE batches (
    seq            bigserial UNIQUE,
    batch_id       text PRIMARY KEY,
    account_id     text NOT NULL REFERENCES accounts (account_id),
    key_id         text NOT NULL,
    plan           text NOT NULL,
    upstream_key   text NOT NULL DEFAULT '',
    upstream_id    text,
    state          text NOT NULL DEFAULT 'opening'
                   CHECK (state IN ('staging', 'opening', 'in_progress', 'ended', 'failed')),
    items          jsonb NOT NULL,
    hold_amount    bigint NOT NULL DEFAULT 0 CHECK (hold_amount >= 0),
    cost           bigint NOT NULL DEFAULT 0 CHECK (cost >= 0),
    billed_items   integer NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL,
    snapshot       jsonb,
    deleted        boolean NOT NULL DEFAULT false,
    claimed_by     text,
    claimed_until  timestamptz,
    next_poll_at   timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    settled_at     timestamptz
);
CREATE INDEX batches_account_idx ON batches (account_id, seq DESC) WHERE NOT deleted;
CREATE INDEX batches_due_idx ON batches (next_poll_at)
    WHERE state IN ('staging', 'opening', 'in_progress');
