#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the tests that boot real VMs.
# Needs the guest image (make image); builds the test binaries itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/opt/swift/usr/bin:$PATH
# Per-run files of the tests (sandboxes, servers) in a folder of this run; template
# snapshots in a shared folder, reused across runs (they are keyed by their inputs).
cache="${OMNIRUN_CACHE_DIR:-$HOME/.cache/omnirun}"
export OMNIRUN_TEST_SNAPSHOT_DIR="${OMNIRUN_TEST_SNAPSHOT_DIR:-$cache/test-snapshots}"
export OMNIRUN_TEST_DATA_DIR="${OMNIRUN_TEST_DATA_DIR:-$cache/test-runs/run-$$}"
mkdir -p "$OMNIRUN_TEST_DATA_DIR" "$OMNIRUN_TEST_SNAPSHOT_DIR"
# Snapshots of earlier inputs (older agents, other checkouts, the per-run templates of the
# custom-template tests) pile up: those untouched for two days go (current ones are remade).
find "$OMNIRUN_TEST_SNAPSHOT_DIR" -mindepth 1 -maxdepth 1 -mtime +2 -exec rm -rf {} + 2>/dev/null || true
start=$(date +%s)
# Host packages and QEMU's user (the server runs every VMM as it); quick when ready.
scripts/install-deps.sh
echo "[test] building tests"
swift build --build-tests
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
pgdir="/tmp/omnirun-test-postgres-$$"
trap 'postgres_stop "$pgdir"' EXIT
postgres_start "$pgdir"
openai_install
anthropic_install
cryptography_install
# The web console's test (and the desktop's live view) drive headless Chromium.
scripts/install-deps.sh --browser
status=0
# The control plane on fake guests answers from this test process: its timeouts and idle
# kills are timed, and the VM suites' load would starve it. It runs first, on its own.
plane='^ControlPlaneTests\.'
echo "[test] the control plane on fake guests (parallel, before the VMs)"
swift test --skip-build --filter "$plane" 2>&1 | tee .build/test-plane-output.log || status=$?
echo "[test] running (real QEMU microVMs, a real PostgreSQL; parallel)"
heavy='TemplateTests[./]|DesktopScreenTests[./]|DesktopLiveViewTests[./]|ConsoleTests[./]|ContextTests[./]|ForkTests[./]|CodingAgentTests[./]|MultiNodeTests[./]'
attacks='ListenerLimitTests[./]|GatewayLimitTests[./]|ExposureLifecycleTests[./]|HostileAgentClientTests[./]|HostileGuestTests[./]|WebhookAddressTests[./]|QuotaTests[./]|EgressDefaultsTests[./]|UserSwitchTests[./]'
swift test --skip-build --skip "$plane|$heavy|$attacks" 2>&1 | tee .build/test-output.log || status=$?
# On their own: compilers under emulation take the CPU for minutes, which tests with tight
# timing (timeouts, idle kills) must not share; so do Jupyter kernels starting (contexts), the
# many resumes of a fork, the desktop (XFCE redrawing at a new size, Chromium), the web
# console in Chromium, and the
# coding agents (Claude Code and Codex under emulation), and three servers of one cluster
# (MultiNodeTests: their leases and the lost-node deadline are timed). A
# template's test runs when its image is built (make test builds javascript and php) or when
# OMNIRUN_TEST_TEMPLATES asks for it. The patterns take `Suite.test` and `Suite/test` alike
# (tests declared in an extension of a suite).
echo "[test] built-in templates run their toolchains; code contexts, fork and the coding agents"
swift test --skip-build --filter "$heavy" 2>&1 | tee .build/test-templates-output.log || status=$?
# The attacks (floods, slowloris, hostile guests and agents, private networks, quotas) one at
# a time: each measures the descriptors, memory and time of a server (or of this process)
# while it runs, which no other test may share, and each is timed against its own limits.
echo "[test] attacks on the host, one at a time"
swift test --skip-build --no-parallel --filter "$attacks" 2>&1 | tee .build/test-attacks-output.log || status=$?
# The SDKs and the omni CLI against one more real server (scripts/test-sdks.sh).
echo "[test] SDKs (Python, TypeScript) and the omni CLI"
sdk_status=0
scripts/test-sdks.sh > .build/sdk-output.log 2>&1 || sdk_status=$?
grep -E '^\[sdk\]|^\[cli\] [0-9]|FAIL|^[0-9]+ (passed|failed)|^# (pass|fail)' .build/sdk-output.log | tail -n 30
if [[ $sdk_status -ne 0 ]]; then
  echo "[test] FAIL: the SDK/CLI suites failed (.build/sdk-output.log)"
  status=1
fi
echo "[test] fuzzing the API with schemathesis"
fuzz_status=0
scripts/fuzz-api.sh > .build/fuzz-output.log 2>&1 || fuzz_status=$?
tail -n 25 .build/fuzz-output.log
if [[ $fuzz_status -ne 0 ]]; then
  echo "[test] FAIL: schemathesis found server errors (.build/fuzz-output.log)"
  status=1
fi
# The benchmark is not timed here (the machines are noisy): a short run keeps it working.
echo "[test] benchmark smoke (omnirun bench with a small N)"
bench_status=0
OMNIRUN_SNAPSHOT_DIR="$OMNIRUN_TEST_SNAPSHOT_DIR" .build/debug/omnirun bench \
  --data-dir "$OMNIRUN_TEST_DATA_DIR/bench" --runs 2 --cold-runs 1 --burst 3 --burst-pool 2 --density 2 --create-rounds 3 --create-burst 3 \
  --file-mib 4 --json "$OMNIRUN_TEST_DATA_DIR/bench.json" > .build/bench-smoke.log 2>&1 || bench_status=$?
tail -n 12 .build/bench-smoke.log
if [[ $bench_status -ne 0 ]] || ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["results"] and d["figures"]' "$OMNIRUN_TEST_DATA_DIR/bench.json"; then
  echo "[test] FAIL: the benchmark smoke run failed (.build/bench-smoke.log)"
  status=1
fi
rm -rf "$OMNIRUN_TEST_DATA_DIR/bench"
# Every QEMU a test started must be gone.
leftover=$(pgrep -f "qemu-system-x86_64.*$OMNIRUN_TEST_DATA_DIR/" || true)
if [[ -n "$leftover" ]]; then
  echo "[test] FAIL: QEMU processes left behind (now ended): $leftover"
  for pid in $leftover; do kill -9 "$pid" 2>/dev/null || true; done
  status=1
fi
if [[ -d "$OMNIRUN_TEST_DATA_DIR/sandboxes" ]] && [[ -n "$(ls -A "$OMNIRUN_TEST_DATA_DIR/sandboxes")" ]]; then
  echo "[test] FAIL: sandbox directories left behind: $(ls "$OMNIRUN_TEST_DATA_DIR/sandboxes")"
  status=1
fi
[[ $status -eq 0 ]] && rm -rf "$OMNIRUN_TEST_DATA_DIR"
echo "[test] finished in $(( $(date +%s) - start ))s with status $status"
exit $status
