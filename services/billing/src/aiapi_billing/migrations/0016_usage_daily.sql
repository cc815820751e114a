-- Usage per account, UTC day, model and key, kept by the database as records are inserted: the
-- dashboard's charts and spend read a few hundred rows here instead of grouping a year of
-- usage_records on every page load. usage_records is append-only (nothing updates or deletes a
-- record), so counting inserts is enough. Settlement locks the accounts of a batch before it
-- inserts their records, so two batches never touch one account's rows here at the same time.
CREATE TABLE usage_daily (
    account_id             text NOT NULL,
    day                    date NOT NULL,
    model                  text NOT NULL,
    key_id                 text NOT NULL,
    requests               bigint NOT NULL,
    input_tokens           bigint NOT NULL,
    output_tokens          bigint NOT NULL,
    cache_read_tokens      bigint NOT NULL,
    cache_write_5m_tokens  bigint NOT NULL,
    cache_write_1h_tokens  bigint NOT NULL,
    thinking_tokens        bigint NOT NULL,
    cost                   bigint NOT NULL,
    PRIMARY KEY (account_id, day, model, key_id)
);

INSERT INTO usage_daily
SELECT account_id, (started_at AT TIME ZONE 'UTC')::date, model, key_id, count(*),
       sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_5m_tokens),
       sum(cache_write_1h_tokens), sum(thinking_tokens), sum(cost)
FROM usage_records GROUP BY 1, 2, 3, 4;

CREATE FUNCTION usage_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_daily AS d
    SELECT account_id, (started_at AT TIME ZONE 'UTC')::date, model, key_id, count(*),
           sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
           sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), sum(thinking_tokens), sum(cost)
    FROM inserted GROUP BY 1, 2, 3, 4
    ON CONFLICT (account_id, day, model, key_id) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens,
        cache_read_tokens = d.cache_read_tokens + EXCLUDED.cache_read_tokens,
        cache_write_5m_tokens = d.cache_write_5m_tokens + EXCLUDED.cache_write_5m_tokens,
        cache_write_1h_tokens = d.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
        thinking_tokens = d.thinking_tokens + EXCLUDED.thinking_tokens,
        cost = d.cost + EXCLUDED.cost;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_records_daily AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_add();
