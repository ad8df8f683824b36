#!/usr/bin/env bash
# Build several templates' images, one after the other, and print what each took.
# Usage: scripts/build-templates.sh --agent PATH TEMPLATE...   (`all`: every folder of images/templates)
#
# Each template is scripts/build-image.sh --template T --agent PATH (cached by input hash:
# a template that is already built costs a second). Prints a table: build time, root file
# system size (used blocks of its sparse image) and package count, then the manifests' paths.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

agent="" templates=()
while (($#)); do
  case "$1" in
    --agent) agent="${2:?--agent needs a path}"; shift 2 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    all) mapfile -t -O "${#templates[@]}" templates < <(find "$OMNI_REPO_DIR/images/templates" -mindepth 2 -maxdepth 2 \
      -name template.env -printf '%h\n' | xargs -n1 basename | LC_ALL=C sort); shift ;;
    *) templates+=("$1"); shift ;;
  esac
done
[[ -n "$agent" ]] || omni_die "usage: build-templates.sh --agent PATH TEMPLATE..."
((${#templates[@]} > 0)) || omni_die "no template named (try: all)"
mapfile -t templates < <(printf '%s\n' "${templates[@]}" | awk '!seen[$0]++')

rows=() manifests=()
for t in "${templates[@]}"; do
  omni_log "template $t: building (${#rows[@]}/${#templates[@]} done)"
  t0="${EPOCHREALTIME/./}"
  manifest=$("$OMNI_SCRIPTS_DIR/build-image.sh" --template "$t" --agent "$agent" | tail -n1)
  t1="${EPOCHREALTIME/./}"
  rootfs=$(sed -n 's/.*"rootfs":"\([^"]*\)".*/\1/p' "$manifest")
  used=$(du -m "$rootfs" | cut -f1)
  packages=$(wc -l <"${rootfs%.ext4}.packages.tsv" 2>/dev/null || echo "?")
  secs=$(( (t1 - t0) / 1000000 ))
  rows+=("$(printf '%-14s %6ss %7s MiB %6s' "$t" "$secs" "$used" "$packages")")
  manifests+=("$manifest")
done
{
  printf '%-14s %7s %11s %6s\n' template time rootfs packages
  printf '%s\n' "${rows[@]}"
} >&2
printf '%s\n' "${manifests[@]}"
