/// The shell script a COPY or ADD step runs inside the build machine (as root), so the
/// build context (an uploaded tar) is unpacked and copied there, never on the host.
/// Arguments: context tar, destination, chown (or empty), chmod (or empty), extract
/// (1 for ADD: a local tar archive is unpacked into the destination), sources….
/// Docker's rules: a directory source copies its contents; several sources, or a
/// destination ending in `/`, make the destination a directory; files belong to root
/// unless `--chown` says otherwise.
enum CopyScript {
    static let text = #"""
        set -euo pipefail
        tarball=$1 dest=$2 owner=$3 mode=$4 extract=$5
        shift 5
        stage=$(mktemp -d /tmp/.omnirun-context.XXXXXX)
        trap 'rm -rf "$stage" "$tarball"' EXIT
        tar -xf "$tarball" -C "$stage" --no-same-owner --no-same-permissions 2>&1 || { echo "the build context is not a readable tar archive" >&2; exit 2; }
        shopt -s nullglob dotglob
        matches=()
        for pattern in "$@"; do
          pattern=${pattern#./}; pattern=${pattern#/}
          if [[ -z "$pattern" || "$pattern" == "." ]]; then
            matches+=("$stage")
            continue
          fi
          found=("$stage"/$pattern)
          if ((${#found[@]} == 0)); then
            echo "COPY source '$pattern' is not in the build context" >&2; exit 1
          fi
          matches+=("${found[@]}")
        done
        into_dir=0
        if [[ "$dest" == */ || ${#matches[@]} -gt 1 || -d "$dest" ]]; then into_dir=1; fi
        dest=${dest%/}; dest=${dest:-/}
        copied=() created=()
        if [[ ! -e "$dest" ]] && ((into_dir)); then created+=("$dest"); fi
        for src in "${matches[@]}"; do
          name=$(basename "$src")
          if [[ "$extract" == 1 && -f "$src" ]] && tar -tf "$src" >/dev/null 2>&1; then
            [[ -e "$dest" ]] || created+=("$dest")
            mkdir -p "$dest"
            for item in $(tar -tf "$src" | sed 's|^\./||; s|/.*||' | sort -u); do copied+=("$dest/$item"); done
            tar -xf "$src" -C "$dest" --no-same-owner
          elif [[ -d "$src" ]]; then
            [[ -e "$dest" ]] || created+=("$dest")
            mkdir -p "$dest"
            cp -a "$src/." "$dest/"
            for item in "$src"/*; do copied+=("$dest/$(basename "$item")"); done
          elif ((into_dir)); then
            mkdir -p "$dest"
            cp -a "$src" "$dest/$name"
            copied+=("$dest/$name")
          else
            mkdir -p "$(dirname "$dest")"
            cp -a "$src" "$dest"
            copied+=("$dest")
          fi
        done
        if ((${#created[@]})); then chown "${owner:-0:0}" "${created[@]}"; fi
        if ((${#copied[@]})); then
          chown -R "${owner:-0:0}" "${copied[@]}"
          if [[ -n "$mode" ]]; then chmod -R "$mode" "${copied[@]}"; fi
        fi
        echo "copied ${#matches[@]} item(s) to $dest"
        """#
}
