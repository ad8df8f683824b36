#!/usr/bin/env bash
# Build everything a template's VM needs and write its manifest.
# Usage: scripts/build-image.sh [--template NAME] [--agent PATH]
#   (host packages: run scripts/install-deps.sh first)
#
# Steps: build-kernel.sh, build-rootfs.sh NAME, build-initramfs.sh PATH (only with --agent).
# Manifest: $CACHE/images/<template>.json, one line:
#   {"template":"playground","kernel":"/abs/vmlinuz","initrd":"/abs/<key>.cpio"|null,
#    "rootfs":"/abs/<template>-<key>.ext4","vcpus":1,"memoryMB":256,"diskMB":1536,"key":"<16 hex>",
#    "description":"…","warmUp":"…"|null,"start":"…"|null,"ready":"…"|null,"readyTimeout":120}
# key is a hash of the kernel, rootfs and initramfs keys and the VM sizes. description, warmUp,
# start, ready and readyTimeout come from template.env (DESCRIPTION, WARMUP, START, READY,
# READY_TIMEOUT; inherited through FROM): the runtime runs WARMUP, then START in the background
# and READY until it passes, before it takes the template's snapshot. Prints the manifest path
# as the last stdout line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

template=playground agent=""
while (($#)); do
  case "$1" in
    --template) template="${2:?--template needs a name}"; shift 2 ;;
    --agent) agent="${2:?--agent needs a path}"; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) omni_die "unknown argument '$1' (usage: build-image.sh [--template NAME] [--agent PATH])" ;;
  esac
done
omni_template_dir "$template" >/dev/null

kernel_dir=$("$OMNI_SCRIPTS_DIR/build-kernel.sh" | tail -n1)
rootfs=$("$OMNI_SCRIPTS_DIR/build-rootfs.sh" "$template" | tail -n1)
initrd=""
if [[ -n "$agent" ]]; then
  initrd=$(OMNI_KERNEL_DIR="$kernel_dir" "$OMNI_SCRIPTS_DIR/build-initramfs.sh" "$agent" | tail -n1)
fi

vcpus=$(omni_template_var "$template" VCPUS)
memory_mb=$(omni_template_var "$template" MEMORY_MB)
disk_mb=$(omni_template_var "$template" DISK_MB)
for v in vcpus memory_mb disk_mb; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || omni_die "template '$template': ${v^^} must be a number (got '${!v}')"
done

json_str() { # JSON string literal (paths and names here need only \ and " escaped)
  local s="${1//\\/\\\\}"
  printf '"%s"' "${s//\"/\\\"}"
}
json_opt() { # JSON string literal, or null for an empty value
  if [[ -n "$1" ]]; then json_str "$1"; else printf null; fi
}

description=$(omni_template_var "$template" DESCRIPTION)
warm_up=$(omni_template_var "$template" WARMUP)
start_cmd=$(omni_template_var "$template" START)
ready_cmd=$(omni_template_var "$template" READY)
ready_timeout=$(omni_template_var "$template" READY_TIMEOUT)
ready_timeout=${ready_timeout:-120}
[[ "$ready_timeout" =~ ^[0-9]+$ ]] || omni_die "template '$template': READY_TIMEOUT must be a number of seconds"
for v in description warm_up start_cmd ready_cmd; do
  [[ "${!v}" != *[$'\x01'-$'\x1f']* ]] || omni_die "template '$template': ${v^^} has a control character"
done

key=$(printf '%s\n' "kernel $(basename "$kernel_dir")" "rootfs $(basename "$rootfs")" \
  "initrd $(basename "${initrd:-none}")" "vcpus $vcpus" "memory_mb $memory_mb" "disk_mb $disk_mb" | omni_hash_stdin)
manifest=$(printf '{"template":%s,"kernel":%s,"initrd":%s,"rootfs":%s,"vcpus":%d,"memoryMB":%d,"diskMB":%d,"key":%s,"description":%s,"warmUp":%s,"start":%s,"ready":%s,"readyTimeout":%d}' \
  "$(json_str "$template")" "$(json_str "$kernel_dir/vmlinuz")" \
  "$( [[ -n "$initrd" ]] && json_str "$initrd" || echo null)" "$(json_str "$rootfs")" \
  "$vcpus" "$memory_mb" "$disk_mb" "$(json_str "$key")" "$(json_opt "$description")" \
  "$(json_opt "$warm_up")" "$(json_opt "$start_cmd")" "$(json_opt "$ready_cmd")" "$ready_timeout")

outdir="$OMNI_CACHE/images"
out="$outdir/$template.json"
mkdir -p "$outdir"
if [[ ! -f "$out" || "$(cat "$out")" != "$manifest" ]]; then
  printf '%s\n' "$manifest" >"$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
  omni_log "image $template: manifest written (key $key)"
else
  omni_log "image $template: manifest unchanged (key $key)"
fi
printf '%s\n' "$out"
