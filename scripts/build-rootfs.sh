#!/usr/bin/env bash
# Build a template's root file system image: mmdebstrap bookworm -> tree -> mkfs.ext4 -d.
# Usage: scripts/build-rootfs.sh TEMPLATE
#
# Template definitions live in images/templates/<name>/:
#   packages      Debian packages, one per line (# comments allowed)
#   customize.sh  optional mmdebstrap --customize-hook, run as: customize.sh ROOTDIR
#   template.env  VCPUS=, MEMORY_MB=, DISK_MB= (file system size) and optionally FROM=<parent>
# With FROM=, the parent's packages and customize hook come first (recursively), then the
# template's own; unset values in template.env are taken from the parent.
#
# Output: $CACHE/rootfs/<template>-<key>.ext4 (sparse raw ext4 image of DISK_MB MiB), with
# .inputs (key inputs), .packages.tsv (installed packages and sizes) and .log (mmdebstrap) beside it.
# Prints the image path as the last stdout line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

template="${1:?usage: build-rootfs.sh TEMPLATE}"
chain=()
mapfile -t chain < <(omni_template_chain "$template")
((${#chain[@]} > 0)) || omni_die "rootfs: cannot resolve template '$template'"

# Common policy for every template: no recommends, no docs/man/translations (also for
# packages installed later inside a sandbox, through /etc/dpkg/dpkg.cfg.d/99mmdebstrap).
MMDEBSTRAP_OPTS=(
  --mode=root --variant=minbase --format=directory
  --aptopt='APT::Install-Recommends "false"'
  --aptopt='APT::Install-Suggests "false"'
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
)
MKFS_OPTS=(
  -q -F -t ext4 -L omnirun-root
  -m 1                                 # 1% reserved for root (the agent)
  -E assume_storage_prezeroed=1        # new sparse file reads as zeros: skip zeroing the
)                                      # inode tables/journal now AND lazy init in the guest

# --- inputs ---
packages=()
inputs=$(
  omni_inputs_file build-rootfs.sh "${BASH_SOURCE[0]}"
  omni_inputs_file lib.sh "$OMNI_SCRIPTS_DIR/lib.sh"
  # template files by content, except packages and template.env, which count by what they
  # mean (the package list and DISK_MB/FROM, added below): comments or VCPUS/MEMORY_MB do
  # not change the image
  for t in "${chain[@]}"; do
    d=$(omni_template_dir "$t")
    while IFS= read -r f; do
      case "${f#"$d"/}" in packages | template.env) continue ;; esac
      omni_inputs_file "templates/$t/${f#"$d"/}" "$f"
    done < <(find "$d" -type f | LC_ALL=C sort)
    printf 'template %s FROM=%s\n' "$t" "$(omni_env_get "$d/template.env" FROM)"
  done
  omni_debian_sources | sed 's/^/source /'
)
for t in "${chain[@]}"; do
  d=$(omni_template_dir "$t")
  [[ -f "$d/packages" ]] || continue
  while read -r p _; do
    [[ -z "$p" || "$p" == \#* ]] || packages+=("$p")
  done <"$d/packages"
done
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | awk 'NF && !seen[$0]++')
disk_mb=$(omni_template_var "$template" DISK_MB)
[[ "$disk_mb" =~ ^[0-9]+$ ]] || omni_die "rootfs: template '$template' has no numeric DISK_MB"

# Versions of the packages and their dependency closure, as the host's apt lists know them
# (memoised per apt state, so a cached run costs no apt-cache call). Essential packages
# outside the closure are covered only through 'apt'.
closure=$(omni_apt_query depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${packages[@]}" apt |
  awk '!/^ / && !/^</' | LC_ALL=C sort -u)
versions=""
if [[ -n "$closure" ]]; then
  mapfile -t closure_list <<<"$closure"
  versions=$(omni_apt_query madison "${closure_list[@]}" |
    awk -F'|' '{ gsub(/ /, "", $1); gsub(/ /, "", $2); print "version " $1 " " $2 }' | LC_ALL=C sort -u)
else
  omni_log "rootfs: host apt lists know none of the packages; key uses package names only (run apt-get update)"
fi
inputs+=$'\n'"disk_mb $disk_mb"$'\n'"packages ${packages[*]}"
[[ -z "$versions" ]] || inputs+=$'\n'"$versions"

key=$(omni_hash_stdin <<<"$inputs")
outdir="$OMNI_CACHE/rootfs"
out="$outdir/$template-$key.ext4"
if [[ -f "$out" && "${OMNIRUN_REBUILD:-0}" != 1 ]]; then
  omni_log "rootfs $template: cached"
  printf '%s\n' "$out"
  exit 0
fi

omni_need_root
omni_need_cmd mmdebstrap mkfs.ext4 chroot
omni_mkcache "$outdir"
omni_lock "rootfs-$template"
if [[ -f "$out" && "${OMNIRUN_REBUILD:-0}" != 1 ]]; then
  omni_log "rootfs $template: cached (built by a concurrent run)"
  printf '%s\n' "$out"
  exit 0
fi

tmp=$(omni_tmpdir "rootfs-$template")
trap 'omni_rm_tree "$tmp"' EXIT
tree="$tmp/tree"

mirrors=()
mapfile -t mirrors < <(omni_debian_sources)
hooks=()
for t in "${chain[@]}"; do
  d=$(omni_template_dir "$t")
  if [[ -f "$d/customize.sh" ]]; then
    # mmdebstrap runs the hook with sh -c, $1 = the root directory
    hooks+=("--customize-hook=bash $(printf '%q' "$d/customize.sh") \"\$1\"")
  fi
done

# Downloads are kept on the host: every .deb apt fetched (in $CACHE/downloads/debs, hard-linked
# into the tree before apt runs; apt checks each against the SHA-256 of the signed index and
# fetches again only what is missing or does not match) and the package indexes (per state of
# the host's apt lists and sources, which the key above is computed from). A second build of
# the same inputs therefore reaches no mirror at all.
debs="$OMNI_CACHE/downloads/debs"
lists="$OMNI_CACHE/downloads/apt-lists/$(printf '%s\n' "$(omni_apt_fingerprint)" "${mirrors[@]}" | omni_hash_stdin)"
omni_mkcache "$debs" "$OMNI_CACHE/downloads/apt-lists"
q_debs=$(printf '%q' "$debs") q_lists=$(printf '%q' "$lists")
cache_hooks=(
  --skip=essential/unlink
  --setup-hook="mkdir -p \"\$1/var/cache/apt/archives/partial\" && { cp -al $q_debs/. \"\$1/var/cache/apt/archives/\" 2>/dev/null || cp -a $q_debs/. \"\$1/var/cache/apt/archives/\"; }"
  # first of the customize hooks: the templates' own hooks empty apt's cache
  --customize-hook="for f in \"\$1\"/var/cache/apt/archives/*.deb; do [ -f \"\$f\" ] && ln -f \"\$f\" $q_debs/ 2>/dev/null || true; done"
)
run_mmdebstrap() { # run_mmdebstrap CACHED_LISTS(0|1)
  local list_hooks=()
  if [[ "$1" == 1 ]]; then
    list_hooks=(--skip=update --setup-hook="mkdir -p \"\$1/var/lib/apt/lists\" && cp -a $q_lists/. \"\$1/var/lib/apt/lists/\"")
  else
    list_hooks=(--customize-hook="rm -rf $q_lists.tmp && mkdir -p $q_lists.tmp && cp -a \"\$1/var/lib/apt/lists/.\" $q_lists.tmp/ && rm -rf $q_lists.tmp/lock $q_lists.tmp/partial && rm -rf $q_lists && mv $q_lists.tmp $q_lists")
  fi
  mmdebstrap "${MMDEBSTRAP_OPTS[@]}" --include="$(IFS=,; echo "${packages[*]}")" "${cache_hooks[@]}" "${list_hooks[@]}" \
    "${hooks[@]}" "$OMNI_SUITE" "$tree" "${mirrors[@]}" >"$tmp/build.log" 2>&1
}

omni_log "rootfs $template: mmdebstrap $OMNI_SUITE, ${#packages[@]} packages (this takes ~1-2 min)"
omni_log "rootfs $template: sources: $(printf '%s; ' "${mirrors[@]}")"
built=0
if [[ -d "$lists" ]]; then
  omni_log "rootfs $template: package indexes and $(find "$debs" -maxdepth 1 -name '*.deb' | wc -l) packages from the cache"
  if run_mmdebstrap 1; then
    built=1
  else
    # the mirror may have dropped a version the cached indexes name: once more with fresh ones
    tail -n 5 "$tmp/build.log" >&2
    omni_log "rootfs $template: failed with the cached package indexes; again with fresh ones"
    omni_rm_tree "$tree"
  fi
fi
if ((built == 0)) && ! run_mmdebstrap 0; then
  tail -n 40 "$tmp/build.log" >&2
  omni_die "rootfs $template: mmdebstrap failed (log above)"
fi

# package list with installed sizes (KiB), largest first
# shellcheck disable=SC2016 # dpkg-query format, not shell
chroot "$tree" dpkg-query -W -f='${Package}\t${Version}\t${Installed-Size}\n' |
  sort -t$'\t' -k3,3nr >"$tmp/packages.tsv"
tree_kib=$(du -sk --apparent-size "$tree" | cut -f1)
tree_mib=$(((tree_kib + 1023) / 1024))
pkg_kib=$(awk -F'\t' '{ s += $3 } END { print s + 0 }' "$tmp/packages.tsv")
omni_log "rootfs $template: tree ${tree_mib} MiB ($(wc -l <"$tmp/packages.tsv") packages, ${pkg_kib} KiB installed-size), file system ${disk_mb} MiB"
# ext4 metadata (inode tables, journal) takes ~5-8 %; insist on room to spare
if ((tree_mib * 110 / 100 + 64 > disk_mb)); then
  omni_die "rootfs $template: tree is ${tree_mib} MiB, DISK_MB=${disk_mb} is too small (raise it in template.env)"
fi

omni_log "rootfs $template: mkfs.ext4 -d (${disk_mb} MiB)"
img="$tmp/rootfs.ext4"
mkfs.ext4 "${MKFS_OPTS[@]}" -d "$tree" "$img" "${disk_mb}M" >&2
omni_rm_tree "$tree"

printf '%s\n' "$inputs" >"$tmp/inputs"
mv -f "$tmp/inputs" "$outdir/$template-$key.inputs"
mv -f "$tmp/packages.tsv" "$outdir/$template-$key.packages.tsv"
mv -f "$tmp/build.log" "$outdir/$template-$key.log"
mv -f "$img" "$out" # last: the .ext4 existing is what marks the build complete
omni_log "rootfs $template: ready ($(du -m "$out" | cut -f1) MiB used of ${disk_mb} MiB sparse image)"
printf '%s\n' "$out"
