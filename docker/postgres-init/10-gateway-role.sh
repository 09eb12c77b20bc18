#!/bin/sh
# Run by the postgres image once, when its volume is first initialised (docker-compose.yml mounts this
# folder on /docker-entrypoint-initdb.d): the login the gateway serves as. POSTGRES_USER owns the
# tables (the gateway migrates as it); whatisup_gateway only reads and writes rows, so it cannot alter
# the audit log or disable its trigger. The password is passed as a psql variable, quoted by psql.
set -eu
psql -v ON_ERROR_STOP=1 -v password="$WHATISUP_GATEWAY_DB_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE whatisup_gateway LOGIN PASSWORD :'password';
SQL
