#!/usr/bin/env bash
# Services the test suite needs, started by the suite itself:
#   postgres_start DIR   -> a throwaway PostgreSQL 15 cluster on a Unix socket in DIR;
#                           exports OMNIRUN_TEST_POSTGRES_URL
#   postgres_stop DIR
#   schemathesis_install -> the schemathesis CLI from PyPI (only if missing)
#   openai_install       -> the official `openai` Python package from PyPI (the LLM proxy tests' client)
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
