-- Deposit addresses: one per (account, network), each from its own derivation index, never shared.
CREATE TABLE addresses (
    account_id       text        NOT NULL,
    network          text        NOT NULL CHECK (network IN ('ethereum', 'bitcoin')),
    derivation_index integer     NOT NULL CHECK (derivation_index >= 0),
    address          text        NOT NULL,
    script           text,       -- Bitcoin: the output script (hex) that pays the address
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, network),
    UNIQUE (network, derivation_index),
    UNIQUE (network, address)
);

-- Deposits, keyed as the chains let us recognise them again after a reorg.
CREATE TABLE deposits (
    network       text        NOT NULL,
    asset         text        NOT NULL CHECK (asset IN ('USDT', 'ETH', 'BTC')),
    tx_hash       text        NOT NULL,
    position      integer     NOT NULL CHECK (position >= 0),
    account_id    text        NOT NULL,
    address       text        NOT NULL,
    amount        numeric(78, 0) NOT NULL CHECK (amount > 0),  -- base units (wei, sats, 1e-6 USDT)
    state         text        NOT NULL CHECK (state IN ('detected', 'confirmed', 'credited',
                                                       'orphaned', 'below_minimum', 'reversed')),
    first_seen_at timestamptz NOT NULL,
    block_number  bigint,
    block_hash    text,
    confirmations integer     NOT NULL DEFAULT 0,
    rate_nano_usd bigint,     -- per whole coin, at first sight; NULL: waiting for a rate
    rate_source   text,
    usd_nano      bigint,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deposit_id    text GENERATED ALWAYS AS
                      (network || ':' || asset || ':' || tx_hash || ':' || position::text) STORED,
    PRIMARY KEY (network, asset, tx_hash, position),
    UNIQUE (deposit_id)
);
CREATE INDEX deposits_by_account ON deposits (account_id, first_seen_at DESC);
CREATE INDEX deposits_open ON deposits (network, state)
    WHERE state IN ('detected', 'confirmed', 'below_minimum');

-- Each watcher's remembered blocks (ascending), written with the deposits they revealed.
CREATE TABLE cursors (
    name       text        PRIMARY KEY,
    blocks     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Quotes fetched from the price sources (pruned after a day).
CREATE TABLE quotes (
    id            bigserial   PRIMARY KEY,
    asset         text        NOT NULL,
    source        text        NOT NULL,
    rate_nano_usd bigint      NOT NULL CHECK (rate_nano_usd > 0),
    observed_at   timestamptz NOT NULL
);
CREATE INDEX quotes_recent ON quotes (asset, observed_at DESC);

-- Manual rates set by an operator: append-only, the audit trail of who set what and what it priced.
CREATE TABLE manual_rates (
    id             bigserial   PRIMARY KEY,
    asset          text        NOT NULL CHECK (asset IN ('ETH', 'BTC')),
    rate_nano_usd  bigint      NOT NULL CHECK (rate_nano_usd > 0),
    actor          text        NOT NULL,
    set_at         timestamptz NOT NULL,
    priced_deposits text[]     NOT NULL DEFAULT '{}'
);
CREATE INDEX manual_rates_newest ON manual_rates (asset, set_at DESC);

-- Events written in the transaction that changed the state, relayed to JetStream in id order.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    payload      bytea       NOT NULL,
    deposit_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
