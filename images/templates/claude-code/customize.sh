#!/usr/bin/env bash
# mmdebstrap --customize-hook for the claude-code template (runs on the host after the hooks of
# its parents). Claude Code from PyPI: the `claude-agent-sdk` wheel bundles the Claude Code CLI
# as one self-contained executable (claude_agent_sdk/_bundled/claude, ~400 MB; it needs no Node).
# The wheel is downloaded once into the cache (pinned version, checked against its sha256); only
# the executable is taken from it, into /usr/local/lib/claude-code/<version>, `claude` on PATH.
# Settings for every sandbox: first-run screens done, the workspace trusted, no self-update
# and no telemetry (sandboxes are often air-gapped). The model endpoint is not set here: the
# server gives every sandbox ANTHROPIC_BASE_URL/ANTHROPIC_AUTH_TOKEN (the LLM proxy through the
# host gateway) unless the sandbox brings its own Anthropic key.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }

SDK_VERSION=0.2.189
CLAUDE_VERSION=2.1.332
WHEEL="claude_agent_sdk-$SDK_VERSION-py3-none-manylinux_2_17_x86_64.whl"
WHEEL_SHA256=b26a6a30a4e2cb025a6f5c95e1ce4469b38fcc51015c392f627bea7c948d67ad

cache="${OMNI_CACHE:-${OMNIRUN_CACHE_DIR:-${HOME:-/root}/.cache/omnirun}}/downloads/pypi"
mkdir -p "$cache"
have_wheel() { [[ -f "$cache/$WHEEL" ]] && [[ "$(sha256sum <"$cache/$WHEEL" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]]; }
if ! have_wheel; then
  echo "[image] claude-code: downloading $WHEEL from PyPI" >&2
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
    --python-version 3.11 --dest "$tmp" "claude-agent-sdk==$SDK_VERSION" >&2
  [[ "$(sha256sum <"$tmp/$WHEEL" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]] ||
    { echo "customize.sh: $WHEEL does not match its pinned sha256" >&2; exit 1; }
  mv -f "$tmp/$WHEEL" "$cache/$WHEEL"
fi

dir="/usr/local/lib/claude-code/$CLAUDE_VERSION"
mkdir -p "$root$dir"
python3 - "$cache/$WHEEL" "$root$dir/claude" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("claude_agent_sdk/_bundled/claude") as source, open(sys.argv[2], "wb") as target:
    shutil.copyfileobj(source, target, 1 << 20)
PY
chmod 0755 "$root$dir/claude"
ln -sfn "$dir/claude" "$root/usr/local/bin/claude"
version=$(chroot "$root" claude --version)
[[ "$version" == "$CLAUDE_VERSION "* ]] || { echo "customize.sh: claude --version says '$version'" >&2; exit 1; }
echo "[image] claude-code: $version" >&2

# Per-user settings for `user` (the sandbox's default user) and root.
settings() { # HOME WORKSPACE
  mkdir -p "$root$1/.claude"
  cat >"$root$1/.claude/settings.json" <<JSON
{
  "env": {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"
  }
}
JSON
  cat >"$root$1/.claude.json" <<JSON
{
  "hasCompletedOnboarding": true,
  "lastOnboardingVersion": "$CLAUDE_VERSION",
  "autoUpdates": false,
  "projects": {
    "$2": {"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true, "allowedTools": []}
  }
}
JSON
}
mkdir -p "$root/home/user/workspace"
settings /home/user /home/user/workspace
settings /root /home/user/workspace
chroot "$root" chown -R user:user /home/user/workspace /home/user/.claude /home/user/.claude.json
chmod 0600 "$root/home/user/.claude.json" "$root/root/.claude.json"

# --- `coder`: the user the public CLI's `beamup` runs agents as (it chowns their configuration
# to coder:coder and starts them as coder): a second name of uid/gid 1000, home /home/coder
# (a link to /home/user), so that files and processes are the default user's either way. ---
chroot "$root" getent group coder >/dev/null || chroot "$root" groupadd --non-unique --gid 1000 coder
chroot "$root" getent passwd coder >/dev/null ||
  chroot "$root" useradd --non-unique --uid 1000 --gid 1000 --no-create-home --home-dir /home/coder --shell /bin/bash coder
ln -sfn user "$root/home/coder"
