#!/usr/bin/env bash
# The web console's terminal library, xterm.js, into <cache>/console-vendor/xterm (cached:
# nothing happens when it is there). Debian bookworm's libjs-xterm (3.8.1) ships a broken
# browser bundle (its xterm.js is a 288-byte CommonJS stub), and npm is not reachable here:
# the build of xterm.js 4 (with its fit add-on, MIT) that the `webssh` sdist on PyPI carries
# is used instead, pinned by version and SHA-256 (docs/console.md).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cache="${OMNIRUN_CACHE_DIR:-$HOME/.cache/omnirun}"
target="$cache/console-vendor/xterm"
version="1.6.3"
sha256="2bce5bbaf206ad345910c7e4dc8024b3c418e681c9f5ff098f1802beff76e100"
[[ -f "$target/.source-$sha256" ]] && exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
omni_log "console: fetching xterm.js (webssh $version sdist from PyPI)"
python3 -m pip download -q --no-deps --no-binary :all: "webssh==$version" -d "$work" >&2 \
  || python3 -m pip download -q --no-deps --no-binary :all: --break-system-packages "webssh==$version" -d "$work" >&2
archive="$work/webssh-$version.tar.gz"
echo "$sha256  $archive" | sha256sum -c --quiet - || { omni_log "console: webssh-$version.tar.gz has another SHA-256"; exit 1; }
tar -xzf "$archive" -C "$work" "webssh-$version/webssh/static/js/xterm.min.js" \
  "webssh-$version/webssh/static/js/xterm-addon-fit.min.js" "webssh-$version/webssh/static/css/xterm.min.css"
rm -rf "$target.tmp"
mkdir -p "$target.tmp"
cp "$work/webssh-$version/webssh/static/js/xterm.min.js" "$target.tmp/xterm.js"
cp "$work/webssh-$version/webssh/static/js/xterm-addon-fit.min.js" "$target.tmp/xterm-addon-fit.js"
cp "$work/webssh-$version/webssh/static/css/xterm.min.css" "$target.tmp/xterm.css"
touch "$target.tmp/.source-$sha256"
rm -rf "$target"
mv "$target.tmp" "$target"
omni_log "console: xterm.js in $target"
