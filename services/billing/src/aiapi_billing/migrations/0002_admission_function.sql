-- Admission in one statement: the edge's round trip to billing costs one round trip to PostgreSQL
-- (and one commit) instead of five. The rules are those of admission.py and ratelimit.py before
-- this migration; ratelimit.py stays as the readable specification and a test compares the two.

-- GCRA for requests/min and tokens/min (see ratelimit.py): every admitted unit pushes the
-- theoretical arrival time (TAT, microseconds) forward by 60 s / limit; a request is refused when
-- that would put a TAT more than one minute ahead of now, and is told when it may retry (1..60 s).
-- A refused request leaves both TATs where they were.
CREATE FUNCTION gcra_admit(
    p_rpm_tat_us bigint, p_tpm_tat_us bigint, p_now_us bigint,
    p_rpm bigint, p_tpm bigint, p_tokens bigint,
    OUT allowed boolean, OUT rpm_tat_us bigint, OUT tpm_tat_us bigint, OUT retry_after_s int
) LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    window_us constant bigint := 60000000;
    tokens bigint := least(p_tokens, p_tpm);  -- one request larger than a minute's is admitted alone
    excess_us bigint;
BEGIN
    -- (a + b - 1) / b is the ceiling for the non-negative operands used here.
    rpm_tat_us := greatest(p_rpm_tat_us, p_now_us) + (window_us + p_rpm - 1) / p_rpm;
    tpm_tat_us := greatest(p_tpm_tat_us, p_now_us) + (tokens * window_us + p_tpm - 1) / p_tpm;
    excess_us := greatest(rpm_tat_us, tpm_tat_us) - p_now_us - window_us;
    allowed := excess_us <= 0;
    retry_after_s := 0;
    IF NOT allowed THEN
        retry_after_s := least(60, greatest(1, (excess_us + 999999) / 1000000));
        rpm_tat_us := p_rpm_tat_us;
        tpm_tat_us := p_tpm_tat_us;
    END IF;
END $$;

-- One admission: lock the account row (creating an account not heard of yet: it is active), give
-- a retried request id the hold it already has, refuse a suspended account, apply the limits, then
-- take the hold under the same lock. Decisions: admit, account_inactive, rate_limited,
-- insufficient_balance. Runs as one statement, so it is one transaction in autocommit.
CREATE FUNCTION admit_request(
    p_request_id text, p_account_id text, p_model text, p_plan text, p_started_at timestamptz,
    p_hold bigint, p_tokens bigint, p_rpm bigint, p_tpm bigint, p_ttl_s bigint,
    OUT decision text, OUT hold_id text, OUT hold_amount bigint, OUT available bigint,
    OUT retry_after_s int
) LANGUAGE plpgsql AS $$
DECLARE
    acct accounts%ROWTYPE;
    rate record;
    existing record;
BEGIN
    SELECT * INTO acct FROM accounts WHERE account_id = p_account_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO accounts (account_id) VALUES (p_account_id) ON CONFLICT DO NOTHING;
        SELECT * INTO STRICT acct FROM accounts WHERE account_id = p_account_id FOR UPDATE;
    END IF;
    available := acct.credits - acct.debits - acct.holds;
    IF acct.status <> 'active' THEN
        decision := 'account_inactive';
        RETURN;
    END IF;
    SELECT h.hold_id, h.account_id, h.amount INTO existing
        FROM holds h WHERE h.request_id = p_request_id;
    IF FOUND THEN
        -- A retry of an admitted request (the edge timed out, or NATS redelivered the request).
        IF existing.account_id <> p_account_id THEN
            decision := 'account_inactive';  -- another account's request id: never share a hold
            RETURN;
        END IF;
        decision := 'admit';
        hold_id := existing.hold_id;
        hold_amount := existing.amount;
        RETURN;
    END IF;
    rate := gcra_admit(acct.rpm_tat_us, acct.tpm_tat_us,
                       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                       p_rpm, p_tpm, p_tokens);
    IF NOT rate.allowed THEN
        decision := 'rate_limited';
        retry_after_s := rate.retry_after_s;
        RETURN;
    END IF;
    IF available < p_hold THEN
        decision := 'insufficient_balance';
        RETURN;
    END IF;
    UPDATE accounts SET holds = holds + p_hold, rpm_tat_us = rate.rpm_tat_us,
                        tpm_tat_us = rate.tpm_tat_us, version = version + 1, updated_at = now()
        WHERE account_id = p_account_id;
    hold_id := 'hold_' || replace(gen_random_uuid()::text, '-', '');
    -- The account lock serialises one account's admissions; a request id reused by two accounts
    -- at once is the only conflict left, and it fails the whole statement (nothing is held).
    INSERT INTO holds (hold_id, request_id, account_id, model, plan, started_at, amount,
                       rate_tokens, expires_at)
        VALUES (hold_id, p_request_id, p_account_id, p_model, p_plan, p_started_at, p_hold,
                least(p_tokens, p_tpm), now() + make_interval(secs => p_ttl_s));
    decision := 'admit';
    hold_amount := p_hold;
    available := available - p_hold;
END $$;
