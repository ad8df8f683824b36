#!/usr/bin/env bash
# mmdebstrap --customize-hook for the sql template (runs on the host after playground's hook).
# Debian's postgresql-15 has created the cluster 15/main during the install. Here: a start
# script for the guest (the template's START), local connections only.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }
[[ -d "$root/etc/postgresql/15/main" ]] || { echo "customize.sh: cluster 15/main missing" >&2; exit 1; }

# a small machine: modest buffers, no TCP beyond loopback
cat >"$root/etc/postgresql/15/main/conf.d/omnirun.conf" <<'CONF'
# OmniRun sandbox defaults
listen_addresses = 'localhost'
shared_buffers = 64MB
max_connections = 50
CONF

mkdir -p "$root/usr/local/lib/omnirun"
cat >"$root/usr/local/lib/omnirun/start-postgres" <<'START'
#!/bin/bash
# Starts PostgreSQL 15 (the sql template's START, run as root before the snapshot) and makes
# the sandbox user a superuser role with a database of its own.
set -euo pipefail
install -d -o postgres -g postgres -m 2775 /run/postgresql
pg_ctlcluster 15 main start
until runuser -u postgres -- pg_isready -q; do sleep 0.2; done
if [[ "$(runuser -u postgres -- psql -Atqc "select 1 from pg_roles where rolname = 'user'")" != 1 ]]; then
  runuser -u postgres -- createuser --superuser user
  runuser -u postgres -- createdb --owner user user
fi
START
chmod 0755 "$root/usr/local/lib/omnirun/start-postgres"
