-- The live catalogue: what is sold (models and aliases), beside the price table. Billing
-- publishes it to KV (aiapi_catalogue) for the edge; any change bumps one version number, so
-- the publisher only has to compare versions, whichever process (service, CLI, psql) changed it.
CREATE TABLE catalogue_models (
    id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]*$'),
    display_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    context_window integer NOT NULL CHECK (context_window > 0),
    max_output_tokens integer NOT NULL CHECK (max_output_tokens > 0),
    traits jsonb NOT NULL DEFAULT '{}'::jsonb,
    on_sale boolean NOT NULL DEFAULT true
);

CREATE TABLE catalogue_aliases (
    alias text PRIMARY KEY,
    target text NOT NULL REFERENCES catalogue_models (id),
    CHECK (alias <> target)
);

CREATE TABLE catalogue_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL
);
INSERT INTO catalogue_version (version) VALUES (1);

CREATE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT  -- the billing schema, whoever fires the trigger
AS $$
BEGIN
    UPDATE catalogue_version SET version = version + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER catalogue_models_changed AFTER INSERT OR UPDATE OR DELETE ON catalogue_models
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER catalogue_aliases_changed AFTER INSERT OR UPDATE OR DELETE ON catalogue_aliases
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER prices_changed AFTER INSERT OR UPDATE OR DELETE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
