-- A change to the catalogue (models, aliases, prices, plans, terms) also notifies the channel
-- aiapi_billing_catalogue when it commits: every replica listens (aiapi_billing.catalogue_listener)
-- and publishes at once, instead of polling the version several times a second.
CREATE OR REPLACE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT  -- the billing schema, whoever fires the trigger
AS $$
BEGIN
    UPDATE catalogue_version SET version = version + 1;
    PERFORM pg_notify('aiapi_billing_catalogue', '');
    RETURN NULL;
END;
$$;
