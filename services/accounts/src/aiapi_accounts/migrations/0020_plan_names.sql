-- Plans are data (billing's effective-dated plan table): an account's plan is any plan name the
-- operator created, shaped as the catalogue's PLAN_ID_PATTERN; that it exists is checked when it
-- is set (the operator API asks billing).
ALTER TABLE accounts DROP CONSTRAINT accounts_plan_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_plan_check CHECK (plan ~ '^[a-z][a-z0-9-]{0,31}$');
