#!/usr/bin/env bash
# mmdebstrap --customize-hook for the codex template (runs on the host after the hooks of its
# parents). The OpenAI Codex CLI from PyPI: the `openai-codex-cli-bin` wheel carries the native
# `codex` executable with its helpers (codex-code-mode-host, rg, bwrap). The wheel is downloaded
# once into the cache (pinned version, checked against its sha256) and its codex_cli_bin folder
# is laid out as /usr/local/lib/codex (the layout its codex-package.json describes).
# /usr/local/bin/codex starts it with the OmniRun LLM proxy as the model provider
# (/etc/codex/config.toml), or with OpenAI's own when the sandbox brings an OPENAI_API_KEY.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }

CODEX_VERSION=0.163.0
WHEEL="openai_codex_cli_bin-$CODEX_VERSION-py3-none-manylinux_2_17_x86_64.whl"
WHEEL_SHA256=76db41fb07fdf9ddacbe892b48d21dfde270031ec0f5666b5e558114355f006d

cache="${OMNI_CACHE:-${OMNIRUN_CACHE_DIR:-${HOME:-/root}/.cache/omnirun}}/downloads/pypi"
mkdir -p "$cache"
have_wheel() { [[ -f "$cache/$WHEEL" ]] && [[ "$(sha256sum <"$cache/$WHEEL" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]]; }
if ! have_wheel; then
  echo "[image] codex: downloading $WHEEL from PyPI" >&2
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
    --python-version 3.11 --dest "$tmp" "openai-codex-cli-bin==$CODEX_VERSION" >&2
  [[ "$(sha256sum <"$tmp/$WHEEL" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]] ||
    { echo "customize.sh: $WHEEL does not match its pinned sha256" >&2; exit 1; }
  mv -f "$tmp/$WHEEL" "$cache/$WHEEL"
fi

python3 - "$cache/$WHEEL" "$root/usr/local/lib/codex" <<'PY'
import os, shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or not name.startswith("codex_cli_bin/") or name.endswith(".py"):
            continue
        path = os.path.join(target, name[len("codex_cli_bin/"):])
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with archive.open(info) as source, open(path, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.chmod(path, 0o755 if (info.external_attr >> 16) & 0o111 else 0o644)
PY

cat >"$root/usr/local/bin/codex" <<'SH'
#!/bin/sh
# The Codex CLI (/usr/local/lib/codex). Its model provider is the OmniRun LLM proxy
# (/etc/codex/config.toml) unless the sandbox brought its own OpenAI key: then OpenAI's.
if [ -n "${OPENAI_API_KEY:-}" ] && [ "$OPENAI_API_KEY" != "omnirun-sandbox" ]; then
  exec /usr/local/lib/codex/bin/codex -c model_provider=openai "$@"
fi
exec /usr/local/lib/codex/bin/codex "$@"
SH
chmod 0755 "$root/usr/local/bin/codex"

mkdir -p "$root/etc/codex"
cat >"$root/etc/codex/config.toml" <<'TOML'
# Codex in an OmniRun sandbox. The model provider is OmniRun's LLM proxy (OpenAI Responses),
# reached through the host gateway with no network device; every token is charged to the
# sandbox's owner. ~/.codex/config.toml or `codex -c key=value` override any of this.
model_provider = "omnirun"
# Sandboxes are disposable and often air-gapped: no update check.
check_for_update_on_startup = false

[features]
# Each codex runs its own app server: the shared background daemon would first install a copy
# of itself into ~/.codex (a minute under emulation) and keep the environment of its first start.
daemon_auto_start = false

[model_providers.omnirun]
name = "OmniRun LLM proxy"
base_url = "http://127.0.0.1:18080/llm/v1"
env_key = "OMNIRUN_LLM_API_KEY"
wire_api = "responses"

[projects."/home/user/workspace"]
trust_level = "trusted"
TOML
mkdir -p "$root/home/user/workspace"
chroot "$root" chown user:user /home/user/workspace
version=$(chroot "$root" /usr/local/bin/codex --version)
[[ "$version" == "codex-cli $CODEX_VERSION" ]] || { echo "customize.sh: codex --version says '$version'" >&2; exit 1; }
echo "[image] codex: $version" >&2

# --- `coder`: the user the public CLI's `beamup` runs agents as (it chowns their configuration
# to coder:coder and starts them as coder): a second name of uid/gid 1000, home /home/coder
# (a link to /home/user), so that files and processes are the default user's either way. ---
chroot "$root" getent group coder >/dev/null || chroot "$root" groupadd --non-unique --gid 1000 coder
chroot "$root" getent passwd coder >/dev/null ||
  chroot "$root" useradd --non-unique --uid 1000 --gid 1000 --no-create-home --home-dir /home/coder --shell /bin/bash coder
ln -sfn user "$root/home/coder"
