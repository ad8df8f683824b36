#!/usr/bin/env bash
# Install the host Debian packages OmniRun needs, only those that are missing, and
# the unprivileged user QEMU runs as (omnirun-qemu, or $OMNIRUN_QEMU_USER).
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

# QEMU runs as this unprivileged system user (never as root; the server starts each VMM as it).
QEMU_USER="${OMNIRUN_QEMU_USER:-omnirun-qemu}"
ensure_qemu_user() {
  [[ "$QEMU_USER" == "root" ]] && return 0
  if ! id -u "$QEMU_USER" >/dev/null 2>&1; then
    ((check_only == 0)) || { omni_log "deps: missing: user $QEMU_USER"; return 1; }
    omni_need_root
    omni_log "deps: creating the system user $QEMU_USER (QEMU runs as it)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$QEMU_USER"
  fi
  # /dev/kvm belongs to the kvm group.
  if getent group kvm >/dev/null && ! id -nG "$QEMU_USER" | tr ' ' '\n' | grep -qx kvm; then
    ((check_only == 0)) || return 0
    omni_need_root
    usermod -aG kvm "$QEMU_USER"
  fi
}

# Internet access (sandboxes with `internet: true`, template build steps): replies from the
# internet arrive on the host's uplink, which must forward IPv4 to the sandboxes' devices. Only
# the device of the default route is changed (not net.ipv4.ip_forward for every device), and
# only until the next reboot; OMNIRUN_KEEP_FORWARDING=1 leaves it as it is.
uplink_forwarding() {
  local device file
  [[ "${OMNIRUN_KEEP_FORWARDING:-0}" != 1 && $EUID -eq 0 ]] && command -v ip >/dev/null || return 0
  device=$(ip -4 route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
  file="/proc/sys/net/ipv4/conf/$device/forwarding"
  [[ -n "$device" && -w "$file" && "$(cat "$file")" != 1 ]] || return 0
  echo 1 >"$file"
  omni_log "deps: IPv4 forwarding on $device (replies from the internet to sandboxes and template builds)"
}

missing=()
# one dpkg-query call for all packages; unknown packages print nothing and make it exit 1
status=$(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for p in "${PACKAGES[@]}"; do
  if ! grep -qx "$p install ok installed" <<<"$status"; then
    missing+=("$p")
  fi
done

# The web console's terminal library (cached; scripts/console-vendor.sh).
console_vendor() {
  ((check_only == 1)) || "$(dirname "${BASH_SOURCE[0]}")/console-vendor.sh"
}

if ((${#missing[@]} == 0)); then
  omni_log "deps: all ${#PACKAGES[@]} host packages installed"
  ensure_qemu_user
  ((check_only == 1)) || uplink_forwarding
  console_vendor
  exit 0
fi
omni_log "deps: missing: ${missing[*]}"
((check_only == 0)) || exit 1
omni_need_root

export DEBIAN_FRONTEND=noninteractive
omni_apt_update
omni_log "deps: apt-get install ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
ensure_qemu_user
omni_log "deps: done"
uplink_forwarding
console_vendor
