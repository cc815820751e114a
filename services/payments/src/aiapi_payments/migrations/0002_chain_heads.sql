-- The newest head each watcher saw, so a listing shows live confirmations for every deposit
-- (the records themselves stop changing once credited).
CREATE TABLE chain_heads (
    network    text        PRIMARY KEY CHECK (network IN ('ethereum', 'bitcoin')),
    head       bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
