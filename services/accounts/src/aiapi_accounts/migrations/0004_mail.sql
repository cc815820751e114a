-- Account mail (docs/accounts.md "Email"). Accounts that existed before are taken as verified;
-- a sign-up made while verification is required starts unverified (NULL).
ALTER TABLE accounts ADD COLUMN email_verified_at timestamptz;
UPDATE accounts SET email_verified_at = created_at;

-- One-time links sent by mail: email verification and password reset. Only the SHA-256 of the
-- token is kept; a token is used once, expires, and a newer one of the same purpose supersedes it.
CREATE TABLE email_tokens (
    token_hash text PRIMARY KEY,
    account_id text NOT NULL REFERENCES accounts (id),
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_tokens_account_idx ON email_tokens (account_id, purpose);

-- Mail waiting to be sent: written in the request's transaction, sent by a background task so
-- that a slow or absent SMTP server never holds a request. A row is claimed by moving its
-- next_attempt_at past the send (a lease), deleted once the server accepted it, rescheduled with
-- a growing delay when it did not, and marked given_up after the last attempt.
CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    given_up_at     timestamptz
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE given_up_at IS NULL;
