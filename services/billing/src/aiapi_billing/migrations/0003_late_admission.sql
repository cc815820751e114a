-- A late admission: the edge waits for admission only briefly (then it goes on within its offline
-- allowance and still records the usage), so under load billing may answer an admission after
-- that request's usage was already settled. admit_request (0002) would then take a hold that no
-- usage event is left to release, holding the customer's money until the hold expired. This
-- version admits such a request without a hold; everything else is as in 0002.

CREATE OR REPLACE FUNCTION admit_request(
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
    -- Already settled: the admission is a retry that arrived after the usage (the edge gave up
    -- waiting and went on within its offline allowance). A hold now would never be released
    -- before it expired; the request is paid for, so admit it without one.
    IF EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = p_request_id) THEN
        decision := 'admit';
        hold_amount := 0;
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
