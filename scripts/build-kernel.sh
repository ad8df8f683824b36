#!/usr/bin/env bash
# Fetch Debian 12's cloud kernel (linux-image-*-cloud-amd64) and extract what the guest needs.
# The package is downloaded with apt-get download and unpacked with dpkg -x: never installed.
#
# Output: $CACHE/kernel/<key>/
#   vmlinuz                 the kernel
#   config                  the kernel's config-* file
#   version                 kernel release (uname -r) and Debian package version
#   modules/*.ko            uncompressed modules the guest loads
#   modules/modules.order   load order, dependencies first, one file name per line
#   modules/README          which needed features are built in and which are modules
#   inputs.txt              what the key was computed from
# Prints the output directory as the last stdout line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

META_PACKAGE="linux-image-cloud-amd64"

# Drivers the guest always needs (virtio-mmio transport, disk, agent channel, network).
WANT_MODULES=(virtio virtio_ring virtio_mmio virtio_blk virtio_console virtio_net)

# Kernel features the guest needs: "CONFIG_SYMBOL module purpose". If the symbol is =m its
# module (and the module's dependencies) is added to the load order; "-" means the feature
# cannot be a module and must be =y. A needed symbol that is not set at all is an error.
FEATURES=(
  "CONFIG_BLK_DEV_INITRD - initramfs"
  "CONFIG_DEVTMPFS - devtmpfs on /dev"
  "CONFIG_PROC_FS - /proc"
  "CONFIG_SYSFS - /sys"
  "CONFIG_TMPFS - tmpfs"
  "CONFIG_SHMEM - tmpfs backing"
  "CONFIG_SERIAL_8250 8250 serial console ttyS0"
  "CONFIG_SERIAL_8250_CONSOLE - console on ttyS0"
  "CONFIG_EXT4_FS ext4 root file system"
  "CONFIG_CRYPTO_CRC32C crc32c_generic ext4 metadata checksums"
  "CONFIG_UNIX unix unix sockets"
  "CONFIG_INOTIFY_USER - inotify (file watch)"
  "CONFIG_EPOLL - epoll (agent event loop)"
  "CONFIG_EVENTFD - eventfd"
  "CONFIG_SIGNALFD - signalfd"
  "CONFIG_TIMERFD - timerfd"
  "CONFIG_FUTEX - futex"
  "CONFIG_UNIX98_PTYS - PTYs for terminals"
  "CONFIG_ACPI - virtio-mmio device discovery on QEMU microvm"
  "CONFIG_VIRTIO virtio virtio core"
  "CONFIG_VIRTIO_MMIO virtio_mmio virtio-mmio transport"
  "CONFIG_VIRTIO_BLK virtio_blk disk"
  "CONFIG_VIRTIO_CONSOLE virtio_console virtio-serial agent channel"
  "CONFIG_VIRTIO_NET virtio_net network"
)
# Reported in modules/README for information, not loaded.
INFO_SYMBOLS=(CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES CONFIG_HW_RANDOM_VIRTIO CONFIG_VSOCKETS
  CONFIG_VIRTIO_VSOCKETS CONFIG_FUSE_FS CONFIG_OVERLAY_FS CONFIG_VIRTIO_BALLOON
  CONFIG_MODULE_COMPRESS_NONE CONFIG_MODULE_COMPRESS_XZ CONFIG_MODULE_COMPRESS_ZSTD
  CONFIG_RD_GZIP CONFIG_RD_ZSTD CONFIG_RD_LZ4 CONFIG_RD_XZ)

omni_mkcache "$OMNI_CACHE/kernel" "$OMNI_CACHE/downloads"

# --- resolve the concrete package (memoised; apt-get update only if the lookup fails) ---
resolve_package() {
  omni_apt_query depends "$META_PACKAGE" |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }'
}
pkg=$(resolve_package)
if [[ -z "$pkg" ]]; then
  omni_need_root
  omni_apt_update
  pkg=$(resolve_package)
fi
[[ -n "$pkg" ]] || omni_die "kernel: cannot resolve $META_PACKAGE to a linux-image-*-cloud-amd64 package"
show=$(omni_apt_query show --no-all-versions "$pkg")
version=$(awk '$1 == "Version:" { print $2; exit }' <<<"$show")
deb_sha=$(awk '$1 == "SHA256:" { print $2; exit }' <<<"$show")
[[ -n "$version" && -n "$deb_sha" ]] || omni_die "kernel: no version/SHA256 for $pkg in apt metadata"

inputs=$(
  omni_inputs_file build-kernel.sh "${BASH_SOURCE[0]}"
  omni_inputs_file lib.sh "$OMNI_SCRIPTS_DIR/lib.sh"
  printf 'package %s %s %s\n' "$pkg" "$version" "$deb_sha"
)
key=$(omni_hash_stdin <<<"$inputs")
out="$OMNI_CACHE/kernel/$key"

if [[ -f "$out/vmlinuz" && "${OMNIRUN_REBUILD:-0}" != 1 ]]; then
  omni_log "kernel: cached $pkg $version"
  printf '%s\n' "$out"
  exit 0
fi

omni_need_root
omni_need_cmd apt-get dpkg depmod
omni_lock kernel
if [[ -f "$out/vmlinuz" && "${OMNIRUN_REBUILD:-0}" != 1 ]]; then
  omni_log "kernel: cached $pkg $version (built by a concurrent run)"
  printf '%s\n' "$out"
  exit 0
fi

tmp=$(omni_tmpdir kernel)
trap 'omni_rm_tree "$tmp"' EXIT

# --- download (the .deb is kept in $CACHE/downloads, verified against apt's SHA256) ---
deb="$OMNI_CACHE/downloads/${pkg}_${version//:/%3a}_amd64.deb"
if [[ -f "$deb" && "$(omni_sha256_file "$deb")" == "$deb_sha" ]]; then
  omni_log "kernel: using downloaded $(basename "$deb")"
else
  omni_log "kernel: downloading $pkg $version"
  mkdir "$tmp/dl"
  (cd "$tmp/dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version" >&2)
  got=("$tmp"/dl/*.deb)
  [[ -f "${got[0]}" ]] || omni_die "kernel: apt-get download produced no .deb"
  [[ "$(omni_sha256_file "${got[0]}")" == "$deb_sha" ]] || omni_die "kernel: SHA256 mismatch for ${got[0]}"
  mv -f "${got[0]}" "$deb"
fi

# --- unpack ---
omni_log "kernel: dpkg -x $(basename "$deb")"
dpkg -x "$deb" "$tmp/x"
kdirs=("$tmp"/x/lib/modules/*/)
[[ ${#kdirs[@]} -eq 1 && -d "${kdirs[0]}" ]] || omni_die "kernel: expected one lib/modules/<release> in the package"
krel=$(basename "${kdirs[0]}")
moddir="$tmp/x/lib/modules/$krel"
config="$tmp/x/boot/config-$krel"
[[ -f "$tmp/x/boot/vmlinuz-$krel" && -f "$config" ]] || omni_die "kernel: vmlinuz/config missing in package"

stage="$tmp/out"
mkdir -p "$stage/modules"
cp "$tmp/x/boot/vmlinuz-$krel" "$stage/vmlinuz"
cp "$config" "$stage/config"
printf 'release %s\npackage %s %s\n' "$krel" "$pkg" "$version" >"$stage/version"

# --- which features are modules ---
config_state() { # SYMBOL -> y | m | n
  local v
  v=$(awk -F= -v k="$1" '$1 == k { print $2; exit }' "$config")
  printf '%s\n' "${v:-n}"
}
want=("${WANT_MODULES[@]}")
readme_rows=()
for f in "${FEATURES[@]}"; do
  read -r sym mod purpose <<<"$f"
  st=$(config_state "$sym")
  case "$st" in
    y) readme_rows+=("$(printf '%-34s built-in   %s' "$sym" "$purpose")") ;;
    m)
      [[ "$mod" != "-" ]] || omni_die "kernel: $sym=m but the guest needs it built in"
      readme_rows+=("$(printf '%-34s module     %s (%s.ko)' "$sym" "$purpose" "$mod")")
      want+=("$mod")
      ;;
    *) omni_die "kernel: $sym is not set in $krel's config; the guest needs it ($purpose)" ;;
  esac
done

# --- dependency order from modules.dep (the package has none: depmod makes it) ---
depmod -b "$tmp/x" "$krel"
declare -A path_of=() deps_of=() emitted=()
while IFS= read -r line; do
  file="${line%%:*}"
  name=$(basename "$file")
  name="${name%%.ko*}"
  name="${name//-/_}"
  path_of[$name]="$file"
  deps_of[$name]="${line#*:}"
done <"$moddir/modules.dep"

order=()
visit() { # depth-first: dependencies before the module
  local name="${1//-/_}" d dn
  [[ -z "${emitted[$name]:-}" ]] || return 0
  [[ -n "${path_of[$name]:-}" ]] || omni_die "kernel: module $name not found in $krel"
  emitted[$name]=1
  for d in ${deps_of[$name]}; do
    dn=$(basename "$d")
    visit "${dn%%.ko*}"
  done
  order+=("$name")
}
for m in "${want[@]}"; do
  visit "$m"
done

for name in "${order[@]}"; do
  src="$moddir/${path_of[$name]}"
  dst="$stage/modules/$name.ko"
  case "$src" in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) omni_die "kernel: unknown module file type $src" ;;
  esac
  printf '%s.ko\n' "$name" >>"$stage/modules/modules.order"
done
compressed=$(grep -c '\.ko\.' "$moddir/modules.dep" || true)

{
  printf 'Guest kernel modules for %s (%s %s)\n\n' "$krel" "$pkg" "$version"
  printf 'modules.order: load in this order (dependencies first), one file per line.\n'
  printf 'Modules in the package that are compressed: %s (these were decompressed).\n\n' "$compressed"
  printf 'Needed kernel features:\n'
  printf '  %s\n' "${readme_rows[@]}"
  printf '\nOther symbols (information):\n'
  for sym in "${INFO_SYMBOLS[@]}"; do
    printf '  %-34s %s\n' "$sym" "$(config_state "$sym")"
  done
  printf '\nLoad order and why:\n'
  for name in "${order[@]}"; do
    deps=""
    for d in ${deps_of[$name]}; do
      dn=$(basename "$d")
      deps+=" ${dn%%.ko*}"
    done
    printf '  %-16s depends on:%s\n' "$name.ko" "${deps:- (nothing)}"
  done
  printf '\nNote: CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=%s. On QEMU microvm the virtio-mmio devices\n' "$(config_state CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES)"
  printf 'are found through ACPI (DSDT, _HID LNRO0005), so keep ACPI on (do not pass acpi=off).\n'
} >"$stage/modules/README"
printf '%s\n' "$inputs" >"$stage/inputs.txt"

# --- publish atomically ---
if [[ -e "$out" ]]; then
  mv -T "$out" "$tmp/old" # forced rebuild: move the old one aside with one rename first
fi
mv -T "$stage" "$out"
omni_log "kernel: $krel ready, modules: ${order[*]}"
printf '%s\n' "$out"
