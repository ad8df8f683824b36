#!/usr/bin/env bash
# The SDK and CLI suites against one real `omnirun serve` (real microVMs) with the
# stand-in LLM upstream of scripts/testdata: the Python SDK (pytest, installed into a
# virtualenv as a user would), the TypeScript SDK (built with tsc, run by Node in its ESM
# and CommonJS builds), the `omni` CLI (the real binary; its interactive shell in tmux) and
# the unmodified PyPI `e2b` and `e2b-code-interpreter` SDKs through the server's E2B-compatible
# endpoint under /e2b (sdks/e2b-tests, pinned with hashes).
# Needs .build/debug/omnirun (or $OMNIRUN_BIN) and .build/debug/omni; scripts/test.sh runs it
# after the Swift suite.
#   SDK_SUITES="python typescript cli managed cluster e2b" (default: these six; "managed" is
#   the Claude Managed Agents worker of integrations/claude-managed-agents; "cluster" runs the
#   shared scenario through node 1 of three nodes on PostgreSQL; "e2b" the E2B SDKs' suite;
#   "public" runs the public clients, which need their git directories:
#   scripts/test-public-clients.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/opt/swift/usr/bin:$PATH
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
# shellcheck source=scripts/test-public-clients.sh
source scripts/test-public-clients.sh
suites="${SDK_SUITES:-python typescript cli managed cluster e2b}"
bin="$(realpath "${OMNIRUN_BIN:-.build/debug/omnirun}")"
cache="${OMNIRUN_CACHE_DIR:-$HOME/.cache/omnirun}"
base="${OMNIRUN_TEST_DATA_DIR:-$cache/test-data}"
data="$base/servers/sdk-$$"
rm -rf "$data"; mkdir -p "$data"
started=$(date +%s)
server=""; upstream=""
# The cluster suite's nodes and PostgreSQL (its socket path must stay short and reachable by
# the postgres user).
cluster_nodes=(); pg="/tmp/omr-sdk-pg-$$"
cleanup() {
  cluster_stop
  [[ -n "$server" ]] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  [[ -n "$upstream" ]] && { kill "$upstream" 2>/dev/null || true; wait "$upstream" 2>/dev/null || true; }
  for pid in $(pgrep -f "qemu-system-x86_64.*$data/" || true); do kill -9 "$pid" 2>/dev/null || true; done
  network_cleanup "$data"
  rm -rf "$data"
}
trap cleanup EXIT

port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The LLM upstream stand-in (the real protocols, chat completions, Messages and Responses, on a real socket).
upstream_key="upstream-$$"
upstream_port=$(port_of)
python3 scripts/testdata/fake-llm-upstream.py --key "$upstream_key" --port "$upstream_port" --word-delay 0.05 \
  --log "$data/upstream-requests.jsonl" \
  > "$data/upstream.log" 2>&1 &
upstream=$!

port=$(port_of)
# The warm pool follows demand as by default, bounded so that the suites' own sandboxes
# keep the CPU.
OMNIRUN_SNAPSHOT_DIR="${OMNIRUN_TEST_SNAPSHOT_DIR:-$cache/test-snapshots}" \
OMNIRUN_LLM_UPSTREAM_URL="http://127.0.0.1:$upstream_port/v1" OMNIRUN_LLM_UPSTREAM_KEY="$upstream_key" \
OMNIRUN_LLM_UPSTREAM_PROTOCOLS=chat,messages,responses OMNIRUN_LLM_RATE_LIMIT=1000 OMNIRUN_SIGNUP=open \
OMNIRUN_WARM_POOL="${OMNIRUN_WARM_POOL:-auto:max=2}" \
  "$bin" serve --data-dir "$data" --port "$port" --log-level warning > "$data/server.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/status" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "[sdk] the server did not start:"; tail -20 "$data/server.log"; exit 1; }
  sleep 0.5
done
export OMNIRUN_API_URL="http://127.0.0.1:$port"
new_key() { "$bin" key create --data-dir "$data" --email "$1" --name sdk-tests | grep -o 'omr_[A-Za-z0-9_-]*' | tail -n1; }
echo "[sdk] server on $OMNIRUN_API_URL ($(( $(date +%s) - started ))s)"

status=0
run_suite() {  # name, command...
  local name="$1"; shift
  local t0; t0=$(date +%s)
  echo "[sdk] $name"
  if "$@"; then echo "[sdk] $name passed in $(( $(date +%s) - t0 ))s"
  else echo "[sdk] FAIL: $name ($(( $(date +%s) - t0 ))s)"; status=1; fi
}

# The Python SDK installed as a user would (pip install ./sdks/python), into a virtualenv
# that borrows httpx and pytest from the system (no download).
python_venv() {
  [[ -x "$data/venv/bin/python" ]] && return 0
  python3 -c 'import httpx, pytest' 2>/dev/null || python3 -m pip install -q httpx pytest >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages httpx pytest >/dev/null
  python3 -m venv --system-site-packages "$data/venv"
  local t0; t0=$(date +%s)
  "$data/venv/bin/pip" install -q --no-deps ./sdks/python >/dev/null
  echo "[sdk] pip install ./sdks/python: $(( $(date +%s) - t0 ))s"
}

python_suite() {
  python_venv
  local key limit_key
  key="$(new_key python@sdk.test)"; limit_key="$(new_key python-limit@sdk.test)"
  # From another folder, so that `import omnirun` is the installed package, not the source tree.
  (cd "$data" && OMNIRUN_API_KEY="$key" OMNIRUN_TEST_LIMIT_KEY="$limit_key" \
    "$data/venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/sdks/python/tests")
}

typescript_suite() {
  make -s -C sdks/typescript build
  OMNIRUN_API_KEY="$(new_key ts@sdk.test)" OMNIRUN_TEST_LIMIT_KEY="$(new_key ts-limit@sdk.test)" \
    bash -c 'node --test sdks/typescript/tests/esm.test.mjs && node --test sdks/typescript/tests/cjs.test.cjs'
}

managed_suite() {
  # Claude Managed Agents: the worker of integrations/claude-managed-agents with the real
  # `anthropic` package (pinned) against a stand-in of Anthropic's control plane and this
  # server's real sandboxes (playground).
  python3 -m venv --system-site-packages "$data/managed-venv"
  "$data/managed-venv/bin/python" -c 'import httpx, pytest' 2>/dev/null \
    || "$data/managed-venv/bin/pip" install -q httpx pytest >/dev/null
  "$data/managed-venv/bin/pip" install -q "anthropic==2.17.0" >/dev/null
  "$data/managed-venv/bin/pip" install -q --no-deps ./sdks/python ./integrations/claude-managed-agents >/dev/null
  (cd "$data" && OMNIRUN_API_KEY="$(new_key managed@sdk.test)" OMNIRUN_CLAUDE_TEST_LOGS="$data/managed-logs" \
    "$data/managed-venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/integrations/claude-managed-agents/tests")
}

cluster_suite() {
  # The shared scenario (sdks/scenario.json) against node 1 of three nodes on one PostgreSQL,
  # node 1 drained: every sandbox is placed on node 2 or 3 and reached through node 1's relay
  # (commands and their streams, files both ways, PTY, code, LLM proxy, pause and resume).
  local db i node_port key
  postgres_start "$pg" >/dev/null
  db="postgres://postgres@/postgres?host=$pg/socket"
  runuser -u postgres -- psql -h "$pg/socket" -qc "CREATE DATABASE omnirun_cluster" >/dev/null
  db="postgres://postgres@/omnirun_cluster?host=$pg/socket"
  # Every node of a cluster has the same master key (docs/multi-node.md).
  head -c 32 /dev/urandom | base64 > "$data/cluster-master.key"; chmod 600 "$data/cluster-master.key"
  python_venv
  local first_port=""
  for i in 1 2 3; do
    mkdir -p "$data/node-$i"
    node_port=$(port_of)
    [[ -z "$first_port" ]] && first_port=$node_port
    OMNIRUN_SNAPSHOT_DIR="${OMNIRUN_TEST_SNAPSHOT_DIR:-$cache/test-snapshots}" OMNIRUN_DATABASE="$db" \
    OMNIRUN_MASTER_KEY_FILE="$data/cluster-master.key" OMNIRUN_NODE_ID="node-$i" OMNIRUN_REGION=local-a \
    OMNIRUN_PREVIEW_PORT=0 OMNIRUN_NODE_LEASE=3 OMNIRUN_EXIT_WITH_PARENT=1 \
    OMNIRUN_LLM_UPSTREAM_URL="http://127.0.0.1:$upstream_port/v1" OMNIRUN_LLM_UPSTREAM_KEY="$upstream_key" \
    OMNIRUN_LLM_UPSTREAM_PROTOCOLS=chat,messages,responses OMNIRUN_LLM_RATE_LIMIT=1000 OMNIRUN_WARM_POOL=0 \
      "$bin" serve --host 127.0.0.1 --data-dir "$data/node-$i" --port "$node_port" --log-level warning \
      > "$data/node-$i/server.log" 2>&1 &
    cluster_nodes+=($!)
    for _ in $(seq 1 600); do
      curl -sf "http://127.0.0.1:$node_port/status" >/dev/null 2>&1 && break
      kill -0 "${cluster_nodes[-1]}" 2>/dev/null || { echo "[sdk] node $i did not start:"; tail -20 "$data/node-$i/server.log"; cluster_stop; return 1; }
      sleep 0.5
    done
  done
  "$bin" node drain node-1 --database "$db" --no-wait >/dev/null
  for _ in $(seq 1 40); do
    "$bin" node list --json --database "$db" \
      | python3 -c 'import json,sys; sys.exit(0 if any(n["id"] == "node-1" and n["state"] == "draining" for n in json.load(sys.stdin)) else 1)' \
      && break
    sleep 0.25
  done
  key="$("$bin" key create --database "$db" --email cluster@sdk.test --name sdk-tests | grep -o 'omr_[A-Za-z0-9_-]*' | tail -n1)"
  local result=0
  (cd "$data" && OMNIRUN_API_URL="http://127.0.0.1:$first_port" OMNIRUN_API_KEY="$key" \
    "$data/venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/sdks/python/tests/test_scenario.py") || result=1
  # Where the scenario's sandboxes ran: nodes 2 and 3 only.
  local placed
  placed="$(runuser -u postgres -- psql -h "$pg/socket" -d omnirun_cluster -Atc "SELECT DISTINCT node_id FROM sandboxes ORDER BY 1" | tr '\n' ' ')"
  echo "[sdk] the scenario's sandboxes ran on: $placed"
  [[ -n "$placed" && "$placed" != *node-1* ]] || { echo "[sdk] FAIL: a sandbox was placed on the drained node 1"; result=1; }
  cluster_stop
  return $result
}

cluster_stop() {
  local pid i
  for pid in "${cluster_nodes[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  cluster_nodes=()
  for i in 1 2 3; do
    [[ -d "$data/node-$i" ]] || continue
    for pid in $(pgrep -f "qemu-system-x86_64.*$data/node-$i/" || true); do kill -9 "$pid" 2>/dev/null || true; done
    network_cleanup "$data/node-$i"
  done
  [[ -d "$pg" ]] && postgres_stop "$pg"
  return 0
}

e2b_suite() {
  # The unmodified PyPI `e2b` and `e2b-code-interpreter` packages (versions and hashes pinned
  # in sdks/e2b-tests/requirements.txt) against this server's E2B-compatible endpoint: the
  # control API and the sandbox URL are both /e2b of the API port; no E2B_DOMAIN, no debug mode.
  # pytest comes from the system, as for the other Python suites.
  local venv="$data/e2b-venv"
  python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages pytest >/dev/null
  python3 -m venv --system-site-packages "$venv"
  local t0; t0=$(date +%s)
  "$venv/bin/pip" install -q --require-hashes -r sdks/e2b-tests/requirements.txt > "$data/e2b-pip.log" 2>&1 \
    || { echo "[sdk] pip install --require-hashes -r sdks/e2b-tests/requirements.txt failed:"; cat "$data/e2b-pip.log"; return 1; }
  echo "[sdk] pip install e2b, e2b-code-interpreter: $(( $(date +%s) - t0 ))s"
  local key other; key="$(new_key e2b@sdk.test)"; other="$(new_key e2b-other@sdk.test)"
  # From another folder, so that nothing of the source tree shadows the installed packages;
  # `timeout` ends a run that hangs on a stream.
  (cd "$data" && env -u E2B_DOMAIN -u E2B_DEBUG -u E2B_ACCESS_TOKEN \
    E2B_API_URL="$OMNIRUN_API_URL/e2b" E2B_SANDBOX_URL="$OMNIRUN_API_URL/e2b" E2B_API_KEY="$key" E2B_TEST_OTHER_KEY="$other" \
    timeout -k 10 900 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/sdks/e2b-tests")
}

cli_suite() {
  OMNIRUN_TEST_KEY="$(new_key cli@sdk.test)" OMNIRUN_TEST_OUTBOX="$data/outbox" OMNIRUN_TEST_LLM_LOG="$data/upstream-requests.jsonl" OMNI="${OMNI_BIN:-$PWD/.build/debug/omni}" \
    bash sdks/cli-tests/run.sh
}

for suite in $suites; do
  case "$suite" in
    python) run_suite "Python SDK (pytest)" python_suite ;;
    typescript) run_suite "TypeScript SDK (node --test, ESM and CJS)" typescript_suite ;;
    cli) run_suite "omni CLI" cli_suite ;;
    managed) run_suite "Claude Managed Agents worker (pytest)" managed_suite ;;
    cluster) run_suite "the shared scenario through a drained node of three (PostgreSQL)" cluster_suite ;;
    e2b) run_suite "the E2B SDKs, unmodified (pytest)" e2b_suite ;;
    public) run_suite "the public clients (scripts/test-public-clients.sh)" public_suite ;;
    *) echo "[sdk] unknown suite $suite"; status=1 ;;
  esac
done
active=$(curl -sf "$OMNIRUN_API_URL/status" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("active_sandboxes", "?"))' || echo "?")
echo "[sdk] sandboxes still active on the server at the end (0 expected; the warm pool is not counted): $active"
[[ "$active" == "0" ]] || status=1
echo "[sdk] finished in $(( $(date +%s) - started ))s with status $status"
exit $status
