#!/usr/bin/env bash
# Benchmark of the coding-agent templates (not a test: it asserts nothing, it measures).
# Against a real `omnirun serve` and the stand-in model of the tests
# (scripts/testdata/agent-upstream.py: one Bash/shell tool call, then the answer):
#   - `claude -p … --output-format json` round trip in an air-gapped claude-code sandbox
#     (through the host gateway and the LLM proxy), timed inside the sandbox, beside the
#     same binary (taken from the same pinned wheel) on the host, through the proxy and
#     straight to the stand-in;
#   - `codex exec` likewise in a codex sandbox (when its image is built);
#   - `omni beamup claude|codex` to the agent's first prompt, in a real terminal (tmux);
#   - the templates' image sizes (used blocks of their root file systems).
# Usage: scripts/bench-agents.sh [--runs N] [--json FILE]     (default 5 runs)
# Needs .build/debug/omnirun and .build/debug/omni (swift build), and the images
# (make image TEMPLATE=claude-code; TEMPLATE=codex).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=5 json_out=""
while (($#)); do
  case "$1" in
    --runs) runs="${2:?}"; shift 2 ;;
    --json) json_out="${2:?}"; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 64 ;;
  esac
done
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
cache="${OMNIRUN_CACHE_DIR:-$HOME/.cache/omnirun}"
bin="$(realpath "${OMNIRUN_BIN:-.build/debug/omnirun}")"
omni="$(realpath .build/debug/omni)"
work=$(mktemp -d /tmp/omnirun-bench-agents.XXXXXX)
data="$work/server"
server="" upstream="" session="bench-agents-$$"
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  [[ -n "$server" ]] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  [[ -n "$upstream" ]] && { kill "$upstream" 2>/dev/null || true; wait "$upstream" 2>/dev/null || true; }
  for pid in $(pgrep -f "qemu-system-x86_64.*$data/" || true); do kill -9 "$pid" 2>/dev/null || true; done
  network_cleanup "$data"
  rm -rf "$work"
}
trap cleanup EXIT
port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x.replace(".", "", 1).isdigit()]; print("%.2f" % statistics.median(v) if v else "-")' "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.2f' % ($(now) - $1))"; }

mkdir -p "$data"
key="bench-$$"
upstream_port=$(port_of)
python3 scripts/testdata/agent-upstream.py --key "$key" --port "$upstream_port" > "$work/upstream.log" 2>&1 &
upstream=$!
cat > "$work/llm.json" <<EOF
{"upstreams": [{"name": "model", "baseURL": "http://127.0.0.1:$upstream_port/v1", "apiKeyEnv": "BENCH_UPSTREAM_KEY",
  "models": ["*"], "protocols": ["messages", "responses"]}], "requestsPerMinute": 0}
EOF
port=$(port_of)
OMNIRUN_SNAPSHOT_DIR="${OMNIRUN_TEST_SNAPSHOT_DIR:-$cache/test-snapshots}" OMNIRUN_LLM_CONFIG="$work/llm.json" \
BENCH_UPSTREAM_KEY="$key" OMNIRUN_PREVIEW_PORT=0 \
  "$bin" serve --data-dir "$data" --port "$port" --warm-pool 0 --log-level warning > "$data.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/status" >/dev/null 2>&1 && break; sleep 0.5; done
api="http://127.0.0.1:$port"
owner=$(cat "$data/owner.key")
built=$(curl -sf "$api/status" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["templates"]))')
call() { curl -s -X "$1" "$api$2" -H "X-API-Key: $owner" ${3:+-d "$3"}; }
sandbox() { call POST /sandboxes "{\"template\":\"$1\",\"timeout\":1800}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sandboxID"])'; }
# in_sandbox ID COMMAND: runs it, prints its stdout (the command prints its own timing)
in_sandbox() {
  python3 - "$api" "$owner" "$1" "$2" <<'PY'
import json, sys, urllib.request
api, key, sandbox, command = sys.argv[1:]
request = urllib.request.Request(f"{api}/sandboxes/{sandbox}/commands", json.dumps({"command": command, "timeout": 600}).encode(),
                                 {"X-API-Key": key, "Content-Type": "application/json"})
reply = json.load(urllib.request.urlopen(request, timeout=700))
if reply.get("exit_code") != 0:
    sys.exit("failed: %s" % json.dumps(reply)[:2000])
print(reply["stdout"].strip().splitlines()[-1])
PY
}
# The command a timing wraps: prints the seconds it took (date inside the sandbox or on the host).
timed() { echo "s=\$(date +%s%N); $1 >/dev/null 2>&1 </dev/null || exit 1; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 ))"; }
# A run that failed (no time printed) is reported as such and left out of the median.
ms_to_s() { if [[ "$1" =~ ^[0-9]+$ ]]; then python3 -c "print('%.2f' % ($1 / 1000))"; else echo failed; fi; }

declare -A figures
report() { figures[$1]="$2"; printf '  %-58s %s\n' "$1" "$2"; }
echo "[bench-agents] server $api, $runs runs each, templates: $built"

if [[ " $built " == *" claude-code "* ]]; then
  id=$(sandbox claude-code)
  prompt="cd ~/workspace && rm -f /tmp/from-claude && claude -p 'Write the file /tmp/from-claude.' --output-format json --allowedTools Bash"
  in_sandbox "$id" "$prompt" >/dev/null   # first run: the binary's pages, claude's own first start
  times=(); for _ in $(seq 1 "$runs"); do times+=("$(ms_to_s "$(in_sandbox "$id" "$(timed "$prompt")")")"); done
  report "claude -p round trip, in the sandbox (gateway + proxy), s" "median $(median "${times[@]}") (${times[*]})"
  call DELETE "/sandboxes/$id" >/dev/null
  # The same executable on the host, from the same pinned wheel.
  wheel=$(ls "$cache"/downloads/pypi/claude_agent_sdk-*-manylinux_2_17_x86_64.whl | head -n1)
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("claude_agent_sdk/_bundled/claude", sys.argv[2])' "$wheel" "$work/host"
  claude="$work/host/claude_agent_sdk/_bundled/claude"; chmod +x "$claude"
  mkdir -p "$work/home" "$work/cwd"
  host_run() {  # BASE_URL TOKEN
    (cd "$work/cwd" && env -i HOME="$work/home" PATH=/usr/bin:/bin ANTHROPIC_BASE_URL="$1" ANTHROPIC_AUTH_TOKEN="$2" \
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 bash -c "$(timed "'$claude' -p 'Write the file /tmp/from-claude.' --output-format json --allowedTools Bash")")
  }
  host_run "$api/llm" "$owner" >/dev/null
  times=(); for _ in $(seq 1 "$runs"); do times+=("$(ms_to_s "$(host_run "$api/llm" "$owner")")"); done
  report "claude -p round trip, on the host through the proxy, s" "median $(median "${times[@]}") (${times[*]})"
  times=(); for _ in $(seq 1 "$runs"); do times+=("$(ms_to_s "$(host_run "http://127.0.0.1:$upstream_port" "$key")")"); done
  report "claude -p round trip, on the host straight to the stand-in, s" "median $(median "${times[@]}") (${times[*]})"
fi

if [[ " $built " == *" codex "* ]]; then
  id=$(sandbox codex)
  prompt="cd ~/workspace && codex exec --skip-git-repo-check --sandbox workspace-write -m gpt-5-codex 'Write the file /tmp/from-codex.'"
  in_sandbox "$id" "$(timed "$prompt")" >/dev/null
  times=(); for _ in $(seq 1 "$runs"); do times+=("$(ms_to_s "$(in_sandbox "$id" "$(timed "$prompt")")")"); done
  report "codex exec round trip, in the sandbox (gateway + proxy), s" "median $(median "${times[@]}") (${times[*]})"
  call DELETE "/sandboxes/$id" >/dev/null
fi

# `omni beamup` to the agent's first prompt, in a real terminal.
beamup() {  # NAME PROMPT_MARK
  local t0 id
  tmux kill-session -t "$session" 2>/dev/null || true
  t0=$(now)
  tmux new-session -d -s "$session" -x 120 -y 40 \
    "OMNIRUN_API_URL=$api OMNIRUN_API_KEY=$owner OMNI_CONFIG_DIR=$work/omni '$omni' beamup $1 --timeout 300 2>$work/beamup.err; sleep 30"
  for _ in $(seq 1 1200); do tmux capture-pane -p -t "$session" | grep -q -- "$2" && break; sleep 0.1; done
  since "$t0"
  id=$(grep -o 'sb_[A-Za-z0-9]*' "$work/beamup.err" | head -n1)
  tmux kill-session -t "$session" 2>/dev/null || true
  [[ -n "$id" ]] && call DELETE "/sandboxes/$id" >/dev/null
}
if command -v tmux >/dev/null; then
  for agent in "claude claude-code ❯" "codex codex ›"; do
    read -r name template mark <<<"$agent"
    [[ " $built " == *" $template "* ]] || continue
    times=(); for _ in $(seq 1 "$runs"); do times+=("$(beamup "$name" "$mark")"); done
    report "omni beamup $name to its first prompt, s" "median $(median "${times[@]}") (${times[*]})"
  done
fi

for template in claude-code codex claude-agent; do
  manifest="$cache/images/$template.json"
  [[ -f "$manifest" ]] || continue
  rootfs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rootfs"])' "$manifest")
  report "image $template (root file system, used), MiB" "$(du -m "$rootfs" | cut -f1)"
done

if [[ -n "$json_out" ]]; then
  for k in "${!figures[@]}"; do printf '%s\t%s\n' "$k" "${figures[$k]}"; done |
    python3 -c 'import json,sys; print(json.dumps(dict(l.rstrip("\n").split("\t", 1) for l in sys.stdin), indent=2))' > "$json_out"
fi
