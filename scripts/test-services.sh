#!/usr/bin/env bash
# Services the test suite needs, started by the suite itself:
#   postgres_start DIR   -> a throwaway PostgreSQL 15 cluster on a Unix socket in DIR;
#                           exports OMNIRUN_TEST_POSTGRES_URL
#   postgres_stop DIR
#   schemathesis_install -> the schemathesis CLI from PyPI (only if missing)
#   openai_install       -> the official `openai` Python package from PyPI (the LLM proxy tests' client)
#   anthropic_install    -> the official `anthropic` Python package from PyPI (the Messages protocol tests' client)
#   cryptography_install -> Python's `cryptography` from PyPI (the e2ee tests' independent client)
# Source this file; the functions install Debian's postgresql if it is missing.

postgres_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}

postgres_start() {
  local dir="$1"
  if [[ -z "$(postgres_bin)" ]]; then
    echo "[test] installing postgresql (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
  fi
  local bin
  bin="$(postgres_bin)"
  rm -rf "$dir"
  mkdir -p "$dir/data" "$dir/socket"
  chown -R postgres:postgres "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" --auth=trust -U postgres >"$dir/initdb.log" 2>&1
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-k $dir/socket -c listen_addresses='' -c fsync=off" start >/dev/null
  export OMNIRUN_TEST_POSTGRES_URL="postgres://postgres@/postgres?host=$dir/socket"
  echo "[test] PostgreSQL running on $dir/socket"
}

postgres_stop() {
  local dir="$1" bin
  bin="$(postgres_bin)"
  [[ -n "$bin" && -d "$dir/data" ]] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

openai_install() {
  if ! python3 -c 'import openai' >/dev/null 2>&1; then
    echo "[test] installing openai (PyPI)"
    python3 -m pip install -q openai >/dev/null 2>&1 \
      || python3 -m pip install -q --break-system-packages openai >/dev/null
  fi
}

anthropic_install() {
  if ! python3 -c 'import anthropic' >/dev/null 2>&1; then
    echo "[test] installing anthropic (PyPI)"
    python3 -m pip install -q anthropic >/dev/null 2>&1 \
      || python3 -m pip install -q --break-system-packages anthropic >/dev/null
  fi
}

cryptography_install() {
  if ! python3 -c 'from cryptography.hazmat.primitives.ciphers.aead import AESGCM' >/dev/null 2>&1; then
    echo "[test] installing cryptography (PyPI)"
    python3 -m pip install -q cryptography >/dev/null 2>&1 \
      || python3 -m pip install -q --break-system-packages cryptography >/dev/null
  fi
}

schemathesis_install() {
  if ! command -v schemathesis >/dev/null 2>&1 && ! command -v st >/dev/null 2>&1; then
    echo "[test] installing schemathesis (PyPI)"
    pip install -q schemathesis >/dev/null
  fi
}

# Removes the network namespaces (with their devices) and the host nftables table of
# the server whose data directory is $1 (its sandboxes with internet access; see
# HostNetwork: the tag is the first 6 hex digits of FNV-1a 64 of "network|<dir>").
network_cleanup() {
  local tag ns
  tag=$(python3 -c 'import sys
h = 0xcbf29ce484222325
for b in ("network|" + sys.argv[1]).encode():
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print("%016x" % h)' "$1" | cut -c1-6)
  for ns in $(ls /run/netns 2>/dev/null | grep "^omnirun-$tag-" || true); do
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  nft delete table inet "omnirun_$tag" 2>/dev/null || true
}
