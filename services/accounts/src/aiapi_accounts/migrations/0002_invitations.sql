-- Invitations: how the owner of an operator-made account (no password) sets one and signs in.
-- Only the SHA-256 of the token is kept; a token is used once, expires, and a newer invitation
-- of the same account supersedes the older unused ones.

CREATE TABLE invitations (
    id            bigserial PRIMARY KEY,
    account_id    text NOT NULL REFERENCES accounts (id),
    token_hash    text NOT NULL UNIQUE,      -- sha256 hex of the token; the token is never kept
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    superseded_at timestamptz
);
CREATE INDEX invitations_account_idx ON invitations (account_id);
