#!/usr/bin/env bash
# mmdebstrap --customize-hook for the zig template (runs on the host after playground's hook).
# Installs the Zig compiler from the `ziglang` wheel on PyPI: the wheel is downloaded once on
# the host into the cache (pinned version, checked against its sha256), then installed inside
# the tree with the guest's own pip, without network.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }

ZIG_VERSION=0.17.1
WHEEL="ziglang-$ZIG_VERSION-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl"
WHEEL_SHA256=ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54

cache="${OMNI_CACHE:-${OMNIRUN_CACHE_DIR:-${HOME:-/root}/.cache/omnirun}}/downloads/pypi"
mkdir -p "$cache"
have_wheel() { [[ -f "$cache/$WHEEL" ]] && [[ "$(sha256sum <"$cache/$WHEEL" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]]; }
if ! have_wheel; then
  echo "[image] zig: downloading $WHEEL from PyPI" >&2
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_12_x86_64 \
    --python-version 3.11 --dest "$tmp" "ziglang==$ZIG_VERSION" >&2
  [[ "$(sha256sum <"$tmp/$WHEEL" | cut -d' ' -f1)" == "$WHEEL_SHA256" ]] ||
    { echo "customize.sh: $WHEEL does not match its pinned sha256" >&2; exit 1; }
  mv -f "$tmp/$WHEEL" "$cache/$WHEEL"
fi

# the guest's pip installs it (records it in the guest's package metadata; `pip uninstall` works)
cp "$cache/$WHEEL" "$root/tmp/$WHEEL"
# (as root, Debian's pip installs into /usr/local/lib/python3.X/dist-packages)
chroot "$root" python3 -m pip install --quiet --no-index --no-deps --no-compile --root-user-action=ignore \
  --break-system-packages "/tmp/$WHEEL" >&2
rm -f "$root/tmp/$WHEEL"
zig=$(chroot "$root" python3 -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
[[ -x "$root$zig" ]] || { echo "customize.sh: zig not found at $zig after pip install" >&2; exit 1; }
ln -sfn "$zig" "$root/usr/local/bin/zig"
chroot "$root" zig version >&2

mkdir -p "$root/usr/local/lib/omnirun"
cat >"$root/usr/local/lib/omnirun/warm-zig" <<'WARM'
#!/bin/bash
# Builds and runs a tiny program as the sandbox user (fills ~user/.cache/zig before the snapshot).
set -euo pipefail
exec runuser -u user -- bash -lc '
  d=$(mktemp -d) && cd "$d"
  printf "pub fn main() void {}\n" >warm.zig
  zig build-exe warm.zig && ./warm
  cd / && rm -rf "$d"'
WARM
chmod 0755 "$root/usr/local/lib/omnirun/warm-zig"
rm -rf "$root/root/.cache"
