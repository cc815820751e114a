-- Plans, meter prices and accounts' own terms as effective-dated data: each row is one version,
-- in force from ``effective_from`` until the next version of the same name. Billing seeds Basic,
-- Pro and the shipped meters once; operators add versions at run time. A request is priced and
-- limited by the versions in force when it started, so a new version (which never starts in the
-- past) cannot re-price a request already admitted. Every change bumps the catalogue version, so
-- the publisher puts it in KV for the edges within a second.

-- Plan names are the operator's now (validated as the catalogue's PLAN_ID_PATTERN).
ALTER TABLE accounts DROP CONSTRAINT accounts_plan_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_plan_check CHECK (plan ~ '^[a-z][a-z0-9-]{0,31}$');

CREATE TABLE plans (
    plan                text NOT NULL CHECK (plan ~ '^[a-z][a-z0-9-]{0,31}$'),
    effective_from      timestamptz NOT NULL,
    display_name        text NOT NULL CHECK (display_name <> ''),
    price_nano          bigint NOT NULL CHECK (price_nano >= 0),
    requests_per_minute bigint NOT NULL CHECK (requests_per_minute > 0),
    tokens_per_minute   bigint NOT NULL CHECK (tokens_per_minute > 0),
    discount_bps        integer NOT NULL CHECK (discount_bps BETWEEN 0 AND 10000),
    choosable           boolean NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan, effective_from)
);

CREATE TABLE meter_prices (
    meter          text NOT NULL,
    effective_from timestamptz NOT NULL,
    usd_per_unit   bigint NOT NULL CHECK (usd_per_unit >= 0),  -- nano-USD per unit
    input_bps      integer NOT NULL CHECK (input_bps >= 0),
    output_bps     integer NOT NULL CHECK (output_bps >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter, effective_from)
);

-- An account's own limits and discount over its plan's (NULL: the plan's).
CREATE TABLE account_terms (
    account_id          text NOT NULL,
    effective_from      timestamptz NOT NULL,
    requests_per_minute bigint CHECK (requests_per_minute > 0),
    tokens_per_minute   bigint CHECK (tokens_per_minute > 0),
    discount_bps        integer CHECK (discount_bps BETWEEN 0 AND 10000),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, effective_from)
);

CREATE TRIGGER plans_changed AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER meter_prices_changed AFTER INSERT OR UPDATE OR DELETE ON meter_prices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER account_terms_changed AFTER INSERT OR UPDATE OR DELETE ON account_terms
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
