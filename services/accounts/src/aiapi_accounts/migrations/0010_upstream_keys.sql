-- The upstream pool at runtime (docs/operations.md "Upstream keys"). An operator's key is stored
-- only sealed to the edges' public key (docs/security.md): accounts cannot read it back. A key of
-- the edges' AIAPI_UPSTREAM_API_KEYS has a row only once the operator changed it (weight, models,
-- enabled, removed); its id is "env-" and the key's fingerprint, as the edges report it.
CREATE TABLE upstream_keys (
    id           text PRIMARY KEY,
    source       text NOT NULL CHECK (source IN ('operator', 'env')),
    sealed_key   text,
    fingerprint  text,
    hint         text NOT NULL,
    base_url     text,
    organization text NOT NULL DEFAULT '',
    weight       integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    models       text[] NOT NULL DEFAULT '{}',
    enabled      boolean NOT NULL DEFAULT true,
    removed      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((source = 'operator') = (sealed_key IS NOT NULL AND fingerprint IS NOT NULL))
);
-- The same key cannot be added twice (its fingerprint: a digest, never the key).
CREATE UNIQUE INDEX upstream_keys_fingerprint_idx ON upstream_keys (fingerprint);
