#!/usr/bin/env bash
# Install the host Debian packages OmniRun needs, only those that are missing.
# On a ready machine this runs no apt-get at all and returns at once.
# Usage: scripts/install-deps.sh [--check] [--browser]
#   --check: only report, exit 1 if something is missing
#   --browser: also the headless browser of the desktop live-view test (Debian's chromium)
set -euo pipefail

# The one list of host packages. Add new ones here.
PACKAGES=(
  qemu-system-x86 qemu-utils   # microvm VMM, qemu-img for qcow2 overlays
  mmdebstrap e2fsprogs         # root file system trees -> ext4 images
  debian-archive-keyring gpg mount  # mmdebstrap: archive keys, signed-by inference, chroot mounts
  cpio xz-utils zstd gzip      # initramfs packing, kernel module decompression
  kmod                         # depmod: module dependency order for the guest initramfs
  busybox-static               # test initramfs (scripts/test-boot-busybox.sh)
  uidmap                       # newuidmap/newgidmap for unprivileged use
  sqlite3 libsqlite3-dev       # embedded store
  libcurl4-openssl-dev         # static link of FoundationNetworking (omnirun bench's HTTP client)
  python3 python3-pip          # SDK tests, PyPI tools
  python3-aiosmtpd openssl     # tests: a real SMTP server with STARTTLS (its certificate made by openssl)
  python3-venv nodejs node-typescript tmux  # SDK tests: the Python SDK installed in a venv, the TypeScript SDK built with tsc and run by Node, omni shell in tmux
  zlib1g-dev                   # PNG codec of the screenshot scaling (linked by the server)
  curl ca-certificates
  iproute2 nftables            # per-sandbox netns, TAP, NAT
  procps file
)

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_only=0
for argument in "$@"; do
  case "$argument" in
    --check) check_only=1 ;;
    --browser) PACKAGES+=(chromium) ;;
    *) echo "install-deps.sh: unknown option $argument" >&2; exit 2 ;;
  esac
done

missing=()
# one dpkg-query call for all packages; unknown packages print nothing and make it exit 1
status=$(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for p in "${PACKAGES[@]}"; do
  if ! grep -qx "$p install ok installed" <<<"$status"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  omni_log "deps: all ${#PACKAGES[@]} host packages installed"
  exit 0
fi
omni_log "deps: missing: ${missing[*]}"
((check_only == 0)) || exit 1
omni_need_root

export DEBIAN_FRONTEND=noninteractive
omni_apt_update
omni_log "deps: apt-get install ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
omni_log "deps: done"
