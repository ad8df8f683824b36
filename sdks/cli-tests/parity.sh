# The commands and flags `omni` shares with the public OmniRun CLI 0.7.1, driven against the
# real server (sourced by run.sh, whose helpers — expect, contains, ok, fail, json — and
# variables — OMNI, work, sandbox — it uses): `command run/ps/kill`, `sandbox expose`,
# `exposures`, `close`, `refresh-exposure`, `history`, `list --limit`, `create --secure`
# and `--e2ee` (the key pair kept for later commands), `desktop`, `llm chat --max-tokens
# --temperature`, `auth init` by email and the global `--request-timeout`.

# mailed_code ADDRESS COUNT_BEFORE: the sign-in code of the newest mail to ADDRESS in the outbox.
mailed_code() {
  local mail
  for _ in $(seq 1 100); do
    mail=$(ls -t "$OMNIRUN_TEST_OUTBOX"/*.eml 2>/dev/null | head -n1)
    if [[ -n "$mail" ]] && (( $(ls "$OMNIRUN_TEST_OUTBOX" | wc -l) > $2 )) && grep -q "$1" "$mail"; then
      grep -oE 'sign-in code: [0-9]{6}' "$mail" | grep -oE '[0-9]{6}' | head -n1; return 0
    fi
    sleep 0.1
  done
  return 1
}

if [[ -n "${OMNIRUN_TEST_OUTBOX:-}" ]]; then
  echo "[cli] auth init by email"
  init_dir="$work/init"
  address="init-$$@sdk.test"
  before=$(ls "$OMNIRUN_TEST_OUTBOX" 2>/dev/null | wc -l)
  mkfifo "$work/init-answers"
  OMNI_CONFIG_DIR="$init_dir" "$OMNI" auth init < "$work/init-answers" > "$work/init.out" 2> "$work/init.err" &
  init=$!
  exec 8> "$work/init-answers"
  echo "$address" >&8          # the "Email:" prompt
  init_code=$(mailed_code "$address" "$before")
  echo "$init_code" >&8; exec 8>&-
  wait "$init"; status=$?
  if [[ $status == 0 && -n "$init_code" ]] && OMNI_CONFIG_DIR="$init_dir" "$OMNI" auth status | grep -q "$address"; then
    ok "auth init without --api-key: email asked, emailed code typed, signed in"
  else
    fail "auth init by email" "exit $status, code '$init_code'" "$(cat "$work/init.err")"
  fi
  contains "auth init asks for the email" "$(cat "$work/init.err")" "Email:"
  expect "auth init --email with a wrong --code: exit 4" 4 env OMNI_CONFIG_DIR="$work/init-wrong" "$OMNI" auth init --email "$address" --code 000000
  [[ ! -e "$work/init-wrong/credentials.json" ]] && ok "a wrong code saves nothing" || fail "a wrong code saves nothing"
fi

echo "[cli] command run / ps / kill"
# A foreground command silent for longer than an HTTP client's usual 90 s read timeout,
# run while the tests below go on; its answer is checked at the end of this file.
"$OMNI" command run "$sandbox" --timeout 200 -- 'sleep 95; echo late-answer' > "$work/long.out" 2> "$work/long.err" &
long_run=$!
long_started=$(date +%s)
expect "command run: output at the end, exit code kept" 3 "$OMNI" command run "$sandbox" -- 'echo out-$((2*3)); echo err >&2; exit 3'
[[ "$out" == "out-6" && "$err" == "err" ]] && ok "command run: stdout and stderr apart" || fail "command run output" "$out" "$err"
expect "command run --json" 0 "$OMNI" command run "$sandbox" --json --cwd /tmp --env WHO=cli -- 'echo $WHO in $(pwd)'
[[ "$(json 'd["stdout"], d["exit_code"]' <<<"$out")" == "('cli in /tmp\n', 0)" ]] && ok "command run --json: {stdout, exit_code}, --cwd, --env" || fail "command run --json" "$out"
expect "command run --stream" 0 "$OMNI" command run "$sandbox" --stream -- 'for i in 1 2 3; do echo stream-$i; sleep 0.2; done'
[[ "$out" == $'stream-1\nstream-2\nstream-3' ]] && ok "command run --stream: the output as it came" || fail "command run --stream" "$out"
expect "command run --stream keeps the exit code" 7 "$OMNI" command run "$sandbox" --stream -- 'exit 7'
expect "command run --background" 0 "$OMNI" command run "$sandbox" --background -- 'sleep 300'
pid="$out"
[[ "$pid" =~ ^[0-9]+$ && "$pid" -gt 0 ]] && ok "background: prints the pid" || fail "background pid" "$out"
expect "command ps" 0 "$OMNI" command ps "$sandbox"
grep -qE "^$pid +yes +sleep 300" <<<"$out" && ok "ps: the background command, running" || fail "ps shows it running" "$out"
expect "command ps --json" 0 "$OMNI" command ps "$sandbox" --json
[[ "$(json "[p['running'] for p in d if p['pid'] == $pid]" <<<"$out")" == "[True]" ]] && ok "ps --json: the API's array" || fail "ps --json" "$out"
expect "command kill" 0 "$OMNI" command kill "$sandbox" "$pid"
stopped=""
for _ in $(seq 1 50); do
  "$OMNI" command ps "$sandbox" --json > "$work/ps.json" 2>/dev/null
  [[ "$(json "[p['running'] for p in d if p['pid'] == $pid]" < "$work/ps.json")" == "[False]" ]] && { stopped=1; break; }
  sleep 0.2
done
[[ -n "$stopped" ]] && ok "kill: the command is no longer running" || fail "command kill" "$(cat "$work/ps.json")"
expect "command kill of an unknown pid: exit 3" 3 "$OMNI" command kill "$sandbox" 999999
expect "command run without a command: exit 64" 64 "$OMNI" command run "$sandbox"
expect "command run --background --stream: bad usage" 64 "$OMNI" command run "$sandbox" --background --stream -- true

echo "[cli] --request-timeout"
t0=$(date +%s)
expect "a request slower than --request-timeout fails: exit 1" 1 "$OMNI" command run "$sandbox" --request-timeout 1500 -- 'sleep 20'
(( $(date +%s) - t0 < 12 )) && ok "it gave up after about 1.5 s ($(( $(date +%s) - t0 )) s)" || fail "request timeout took $(( $(date +%s) - t0 )) s"
contains "it says so" "$err" "1500 ms"
expect "--request-timeout before the command (as in the public CLI)" 0 "$OMNI" --request-timeout 60000 --json command run "$sandbox" -- 'echo early'
[[ "$(json 'repr(d["stdout"])' <<<"$out")" == "'early\\n'" ]] && ok "global options before the command" || fail "global options" "$out"
expect "--request-timeout 0 is bad usage: exit 64" 64 "$OMNI" sandbox list --request-timeout 0

echo "[cli] exposures"
expect "sandbox expose (waits until ready)" 0 "$OMNI" sandbox expose "$sandbox" 8000 --ttl 300 --slug "cli-$$" --path /cli/ --json
exposure=$(json 'd["id"]' <<<"$out")
[[ "$(json 'd["status"], d["port"], d["openPath"], d["visibility"]' <<<"$out")" == "('ready', 8000, '/cli/', 'public')" ]] \
  && ok "expose: ready, its port, path and visibility" || fail "expose" "$out"
contains "expose: the slug names the host" "$(json 'd["hostname"]' <<<"$out")" "cli-$$"
first_expiry=$(json 'd["expiresAt"]' <<<"$out")
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$(json 'd["url"]' <<<"$out")" || true)"
[[ "$code" == "200" ]] && ok "the exposed URL reaches the sandbox's server" || fail "exposed URL" "$code"
expect "sandbox expose --private --no-wait --rewrite-host" 0 "$OMNI" sandbox expose "$sandbox" 8000 --private --no-wait --rewrite-host --json
private=$(json 'd["id"]' <<<"$out")
[[ "$(json 'd["visibility"], d["preserveHost"]' <<<"$out")" == "('private', False)" ]] && ok "expose --private --rewrite-host" || fail "expose --private" "$out"
private_url=$(json 'd["url"]' <<<"$out"); private_access=$(json 'd.get("accessUrl") or ""' <<<"$out")
[[ -n "$private_access" && "$private_access" != "$private_url" ]] && ok "a private exposure has an access URL with its token" || fail "private access URL" "$out"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$private_url" || true)"
[[ "$code" != "200" ]] && ok "the private URL without its token is refused ($code)" || fail "private URL answered without a token"
# --open hands the URL to $BROWSER (here a script that writes down what it was given).
printf '#!/bin/sh\necho "$1" > "%s/opened"\n' "$work" > "$work/browser"; chmod +x "$work/browser"
expect "sandbox expose --open" 0 env BROWSER="$work/browser" "$OMNI" sandbox expose "$sandbox" 8000 --open
opened_url="$(tail -n1 <<<"$out")"
for _ in $(seq 1 50); do [[ -s "$work/opened" ]] && break; sleep 0.1; done
[[ -n "$opened_url" && "$(cat "$work/opened" 2>/dev/null)" == "$opened_url" ]] && ok "expose --open: the browser got the URL" \
  || fail "expose --open" "printed '$opened_url'" "opened '$(cat "$work/opened" 2>/dev/null)'" "$err"
expect "sandbox exposures" 0 "$OMNI" sandbox exposures "$sandbox"
contains "exposures lists the first" "$out" "$exposure"
contains "exposures lists the private one" "$out" "$private"
expect "sandbox refresh-exposure --ttl" 0 "$OMNI" sandbox refresh-exposure "$sandbox" "$exposure" --ttl 3600 --json
[[ "$(json 'd["expiresAt"]' <<<"$out")" > "$first_expiry" ]] && ok "refresh: a later expiry" || fail "refresh" "$first_expiry" "$out"
expect "sandbox close" 0 "$OMNI" sandbox close "$sandbox" "$private"
expect "exposures --json after close" 0 "$OMNI" sandbox exposures "$sandbox" --json
[[ "$(json "[e['status'] for e in d if e['id'] == '$private']" <<<"$out")" == "['revoked']" ]] && ok "close: the exposure is revoked" || fail "close" "$out"
expect "close of an unknown exposure: exit 3" 3 "$OMNI" sandbox close "$sandbox" exp_doesnotexist
expect "expose of port 0: bad usage" 64 "$OMNI" sandbox expose "$sandbox" 0
expect "expose --slug that is not a slug: refused, exit 8" 8 "$OMNI" sandbox expose "$sandbox" 8000 --slug 'no/slashes'

echo "[cli] create --secure, --e2ee, list --limit, history"
expect "sandbox create --secure --json" 0 "$OMNI" sandbox create playground --secure --timeout 300 --json
secure=$(json 'd["sandboxID"]' <<<"$out")
token=$(json 'd["trafficToken"]' <<<"$out")
[[ "$token" =~ ^[a-f0-9]{64}$ ]] && ok "secure: a 64-hex traffic token" || fail "secure token" "$out"
"$OMNI" command run "$secure" -- 'cd /tmp && setsid -f python3 -m http.server 8000 >/dev/null 2>&1' >/dev/null 2>&1
expect "expose on the secure sandbox" 0 "$OMNI" sandbox expose "$secure" 8000 --wait-timeout 60 --json
secure_url=$(json 'd["url"]' <<<"$out")
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$secure_url" || true)"
[[ "$code" != "200" ]] && ok "secure: its preview refuses a request without the token ($code)" || fail "secure preview without token" "$code"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "e2b-traffic-access-token: $token" "$secure_url" || true)"
[[ "$code" == "200" ]] && ok "secure: with the token it answers" || fail "secure preview with token" "$code"

expect "sandbox create --e2ee" 0 "$OMNI" sandbox create playground --e2ee --timeout 300
sealed="$out"
keyfile="$OMNI_CONFIG_DIR/e2ee/$sealed.json"
[[ "$(stat -c %a "$keyfile" 2>/dev/null)" == "600" ]] && ok "e2ee: the key pair is kept, mode 0600" || fail "e2ee key file" "$(ls -l "$OMNI_CONFIG_DIR/e2ee" 2>&1)"
contains "e2ee: says where its key is" "$err" "$keyfile"
expect "e2ee: a later command (sealed request, sealed answer)" 0 "$OMNI" command run "$sealed" --json -- 'echo sealed-$((40+2))'
[[ "$(json 'repr(d["stdout"])' <<<"$out")" == "'sealed-42\\n'" ]] && ok "e2ee: the answer opens" || fail "e2ee command" "$out"
expect "e2ee: exec streams" 0 "$OMNI" sandbox exec "$sealed" -- 'echo streamed'
[[ "$out" == "streamed" ]] && ok "e2ee: exec output" || fail "e2ee exec" "$out"
printf 'secret file\n' > "$work/e2ee.txt"
expect "e2ee: files put" 0 "$OMNI" files put "$sealed" "$work/e2ee.txt" /tmp/e2ee.txt
expect "e2ee: files get" 0 "$OMNI" files get "$sealed" /tmp/e2ee.txt
[[ "$out" == "secret file" ]] && ok "e2ee: files round trip" || fail "e2ee files" "$out"
expect "e2ee: files ls (a sealed GET answer)" 0 "$OMNI" files ls "$sealed" /tmp
contains "e2ee: ls shows the file" "$out" "e2ee.txt"
expect "e2ee: command ps" 0 "$OMNI" command ps "$sealed" --json
expect "e2ee: expose (sealed POST)" 0 "$OMNI" sandbox expose "$sealed" 8000 --no-wait --json
[[ "$(json 'd["port"]' <<<"$out")" == "8000" ]] && ok "e2ee: exposure created" || fail "e2ee expose" "$out"
plain=$(curl -s -w ' %{http_code}' -X POST "$OMNIRUN_API_URL/sandboxes/$sealed/commands" -H "X-API-Key: $OMNIRUN_TEST_KEY" \
  -H 'Content-Type: application/json' -d '{"command":"echo plain"}')
[[ "$plain" == *" 400" ]] && ok "e2ee: the server refuses a plaintext request (so the CLI's were sealed)" || fail "e2ee plaintext" "$plain"
mkdir -p "$work/nokeys" && cp "$OMNI_CONFIG_DIR/credentials.json" "$work/nokeys/"
expect "e2ee: without the key pair, a request is refused: exit 8" 8 env OMNI_CONFIG_DIR="$work/nokeys" "$OMNI" command run "$sealed" -- true
printf '{"broken": true}' > "$work/nokeys-broken.json"; mkdir -p "$work/broken/e2ee"
cp "$OMNI_CONFIG_DIR/credentials.json" "$work/broken/"; cp "$work/nokeys-broken.json" "$work/broken/e2ee/$sealed.json"
expect "e2ee: a damaged key file is reported: exit 1" 1 env OMNI_CONFIG_DIR="$work/broken" "$OMNI" command run "$sealed" -- true
contains "e2ee: damaged key named" "$err" "damaged"

expect "sandbox list (3 or more running)" 0 "$OMNI" sandbox list --json
all=$(json 'len(d)' <<<"$out")
expect "sandbox list --limit 2" 0 "$OMNI" sandbox list --limit 2 --json
[[ "$all" -ge 3 && "$(json 'len(d)' <<<"$out")" == "2" ]] && ok "list --limit: at most that many ($all running)" || fail "list --limit" "$all" "$out"
expect "list --limit 0: bad usage" 64 "$OMNI" sandbox list --limit 0

expect "kill the secure and e2ee sandboxes" 0 "$OMNI" sandbox kill "$secure" "$sealed"
[[ ! -e "$keyfile" ]] && ok "kill removes the e2ee key pair" || fail "e2ee key left behind"
expect "sandbox history" 0 "$OMNI" sandbox history --limit 5
contains "history shows a killed sandbox" "$out" "$sealed"
expect "sandbox history --json --limit 2" 0 "$OMNI" sandbox history --json --limit 2
two=$(json '[h["sandboxID"] for h in d]' <<<"$out")
expect "sandbox history --offset 1 --limit 1" 0 "$OMNI" sandbox history --json --limit 1 --offset 1
[[ "$(json '[h["sandboxID"] for h in d]' <<<"$out")" == "['$(python3 -c "print($two[1])")']" ]] \
  && ok "history --offset pages ($two)" || fail "history --offset" "$two" "$out"
expect "history --limit 500: bad usage" 64 "$OMNI" sandbox history --limit 500

echo "[cli] llm chat --max-tokens --temperature"
expect "llm chat --max-tokens --temperature" 0 "$OMNI" llm chat -m test/echo --max-tokens 64 --temperature 0.3 "tuned"
[[ "$out" == "echo: tuned" ]] && ok "chat with both options" || fail "chat options" "$out"
if [[ -n "${OMNIRUN_TEST_LLM_LOG:-}" ]]; then
  last=$(grep '"tuned"' "$OMNIRUN_TEST_LLM_LOG" | tail -n1)
  [[ "$(json 'd.get("max_tokens"), d.get("temperature")' <<<"$last")" == "(64, 0.3)" ]] \
    && ok "the upstream got max_tokens 64 and temperature 0.3" || fail "upstream request" "$last"
fi
expect "llm chat --temperature 5: bad usage" 64 "$OMNI" llm chat -m test/echo --temperature 5 x
expect "llm chat --max-tokens 0: bad usage" 64 "$OMNI" llm chat -m test/echo --max-tokens 0 x

echo "[cli] desktop"
gui=""
built_templates=$(curl -sf "$OMNIRUN_API_URL/status" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["templates"]))')
expect "desktop scroll sideways: bad usage" 64 "$OMNI" desktop scroll "$sandbox" sideways
expect "desktop click --right --double: bad usage" 64 "$OMNI" desktop click "$sandbox" 1 1 --right --double
expect "desktop screenshot of a sandbox without a desktop: refused, exit 8" 8 "$OMNI" desktop screenshot "$sandbox" --output "$work/none.png"
contains "it says there is no desktop" "$err" "no desktop"
[[ ! -e "$work/none.png" ]] && ok "no file is written when there is no screen" || fail "a file was written without a screen"
expect "desktop open of a sandbox without a desktop: not ready, exit 1" 1 "$OMNI" desktop open "$sandbox" --no-browser --wait 3
if [[ " $built_templates " == *" desktop "* ]]; then
  # The first desktop sandbox of a fresh cache builds its snapshot (~2 minutes here).
  expect "create a desktop sandbox" 0 "$OMNI" sandbox create desktop --timeout 300
  gui="$out"
fi
if [[ "$gui" =~ ^sb_ ]]; then
  for _ in $(seq 1 150); do "$OMNI" desktop screen "$gui" >/dev/null 2>&1 && break; sleep 0.4; done
  expect "desktop screen" 0 "$OMNI" desktop screen "$gui" --json
  width=$(json 'd["width"]' <<<"$out")
  [[ "$width" -gt 0 ]] && ok "screen: its size ($(json 'd["width"], d["height"]' <<<"$out"))" || fail "desktop screen" "$out"
  expect "desktop move" 0 "$OMNI" desktop move "$gui" 40 30
  expect "screen after move" 0 "$OMNI" desktop screen "$gui" --json
  [[ "$(json 'd["cursorX"], d["cursorY"]' <<<"$out")" == "(40, 30)" ]] && ok "move: the pointer is there" || fail "desktop move" "$out"
  expect "desktop click" 0 "$OMNI" desktop click "$gui" 50 50
  expect "desktop click --double" 0 "$OMNI" desktop click "$gui" 50 50 --double
  expect "desktop click --right" 0 "$OMNI" desktop click "$gui" 50 50 --right
  expect "desktop type" 0 "$OMNI" desktop type "$gui" "hello desktop"
  expect "desktop press" 0 "$OMNI" desktop press "$gui" Escape
  expect "desktop scroll" 0 "$OMNI" desktop scroll "$gui" down --amount 2
  expect "desktop screenshot" 0 "$OMNI" desktop screenshot "$gui" --output "$work/shot.png"
  [[ "$(head -c 8 "$work/shot.png" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] && ok "screenshot: a PNG file" || fail "screenshot file"
  if "$OMNI" desktop screenshot "$gui" --scale 0.5 --output - > "$work/small.png" 2>"$work/stderr" \
     && [[ "$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print(struct.unpack(">I", d[16:20])[0])' "$work/small.png")" == "$(( width / 2 ))" ]]; then
    ok "screenshot --scale 0.5 --output -: a PNG half as wide on stdout"
  else
    fail "screenshot --scale 0.5 to stdout" "$(cat "$work/stderr")"
  fi
  rm -f "$work/opened"
  expect "desktop open" 0 env BROWSER="$work/browser" "$OMNI" desktop open "$gui" --wait 60
  for _ in $(seq 1 50); do [[ -s "$work/opened" ]] && break; sleep 0.1; done
  [[ "$(cat "$work/opened" 2>/dev/null)" == "$out" ]] && ok "desktop open: the browser got the live view's URL" || fail "desktop open browser" "$out"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -L -b '' "$out" || true)"
  [[ "$code" == "200" ]] && ok "desktop open: the live view's URL answers" || fail "desktop open URL" "$out: $code"
  "$OMNI" sandbox kill "$gui" >/dev/null 2>&1
elif [[ " $built_templates " != *" desktop "* ]]; then
  echo "  skip desktop input and screenshots (template desktop not built; the failure paths above ran)"
fi

echo "[cli] a long foreground command"
wait "$long_run"; long_status=$?
[[ $long_status == 0 && "$(cat "$work/long.out")" == "late-answer" ]] \
  && ok "command run: a command silent for 95 s still gets its answer ($(( $(date +%s) - long_started )) s)" \
  || fail "long command run" "exit $long_status" "$(cat "$work/long.out")" "$(cat "$work/long.err")"
