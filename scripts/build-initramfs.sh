#!/usr/bin/env bash
# Build the guest initramfs around the agent binary (which runs as PID 1, /init).
# Usage: scripts/build-initramfs.sh AGENT_BINARY
#   OMNIRUN_INITRAMFS_COMPRESS=none|gzip   (default none, measured under TCG with
#     scripts/test-boot-busybox.sh --compare: the guest kernel unpacks an agent-sized
#     initramfs, 22.9 MB raw / 8.3 MB gzip, in 0.23-0.37 s raw vs 0.60-0.84 s gzip; for a
#     2.4 MB one 0.07-0.10 s vs 0.11-0.18 s. Loading the larger file costs the host ~nothing.)
#
# Contents (newc cpio):
#   /init                         the agent (0755)
#   <ldd paths>                   the shared libraries it links + the loader, as real files at
#                                 the absolute paths ldd reports (libc, libm, libstdc++, libgcc_s,
#                                 /lib64/ld-linux-x86-64.so.2 for a Swift --static-swift-stdlib build)
#   /lib/modules/*.ko             from build-kernel.sh, uncompressed
#   /lib/modules/modules.order    load order, one file name per line
#   /dev/console (c 5 1), /dev/null (c 1 3)
#   /proc /sys /dev /newroot /tmp /run (empty)
# Output: $CACHE/initramfs/<key>.cpio (or .cpio.gz); prints the path as the last stdout line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

agent="${1:?usage: build-initramfs.sh AGENT_BINARY}"
[[ -f "$agent" && -x "$agent" ]] || omni_die "initramfs: agent '$agent' is not an executable file"
agent=$(readlink -f "$agent")
compress="${OMNIRUN_INITRAMFS_COMPRESS:-none}"
case "$compress" in
  none) ext=cpio ;;
  gzip) ext=cpio.gz ;;
  *) omni_die "initramfs: OMNIRUN_INITRAMFS_COMPRESS must be none or gzip" ;;
esac

# build-image.sh passes the kernel it just resolved; otherwise ask build-kernel.sh (cached: fast)
kernel_dir="${OMNI_KERNEL_DIR:-}"
if [[ -z "$kernel_dir" || ! -f "$kernel_dir/vmlinuz" ]]; then
  kernel_dir=$("$OMNI_SCRIPTS_DIR/build-kernel.sh" | tail -n1)
fi
[[ -f "$kernel_dir/modules/modules.order" ]] || omni_die "initramfs: no modules in $kernel_dir"

# --- shared libraries: "name => /path (addr)" and "/lib64/ld-linux... (addr)" lines ---
ldd_out=$(ldd "$agent" 2>&1) || true
libs=()
if ! grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
  if grep -q 'not found' <<<"$ldd_out"; then
    omni_die "initramfs: ldd cannot resolve all libraries of $agent:"$'\n'"$ldd_out"
  fi
  mapfile -t libs < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out" | awk '!seen[$0]++')
  ((${#libs[@]} > 0)) || omni_die "initramfs: no libraries parsed from ldd output:"$'\n'"$ldd_out"
fi

# sha256 of a file, memoised by its (device, inode, size, mtime, ctime): hashing a 20 MB agent
# costs ~0.1 s, too much for a cached run
sha256_memo() {
  local st memo sum
  st=$(stat -L -c '%d %i %s %y %z' "$1")
  memo="$OMNI_CACHE/filehash/$(printf '%s\n' "$1" "$st" | omni_hash_stdin)"
  if [[ -f "$memo" ]]; then
    cat "$memo"
    return 0
  fi
  sum=$(omni_sha256_file "$1")
  mkdir -p "$OMNI_CACHE/filehash"
  printf '%s\n' "$sum" >"$memo.$$" && mv -f "$memo.$$" "$memo"
  printf '%s\n' "$sum"
}

inputs=$(
  omni_inputs_file build-initramfs.sh "${BASH_SOURCE[0]}"
  omni_inputs_file lib.sh "$OMNI_SCRIPTS_DIR/lib.sh"
  printf 'file agent %s\n' "$(sha256_memo "$agent")"
  printf 'kernel %s\n' "$(basename "$kernel_dir")"
  printf 'compress %s\n' "$compress"
  for l in "${libs[@]}"; do
    omni_inputs_file "lib:$l" "$(readlink -f "$l")"
  done
)
key=$(omni_hash_stdin <<<"$inputs")
outdir="$OMNI_CACHE/initramfs"
out="$outdir/$key.$ext"
if [[ -f "$out" && "${OMNIRUN_REBUILD:-0}" != 1 ]]; then
  omni_log "initramfs: cached ($(basename "$out"))"
  printf '%s\n' "$out"
  exit 0
fi

omni_need_root # mknod
omni_need_cmd cpio
omni_mkcache "$outdir"
omni_lock initramfs
if [[ -f "$out" && "${OMNIRUN_REBUILD:-0}" != 1 ]]; then
  printf '%s\n' "$out"
  exit 0
fi
tmp=$(omni_tmpdir initramfs)
trap 'omni_rm_tree "$tmp"' EXIT
root="$tmp/root"

omni_log "initramfs: staging agent $(basename "$agent") ($(du -h "$agent" | cut -f1)), ${#libs[@]} libraries, kernel $(basename "$kernel_dir")"
mkdir -p "$root"/{proc,sys,dev,newroot,tmp,run,lib/modules}
chmod 1777 "$root/tmp"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
install -m 0755 "$agent" "$root/init"
for l in "${libs[@]}"; do
  mkdir -p "$root$(dirname "$l")"
  cp -L "$l" "$root$l" # real file (symlinks resolved) at the path ldd reports
  chmod 0755 "$root$l"
done
while IFS= read -r m; do
  [[ -n "$m" ]] || continue
  cp "$kernel_dir/modules/$m" "$root/lib/modules/$m"
done <"$kernel_dir/modules/modules.order"
cp "$kernel_dir/modules/modules.order" "$root/lib/modules/modules.order"

omni_log "initramfs: packing cpio ($compress)"
(
  cd "$root"
  find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --reproducible --quiet
) >"$tmp/initramfs.cpio"
case "$compress" in
  none) mv "$tmp/initramfs.cpio" "$tmp/out" ;;
  gzip) gzip -n -6 -c "$tmp/initramfs.cpio" >"$tmp/out" ;;
esac
printf '%s\n' "$inputs" >"$outdir/$key.inputs"
mv -f "$tmp/out" "$out"
omni_log "initramfs: ready $(basename "$out") ($(du -h --apparent-size "$out" | cut -f1))"
printf '%s\n' "$out"
