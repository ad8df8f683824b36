#!/usr/bin/env bash
# Drives the real `omni` binary against a live server (scripts/test-sdks.sh starts it):
# sign-in (email code read from the server's outbox, and --api-key), the 0600 credentials
# file, sandboxes, exec with its exit code, files, LLM streaming, vault, templates, --json,
# the exit codes of failures, and `omni shell` in a real terminal (tmux): raw keys, output,
# resize on SIGWINCH, leaving with `exit`.
# The commands it shares with the public CLI are tested in parity.sh (sourced below).
# Env: OMNI (the binary), OMNIRUN_API_URL, OMNIRUN_TEST_KEY, OMNIRUN_TEST_OUTBOX and
# OMNIRUN_TEST_LLM_LOG (the stand-in LLM upstream's request log) optional.
set -uo pipefail
: "${OMNI:?}" "${OMNIRUN_API_URL:?}" "${OMNIRUN_TEST_KEY:?}"
work=$(mktemp -d /tmp/omni-cli-test.XXXXXX)
export OMNI_CONFIG_DIR="$work/config"
unset OMNIRUN_API_KEY
failures=0
passed=0
sandbox=""
session="omni-test-$$"
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  for id in "$sandbox" "${secure:-}" "${sealed:-}" "${gui:-}"; do
    [[ -n "$id" ]] && "$OMNI" sandbox kill "$id" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failures=$((failures + 1)); echo "  FAIL $1"; shift; for line in "$@"; do echo "       $line"; done; }
# expect NAME CODE CMD...: runs CMD, keeps stdout in $out and stderr in $err, checks the exit code.
expect() {
  local name="$1" want="$2"; shift 2
  out=$("$@" 2>"$work/stderr"); code=$?
  err=$(cat "$work/stderr")
  if [[ "$code" == "$want" ]]; then ok "$name"; return 0; fi
  fail "$name" "exit $code, wanted $want" "stdout: ${out:0:400}" "stderr: ${err:0:400}"
  return 1
}
contains() {  # NAME HAYSTACK NEEDLE
  if [[ "$2" == *"$3"* ]]; then ok "$1"; else fail "$1" "'${2:0:400}' lacks '$3'"; fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

echo "[cli] signing in"
expect "no credentials: exit 4" 4 "$OMNI" sandbox list
contains "no credentials: says how to sign in" "$err" "omni auth login"
expect "auth init rejects a bad key: exit 4" 4 "$OMNI" auth init --api-key omr_wrong
expect "auth init --api-key" 0 "$OMNI" auth init --api-key "$OMNIRUN_TEST_KEY"
mode=$(stat -c %a "$OMNI_CONFIG_DIR/credentials.json")
[[ "$mode" == "600" ]] && ok "credentials file is 0600" || fail "credentials file is 0600" "mode $mode"
expect "auth status --json" 0 "$OMNI" auth status --json
[[ "$(json 'd["email"]' <<<"$out")" == "cli@sdk.test" ]] && ok "status names the account" || fail "status names the account" "$out"

if [[ -n "${OMNIRUN_TEST_OUTBOX:-}" ]]; then
  # The email flow: request a code, read it from the server's outbox, type it at the prompt.
  login_dir="$work/login"
  before=$(ls "$OMNIRUN_TEST_OUTBOX" 2>/dev/null | wc -l)
  mkfifo "$work/code"
  OMNI_CONFIG_DIR="$login_dir" "$OMNI" auth login --email "login-$$@sdk.test" < "$work/code" > "$work/login.out" 2> "$work/login.err" &
  login=$!
  exec 7> "$work/code"
  code_text=""
  for _ in $(seq 1 100); do
    mail=$(ls -t "$OMNIRUN_TEST_OUTBOX"/*.eml 2>/dev/null | head -n1)
    if [[ -n "$mail" ]] && (( $(ls "$OMNIRUN_TEST_OUTBOX" | wc -l) > before )) && grep -q "login-$$@sdk.test" "$mail"; then
      code_text=$(grep -oE 'sign-in code: [0-9]{6}' "$mail" | grep -oE '[0-9]{6}' | head -n1); break
    fi
    sleep 0.1
  done
  echo "$code_text" >&7; exec 7>&-
  wait "$login"; status=$?
  if [[ $status == 0 && -n "$code_text" ]] && OMNI_CONFIG_DIR="$login_dir" "$OMNI" auth status | grep -q "login-$$@sdk.test"; then
    ok "auth login: emailed code typed at the prompt, then signed in"
  else
    fail "auth login" "exit $status, code '$code_text'" "$(cat "$work/login.err")"
  fi
  [[ "$(stat -c %a "$login_dir/credentials.json" 2>/dev/null)" == "600" ]] && ok "login's credentials are 0600" || fail "login's credentials are 0600"
fi

echo "[cli] sandboxes"
expect "sandbox create" 0 "$OMNI" sandbox create playground --timeout 1800 --metadata suite=cli --env GREETING=hello
sandbox="$out"
[[ "$sandbox" =~ ^sb_[A-Za-z0-9]+$ ]] && ok "create prints the id" || fail "create prints the id" "$sandbox"
contains "create reports progress on stderr" "$err" "Creating a sandbox from playground"
expect "sandbox list" 0 "$OMNI" sandbox list --metadata suite=cli
contains "list shows it" "$out" "$sandbox"
expect "sandbox list --json" 0 "$OMNI" sandbox list --json
[[ "$(json '[s["sandboxID"] for s in d]' <<<"$out")" == *"$sandbox"* ]] && ok "list --json is the API's array" || fail "list --json" "$out"
expect "sandbox info --json" 0 "$OMNI" sandbox info "$sandbox" --json
[[ "$(json 'd["state"]' <<<"$out")" == "running" ]] && ok "info: running" || fail "info: running" "$out"
expect "exec streams output" 0 "$OMNI" sandbox exec "$sandbox" -- 'echo $GREETING; echo oops >&2'
[[ "$out" == "hello" && "$err" == "oops" ]] && ok "exec: stdout and stderr apart" || fail "exec: stdout and stderr apart" "$out" "$err"
expect "exec exits with the command's code" 42 "$OMNI" sandbox exec "$sandbox" -- 'exit 42'
expect "exec --json" 3 "$OMNI" sandbox exec "$sandbox" --json -- 'echo out; exit 3'
[[ "$(json 'd["stdout"], d["exit_code"]' <<<"$out")" == "('out\n', 3)" ]] && ok "exec --json gives stdout and exit_code" || fail "exec --json" "$out"
expect "info of an unknown sandbox: exit 3" 3 "$OMNI" sandbox info sb_doesnotexist
expect "start a web server in the sandbox" 0 "$OMNI" sandbox exec "$sandbox" -- 'cd /tmp && setsid -f python3 -m http.server 8000 >/dev/null 2>&1'
expect "sandbox open exposes the port once it listens" 0 "$OMNI" sandbox open "$sandbox" --port 8000 --wait 60
url="$(tail -n1 <<<"$out")"
[[ "$url" == http* ]] && ok "open prints the preview URL" || fail "open prints the preview URL" "$out" "$err"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$url" || true)"
[[ "$code" == "200" ]] && ok "the preview URL answers through the gateway" || fail "preview URL" "$url: $code"

echo "[cli] internet"
expect "sandbox create --internet" 0 "$OMNI" sandbox create playground --timeout 120 --internet
online="$out"
expect "exec in the sandbox with internet access" 0 "$OMNI" sandbox exec "$online" -- 'ls /sys/class/net'
contains "it has a network card" "$out" "eth0"
expect "exec in the air-gapped sandbox" 0 "$OMNI" sandbox exec "$sandbox" -- 'ls /sys/class/net'
[[ "$out" == "lo" ]] && ok "the air-gapped one has none" || fail "air-gapped: no card" "$out"
expect "kill the sandbox with internet access" 0 "$OMNI" sandbox kill "$online"

echo "[cli] files"
head -c 3000000 /dev/urandom > "$work/blob"
expect "files put" 0 "$OMNI" files put "$sandbox" "$work/blob" /tmp/cli/blob.bin
expect "files get" 0 "$OMNI" files get "$sandbox" /tmp/cli/blob.bin "$work/back"
cmp -s "$work/blob" "$work/back" && ok "3 MB round trip is byte-identical" || fail "round trip" "files differ"
printf 'text from stdin\n' | "$OMNI" files put "$sandbox" - /tmp/cli/t.txt >/dev/null 2>&1
expect "files get to stdout" 0 "$OMNI" files get "$sandbox" /tmp/cli/t.txt
[[ "$out" == "text from stdin" ]] && ok "put from stdin, get to stdout" || fail "stdin/stdout" "$out"
expect "files ls" 0 "$OMNI" files ls "$sandbox" /tmp/cli
contains "ls shows the file and its size" "$out" "3000000"
expect "files get of a missing file: exit 3" 3 "$OMNI" files get "$sandbox" /tmp/cli/missing

echo "[cli] LLM proxy"
expect "llm models" 0 "$OMNI" llm models
contains "models lists the test model" "$out" "test/echo"
expect "llm chat streams" 0 "$OMNI" llm chat -m test/echo "one two three"
[[ "$out" == "echo: one two three" ]] && ok "chat prints the streamed answer" || fail "chat" "$out"
expect "llm chat --json" 0 "$OMNI" llm chat -m test/echo --json hi
[[ "$(json 'd["choices"][0]["message"]["content"]' <<<"$out")" == "echo: hi" ]] && ok "chat --json is the completion" || fail "chat --json" "$out"
expect "llm usage --json" 0 "$OMNI" llm usage --json
[[ "$(json 'sorted(d)' <<<"$out")" == "['remainingCents', 'remaining_cents', 'spendCapCents', 'spendUsedCents', 'spend_cap_cents', 'spend_used_cents']" ]] && ok "usage fields (both spellings)" || fail "usage" "$out"

echo "[cli] vault and templates"
printf 'from-stdin-secret\n' | "$OMNI" vault set CLI_SECRET >/dev/null 2>"$work/stderr" && ok "vault set (value from stdin)" || fail "vault set" "$(cat "$work/stderr")"
expect "vault list" 0 "$OMNI" vault list
contains "list shows the name" "$out" "CLI_SECRET"
[[ "$out" != *"from-stdin-secret"* ]] && ok "list never shows the value" || fail "list shows the value"
expect "vault set: bad name is refused: exit 8" 8 "$OMNI" vault set "bad name" x
expect "vault rm" 0 "$OMNI" vault rm CLI_SECRET
expect "vault rm again: exit 3" 3 "$OMNI" vault rm CLI_SECRET
expect "template list" 0 "$OMNI" template list
contains "templates include playground" "$out" "playground"

# The commands shared with the public CLI (command, expose, history, e2ee, desktop, ...).
# shellcheck source=sdks/cli-tests/parity.sh
source "$(dirname "${BASH_SOURCE[0]}")/parity.sh"

echo "[cli] shell (tmux)"
if command -v tmux >/dev/null; then
  tmux new-session -d -s "$session" -x 100 -y 30 "OMNI_CONFIG_DIR='$OMNI_CONFIG_DIR' '$OMNI' shell $sandbox; echo omni-exited-\$?; sleep 30"
  pane() { tmux capture-pane -p -t "$session" -S -200; }
  wait_for() {  # TEXT SECONDS
    for _ in $(seq 1 $(( $2 * 5 ))); do pane | grep -q -- "$1" && return 0; sleep 0.2; done; return 1
  }
  sleep 2
  tmux send-keys -t "$session" 'echo shell-$((6*7))' Enter
  wait_for "shell-42" 20 && ok "shell: typed command runs, output shown" || fail "shell output" "$(pane | tail -5)"
  tmux send-keys -t "$session" 'stty size' Enter
  wait_for "^30 100" 15 && ok "shell: remote size is the local terminal's" || fail "shell size" "$(pane | tail -5)"
  tmux resize-window -t "$session" -x 120 -y 40 2>/dev/null || tmux resize-pane -t "$session" -x 120 -y 40
  sleep 1
  tmux send-keys -t "$session" 'stty size' Enter
  wait_for "^40 120" 15 && ok "shell: SIGWINCH resizes the remote terminal" || fail "shell resize" "$(pane | tail -5)"
  tmux send-keys -t "$session" 'cat -v' Enter
  sleep 1
  tmux send-keys -t "$session" C-c
  tmux send-keys -t "$session" 'echo after-ctrl-c' Enter
  wait_for "after-ctrl-c" 15 && ok "shell: raw mode, ^C goes to the remote program" || fail "shell ^C" "$(pane | tail -5)"
  tmux send-keys -t "$session" 'exit' Enter
  wait_for "omni-exited-0" 15 && ok "shell: ends when the remote shell exits" || fail "shell exit" "$(pane | tail -5)"
  tmux kill-session -t "$session" 2>/dev/null
else
  fail "tmux is missing (apt-get install tmux)"
fi

echo "[cli] beamup"
expect "beamup --help lists the agents" 0 "$OMNI" beamup --help
contains "beamup offers claude, codex and desktop" "$out" "desktop"
expect "beamup: a negative timeout is bad usage: exit 64" 64 "$OMNI" beamup claude --timeout -5
expect "beamup: a port out of range is bad usage: exit 64" 64 "$OMNI" beamup codex --expose 70000
expect "beamup of a template that does not exist: exit 3" 3 "$OMNI" beamup claude --template no-such-template --detach
built_templates=$(curl -sf "$OMNIRUN_API_URL/status" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["templates"]))')
# beamup_agent NAME TEMPLATE PROMPT_MARK: the agent in a real terminal (tmux) up to its prompt, one
# exchange with the stand-in model (it echoes), then the agent's own exit; prints the time to the prompt.
beamup_agent() {
  local name="$1" template="$2" mark="$3" agent_session="omni-beamup-$$" t0 t1
  # omni's output is the terminal itself (an interactive beamup needs one); tmux records it.
  tmux new-session -d -s "$agent_session" -x 120 -y 40 \
    "OMNI_CONFIG_DIR='$OMNI_CONFIG_DIR' '$OMNI' beamup $name --timeout 600; echo omni-exited-\$?; sleep 60"
  tmux pipe-pane -t "$agent_session" -o "cat >> '$work/beamup-$name.out'"
  agent_pane() { tmux capture-pane -p -t "$agent_session" -S -100; }
  t0=$(date +%s.%N)
  for _ in $(seq 1 900); do agent_pane | grep -q -- "$mark" && break; sleep 0.2; done
  t1=$(date +%s.%N)
  if agent_pane | grep -q -- "$mark"; then
    ok "beamup $name: the agent's prompt in a real terminal ($(python3 -c "print(round($t1 - $t0, 1))") s from the command)"
  else
    fail "beamup $name: no prompt" "$(agent_pane | tail -15)"
  fi
  tmux send-keys -t "$agent_session" -l "hello from the cli"
  sleep 1
  tmux send-keys -t "$agent_session" Enter
  for _ in $(seq 1 300); do agent_pane | grep -q "echo: hello from the cli" && break; sleep 0.2; done
  agent_pane | grep -q "echo: hello from the cli" && ok "beamup $name: the model's answer came through the LLM proxy" \
    || fail "beamup $name: no answer" "$(agent_pane | tail -15)"
  local id
  id=$({ cat "$work/beamup-$name.out" 2>/dev/null; agent_pane; } | grep -o 'sb_[A-Za-z0-9]*' | head -n1)
  # The agent's own way out: ^C twice (Codex), or its /exit command (Claude Code, whose
  # second ^C must come within a moment that a loaded emulated machine may miss).
  tmux send-keys -t "$agent_session" C-c
  sleep 0.3
  tmux send-keys -t "$agent_session" C-c
  for _ in $(seq 1 50); do agent_pane | grep -q "omni-exited-" && break; sleep 0.2; done
  if ! agent_pane | grep -q "omni-exited-"; then
    tmux send-keys -t "$agent_session" -l "/exit"
    sleep 1
    tmux send-keys -t "$agent_session" Enter
    for _ in $(seq 1 150); do agent_pane | grep -q "omni-exited-" && break; sleep 0.2; done
  fi
  agent_pane | grep -q "omni-exited-0" && ok "beamup $name: the agent's exit ends the session" || fail "beamup $name: exit" "$(agent_pane | tail -15)"
  grep -aq "omni shell $id" "$work/beamup-$name.out" && ok "beamup $name: says how to reattach" || fail "beamup $name: reattach" "$(cat "$work/beamup-$name.out" | tail -5)"
  tmux kill-session -t "$agent_session" 2>/dev/null
  [[ -n "$id" ]] && "$OMNI" sandbox kill "$id" >/dev/null 2>&1
  return 0
}
if [[ " $built_templates " == *" claude-code "* ]] && command -v tmux >/dev/null; then
  beamup_agent claude claude-code "❯"
  expect "beamup claude --detach --json" 0 "$OMNI" beamup claude --detach --json --expose 8000 --timeout 300
  detached=$(json 'd["sandboxID"]' <<<"$out")
  [[ "$(json 'd["previews"][0]["port"]' <<<"$out")" == "8000" ]] && ok "beamup --expose: a preview URL" || fail "beamup --expose" "$out"
  expect "the agent runs in its tmux session" 0 "$OMNI" sandbox exec "$detached" -- 'tmux ls'
  contains "tmux session claude" "$out" "claude:"
  "$OMNI" sandbox kill "$detached" >/dev/null 2>&1
else
  echo "  skip beamup claude (template claude-code not built)"
fi
if [[ " $built_templates " == *" codex "* ]] && command -v tmux >/dev/null; then
  beamup_agent codex codex "›"
else
  echo "  skip beamup codex (template codex not built)"
fi
if [[ " $built_templates " == *" desktop "* ]]; then
  expect "beamup desktop --detach --json" 0 "$OMNI" beamup desktop --detach --json --timeout 300
  desktop=$(json 'd["sandboxID"]' <<<"$out")
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -L -b '' "$(json 'd["desktopUrl"]' <<<"$out")" || true)"
  [[ "$code" == "200" ]] && ok "beamup desktop: the live view's URL answers" || fail "beamup desktop URL" "$out: $code"
  "$OMNI" sandbox kill "$desktop" >/dev/null 2>&1
else
  echo "  skip beamup desktop (template desktop not built)"
fi

echo "[cli] cleanup"
expect "sandbox kill" 0 "$OMNI" sandbox kill "$sandbox"
expect "exec on a killed sandbox: exit 3" 3 "$OMNI" sandbox exec "$sandbox" -- true
sandbox=""
expect "bad usage: exit 64" 64 "$OMNI" sandbox create --timeout notanumber
"$OMNI" auth logout >/dev/null
[[ ! -e "$OMNI_CONFIG_DIR/credentials.json" ]] && ok "logout removes the credentials" || fail "logout"

echo "[cli] $passed passed, $failures failed"
[[ $failures == 0 ]]
