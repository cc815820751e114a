#!/bin/sh
# First start of the compose PostgreSQL: one login role per service, with only the right to
# connect; the migrations jobs (migrate-*) grant each its own schema's data rights, nothing more.
set -eu
for service in billing accounts payments; do
  var="POSTGRES_$(echo "$service" | tr a-z A-Z)_PASSWORD"
  password=$(printenv "$var")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="aiapi_$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE aiapi TO :"role";
SQL
done
# Nobody but the owner creates anything in public.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
