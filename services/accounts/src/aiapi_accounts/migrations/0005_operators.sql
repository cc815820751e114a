-- Named operators (issue 17, "Accountability"): who may use the operator listener, with which
-- role, by password (the console) or by per-operator API tokens; and the audit log of every
-- write made through that listener. The bootstrap token (AIAPI_ADMIN_TOKEN) is no row here: it
-- is the built-in identity that creates the first operators.

CREATE TABLE operators (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL,                 -- normalised (trimmed, lower case)
    role          text NOT NULL CHECK (role IN ('admin', 'support')),
    password_hash text,                          -- argon2id; NULL: tokens only, no console
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,                 -- the acting operator's id
    disabled_at   timestamptz
);
CREATE UNIQUE INDEX operators_email_key ON operators (email);

CREATE TABLE operator_tokens (
    id           text PRIMARY KEY,
    operator_id  text NOT NULL REFERENCES operators (id),
    token_hash   text NOT NULL UNIQUE,           -- sha256 hex; the token is shown once, never kept
    name         text NOT NULL,
    hint         text NOT NULL,                  -- the token's last characters
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX operator_tokens_operator_idx ON operator_tokens (operator_id);

CREATE TABLE operator_sessions (
    id           text PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,           -- sha256 hex of the cookie value
    operator_id  text NOT NULL REFERENCES operators (id),
    csrf_token   text NOT NULL,
    user_agent   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX operator_sessions_operator_idx ON operator_sessions (operator_id);

-- Append-only: one row per write through the operator listener (refused ones too), kept in
-- PostgreSQL so that no event-stream retention ever drops it. Operator id and name are copied,
-- not referenced: the entry must read the same after the operator is renamed or disabled.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    operator_id   text NOT NULL,
    operator_name text NOT NULL,
    source        text NOT NULL,                 -- the client address (AIAPI_TRUSTED_PROXIES)
    method        text NOT NULL,
    route         text NOT NULL,                 -- the route template, /admin/v1/accounts/{id}
    target        jsonb NOT NULL,                -- the path parameters (and a created id)
    account_id    text,                          -- the account acted on, when there is one
    status        integer NOT NULL,              -- the answer's HTTP status
    summary       jsonb NOT NULL,                -- the body with every secret replaced
    reason        text
);
CREATE INDEX audit_log_account_idx ON audit_log (account_id, id);
CREATE INDEX audit_log_operator_idx ON audit_log (operator_id, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
