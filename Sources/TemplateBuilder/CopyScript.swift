/// The shell script a COPY or ADD step runs inside the build machine (as root), so the
/// build context (an uploaded tar) is unpacked and copied there, never on the host.
/// Arguments: context tar, destination, chown (or empty), chmod (or empty), extract
/// (1 for ADD: a local tar archive is unpacked into the destination), ignore (1: the
/// context's `.dockerignore` applies), sources….
/// Docker's rules: a directory source copies its contents; several sources, or a
/// destination ending in `/`, make the destination a directory; files belong to root
/// unless `--chown` says otherwise; what `.dockerignore` names is not in the context.
enum CopyScript {
    static let text = #"""
        set -euo pipefail
        tarball=$1 dest=$2 owner=$3 mode=$4 extract=$5 ignore=$6
        shift 6
        stage=$(mktemp -d /tmp/.omnirun-context.XXXXXX)
        trap 'rm -rf "$stage" "$tarball"' EXIT
        tar -xf "$tarball" -C "$stage" --no-same-owner --no-same-permissions 2>&1 || { echo "the build context is not a readable tar archive" >&2; exit 2; }
        if [[ "$ignore" == 1 && -f "$stage/.dockerignore" ]]; then
          command -v python3 >/dev/null || { echo "the context has a .dockerignore, which needs python3 in the image" >&2; exit 2; }
          python3 -c "$DOCKERIGNORE" "$stage" || { echo "applying .dockerignore failed" >&2; exit 2; }
        fi
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

    /// Removes what a `.dockerignore` names from an unpacked context (argument: its
    /// folder), with Docker's rules: one pattern per line (`#` comments), Go's
    /// `filepath.Match` syntax plus `**` for any number of folders, a pattern matching a
    /// folder matching everything in it, `!` re-including, the last matching line winning.
    static let dockerignore = #"""
        import os, re, sys
        root = sys.argv[1]
        def compile(pattern):
            out, i = "^", 0
            while i < len(pattern):
                c = pattern[i]
                if c == "*":
                    if pattern[i + 1:i + 2] == "*":
                        i += 1
                        if pattern[i + 1:i + 2] == "/":
                            i += 1
                            out += "(.*/)?"
                        else:
                            out += ".*"
                    else:
                        out += "[^/]*"
                elif c == "?":
                    out += "[^/]"
                elif c == "[":
                    end = pattern.find("]", i + 1)
                    if end < 0:
                        out += re.escape(c)
                    else:
                        body = pattern[i + 1:end]
                        out += "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body).replace("\\", "\\\\") + "]"
                        i = end
                elif c == "\\" and i + 1 < len(pattern):
                    i += 1
                    out += re.escape(pattern[i])
                else:
                    out += re.escape(c)
                i += 1
            return re.compile(out + "$")
        rules = []
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                keep = line.startswith("!")
                line = line[1:].strip() if keep else line
                line = os.path.normpath(line).lstrip("/")
                if line and line != ".":
                    rules.append((keep, compile(line)))
        def ignored(rel):
            parts = rel.split("/")
            prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
            result = False
            for keep, rule in rules:
                if any(rule.match(p) for p in prefixes):
                    result = not keep
            return result
        for folder, dirs, files in os.walk(root, topdown=False):
            rel_folder = os.path.relpath(folder, root)
            for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                rel = name if rel_folder == "." else rel_folder + "/" + name
                if ignored(rel):
                    os.unlink(os.path.join(folder, name))
            if rel_folder != "." and ignored(rel_folder) and not os.listdir(folder):
                os.rmdir(folder)
        """#
}
