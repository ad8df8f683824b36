#!/usr/bin/env bash
# Boot the guest kernel + a template's rootfs with a throwaway busybox initramfs (no agent):
# a debugging aid and the boot smoke test of the image pipeline.
#
# Usage: scripts/test-boot-busybox.sh [--template NAME] [--compress none|gzip] [--runs N]
#                                     [--payload FILE] [--timeout SECONDS] [--compare] [-v]
#   --payload FILE  also put FILE into the initramfs (e.g. a ~13 MB binary to mimic the agent's size)
#   --compare       run --runs boots for each of none and gzip (interleaved) and print both summaries
#   --initrd FILE   boot FILE instead of the busybox initramfs (e.g. build-initramfs.sh's output with
#                   scripts/testdata/standin-agent.cpp as the agent, which prints the same markers)
#   -v              print the guest's whole console output of each run
#
# The busybox /init mounts proc/sys/devtmpfs, insmods modules.order, mounts /dev/vda (ext4) at
# /newroot, prints the virtio-serial port names and python3's version, prints BOOT-OK and
# powers off. QEMU runs as ARCHITECTURE.md's "Working command line (TCG)" plus
# tsc_early_khz=<host TSC kHz> tsc=reliable no_timer_check. Timings are from spawning QEMU to
# the first line /init prints (INIT-START) and to BOOT-OK. Exit status 0 only if every run
# printed BOOT-OK, the port omnirun.0 and a python3 version.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

template=playground compress=none runs=1 payload="" timeout_s=60 compare=0 verbose=0 initrd=""
while (($#)); do
  case "$1" in
    --template) template="$2"; shift 2 ;;
    --compress) compress="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    --compare) compare=1; shift ;;
    --initrd) initrd="$2"; shift 2 ;;
    -v) verbose=1; shift ;;
    *) omni_die "unknown argument $1 (see the header of $0)" ;;
  esac
done
omni_need_root
omni_need_cmd qemu-system-x86_64 qemu-img cpio timeout
busybox=$(command -v busybox || true)
if [[ -z "$busybox" ]] || ! file -L "$busybox" | grep -q 'statically linked'; then
  omni_die "need a static busybox (apt-get install busybox-static)"
fi

kernel_dir=$("$OMNI_SCRIPTS_DIR/build-kernel.sh" | tail -n1)
rootfs=$("$OMNI_SCRIPTS_DIR/build-rootfs.sh" "$template" | tail -n1)
tsc_khz=$("$OMNI_SCRIPTS_DIR/host-tsc-khz.sh")
memory_mb=$(omni_template_var "$template" MEMORY_MB)
vcpus=$(omni_template_var "$template" VCPUS)

# short path: unix socket paths are limited to 108 bytes
work=$(mktemp -d "${TMPDIR:-/tmp}/omnirun-boot.XXXXXX")
qpid=""
# shellcheck disable=SC2317 # called through trap
cleanup() {
  if [[ -n "$qpid" ]] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- the test initramfs ---
stage="$work/initramfs"
mkdir -p "$stage"/{bin,proc,sys,dev,newroot,tmp,run,lib/modules}
cp "$busybox" "$stage/bin/busybox"
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3
cp "$kernel_dir"/modules/*.ko "$kernel_dir/modules/modules.order" "$stage/lib/modules/"
[[ -z "$payload" ]] || cp "$payload" "$stage/payload"
cat >"$stage/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox echo INIT-START
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "CMDLINE: $(cat /proc/cmdline)"
echo "GUEST-UPTIME-AT-INIT: $(cut -d' ' -f1 /proc/uptime)"
dmesg | grep -E 'Trying to unpack rootfs|Freeing initrd memory' | sed 's/^/INITRD-LOG: /'
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m" || echo "INSMOD-FAILED: $m"
done </lib/modules/modules.order
echo "MODULES-LOADED: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
for d in /sys/bus/virtio/devices/*; do echo "VIRTIO-DEV: $(readlink -f "$d") id=$(cat "$d/device")"; done
[ -d /sys/firmware/acpi/tables ] && echo "ACPI: yes" || echo "ACPI: no"
if mount -t ext4 /dev/vda /newroot; then
  echo "ROOT-MOUNTED: $(grep ' /newroot ' /proc/mounts)"
else
  echo "ROOT-MOUNT-FAILED"
fi
for f in /sys/class/virtio-ports/*/name; do echo "VPORT: $f = $(cat "$f")"; done
ls -l /dev/vport* 2>/dev/null | sed 's/^/VPORT-DEV: /'
echo "PYTHON: $(chroot /newroot /usr/bin/python3 --version 2>&1)"
echo "NODE: $(chroot /newroot /usr/bin/node --version 2>&1)"
echo "ROOT-DF: $(df -m /newroot | tail -n1)"
echo BOOT-OK
# after the timed part: what a sandbox user would see (the agent mounts these too)
mount -t proc proc /newroot/proc
mount -t devtmpfs devtmpfs /newroot/dev
chroot /newroot /usr/bin/env -i HOME=/home/user LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \
  /usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups /bin/bash -c '
  cd ~ && echo "USER-CHECK: $(id) home=$(pwd) shell=$(getent passwd user | cut -d: -f7)"
  echo "USER-CHECK: $(git --version), $(curl --version | head -n1 | cut -d" " -f1-2), nano-tiny $(command -v nano-tiny), uuidgen $(uuidgen)"
  echo "USER-CHECK: $(python3 -c "import ssl, sqlite3, venv, json; print(ssl.OPENSSL_VERSION)"), pip $(python3 -m pip --version | cut -d" " -f2), node $(node -e "console.log(process.version)")"
  echo "USER-CHECK: tmp mode $(stat -c %a /tmp), hostname file $(cat /etc/hostname), machine-id bytes $(stat -c %s /etc/machine-id), LANG=$LANG"
  python3 -m venv --without-pip /tmp/venv && echo "USER-CHECK: venv ok $(/tmp/venv/bin/python --version)"' 2>&1
umount /newroot/dev /newroot/proc
umount /newroot
poweroff -f
EOF
chmod 0755 "$stage/init"

pack() { # COMPRESS -> path of the packed initramfs
  local c="$1" f="$work/initramfs-$1.cpio"
  (cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet) >"$f"
  case "$c" in
    none) ;;
    gzip) gzip -n -6 -f "$f"; f="$f.gz" ;;
    *) omni_die "--compress must be none or gzip" ;;
  esac
  printf '%s\n' "$f"
}

# stamp each line read with the time since $1 (microseconds), "SECONDS LINE"
stamp() {
  local t0="$1" line now
  while IFS= read -r line; do
    now="${EPOCHREALTIME/./}"
    printf '%d.%03d %s\n' $(((now - t0) / 1000000)) $((((now - t0) / 1000) % 1000)) "${line%$'\r'}"
  done
}

boot_once() { # INITRD RUN -> sets R_INIT R_OK R_TOTAL (seconds) and run_ok
  local initrd="$1" n="$2" log="$work/run$2.log" overlay="$work/disk$2.qcow2" t0 t_end rc=0
  qemu-img create -q -f qcow2 -b "$rootfs" -F raw "$overlay"
  rm -f "$work/fifo" "$work/agent.sock" "$work/qmp.sock"
  mkfifo "$work/fifo"
  t0="${EPOCHREALTIME/./}"
  timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 \
    -M microvm,x-option-roms=off,isa-serial=on,rtc=on -accel tcg,thread=multi \
    -cpu max -m "$memory_mb" -smp "$vcpus" -nodefaults -no-user-config -nographic \
    -serial stdio -kernel "$kernel_dir/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 quiet reboot=t panic=-1 tsc_early_khz=$tsc_khz tsc=reliable no_timer_check" \
    -drive id=root,file="$overlay",format=qcow2,if=none -device virtio-blk-device,drive=root \
    -device virtio-serial-device -chardev socket,id=agent,path="$work/agent.sock",server=on,wait=off \
    -device virtserialport,chardev=agent,name=omnirun.0 \
    -qmp unix:"$work/qmp.sock",server=on,wait=off -no-reboot \
    </dev/null >"$work/fifo" 2>"$work/qemu$n.err" &
  qpid=$!
  stamp "$t0" <"$work/fifo" >"$log"
  wait "$qpid" || rc=$?
  qpid=""
  t_end="${EPOCHREALTIME/./}"
  rm -f "$overlay"
  ((verbose == 0)) || sed "s/^/  run$n| /" "$log" >&2
  ((rc != 124 && rc != 137)) || echo "run $n: TIMEOUT after ${timeout_s}s" >&2
  [[ ! -s "$work/qemu$n.err" ]] || sed "s/^/  qemu: /" "$work/qemu$n.err" >&2
  R_INIT=$(awk '$2 == "INIT-START" { print $1; exit }' "$log")
  R_OK=$(awk '$2 == "BOOT-OK" { print $1; exit }' "$log")
  R_TOTAL=$(printf '%d.%03d' $(((t_end - t0) / 1000000)) $((((t_end - t0) / 1000) % 1000)))
  run_ok=1
  [[ -n "$R_OK" ]] || run_ok=0
  grep -q '^[0-9.]* VPORT: .* = omnirun\.0$' "$log" || run_ok=0
  grep -q '^[0-9.]* PYTHON: Python 3\.' "$log" || run_ok=0
  cp "$log" "$work/last.log"
}

summary() { # LABEL VALUES... -> "min/median/max"
  shift
  printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[1] "/" a[int((NR + 1) / 2)] "/" a[NR] }'
}

modes=("$compress")
((compare == 0)) || modes=(none gzip)
[[ -z "$initrd" ]] || modes=(given)
declare -A initrd_of=() inits=() oks=() uptimes=()
for c in "${modes[@]}"; do
  if [[ "$c" == given ]]; then initrd_of[$c]=$(readlink -f "$initrd"); else initrd_of[$c]=$(pack "$c"); fi
  omni_log "boot: initramfs $c $(du -k --apparent-size "${initrd_of[$c]}" | cut -f1) KiB${payload:+ (with payload $(basename "$payload"))}"
done
omni_log "boot: kernel $(basename "$kernel_dir"), rootfs $(basename "$rootfs"), tsc_early_khz=$tsc_khz, $runs run(s) each$( ((compare == 0)) || echo ", interleaved")"
status=0
for ((i = 1; i <= runs; i++)); do
  for c in "${modes[@]}"; do
    boot_once "${initrd_of[$c]}" "$i"
    up=$(awk '$2 == "GUEST-UPTIME-AT-INIT:" { print $3; exit }' "$work/last.log")
    # guest-side initramfs unpack time, from the kernel log timestamps
    unpack=$(awk '/INITRD-LOG:/ { gsub(/[][]/, " "); for (k = 1; k <= NF; k++) if ($k == "INITRD-LOG:") t = $(k + 1);
      if (/Trying to unpack/) a = t; if (/Freeing initrd/) b = t } END { if (a != "" && b != "") printf "%.3f", b - a }' "$work/last.log")
    printf '  %-5s run %d: init %ss (guest uptime %ss, unpack %ss)  BOOT-OK %ss  qemu exit %ss  %s\n' "$c" "$i" \
      "${R_INIT:--}" "${up:--}" "${unpack:--}" "${R_OK:--}" "$R_TOTAL" "$( ((run_ok)) && echo ok || echo FAILED)"
    ((run_ok)) || status=1
    inits[$c]+=" ${R_INIT:-999}" oks[$c]+=" ${R_OK:-999}" uptimes[$c]+=" ${up:-999}"
  done
done
# the facts from the last run's console
grep -E ' (CMDLINE|MODULES-LOADED|VIRTIO-DEV|ACPI|INITRD-LOG|ROOT-MOUNTED|VPORT|VPORT-DEV|PYTHON|NODE|ROOT-DF|INSMOD-FAILED|ROOT-MOUNT-FAILED|USER-CHECK):' \
  "$work/last.log" | cut -d' ' -f2- | sed 's/^/    guest| /'
for c in "${modes[@]}"; do
  # shellcheck disable=SC2086 # word lists
  printf '  %-5s %6s KiB: init min/med/max %s s  guest uptime at init %s s  BOOT-OK %s s\n' "$c" \
    "$(du -k --apparent-size "${initrd_of[$c]}" | cut -f1)" "$(summary x ${inits[$c]})" \
    "$(summary x ${uptimes[$c]})" "$(summary x ${oks[$c]})"
done
if ((status == 0)); then omni_log "boot: all runs OK"; else omni_log "boot: FAILED"; fi
exit "$status"
