"""What the worker puts in a session's sandbox: a bash wrapper that keeps the shell's state
(working directory, exported variables) across tool calls, and a small Python helper for
glob and grep. Both run as the sandbox's default user; both bound what they print."""

GUEST_DIR = "/tmp/.omnirun-claude"

# bash.sh STATE_DIR WORKDIR COMMAND_FILE LIMIT
# The command is sourced in this shell, so `cd` and `export` persist through the state
# files; an `exit` in it still ends through the EXIT trap, which saves the state and prints
# at most LIMIT bytes of the merged output.
BASH_WRAPPER = r"""#!/bin/bash
__or_s="$1"; __or_w="$2"; __or_c="$3"; __or_l="$4"
mkdir -p "$__or_s" "$__or_w" 2>/dev/null
cd "$__or_w" 2>/dev/null || cd ~
[ -f "$__or_s/cwd" ] && cd "$(cat "$__or_s/cwd")" 2>/dev/null
[ -f "$__or_s/env" ] && . "$__or_s/env" >/dev/null 2>&1
__or_o="$__or_s/out.$$"
__or_finish() {
  __or_rc=$?
  exec 1>&3 2>&4
  pwd > "$__or_s/cwd" 2>/dev/null
  export -p 2>/dev/null | grep -v -E '^declare -[a-zA-Z]*x[a-zA-Z]* (PWD|OLDPWD|SHLVL|_)=' > "$__or_s/env.tmp" && mv "$__or_s/env.tmp" "$__or_s/env"
  head -c "$__or_l" "$__or_o"
  __or_n=$(stat -c %s "$__or_o" 2>/dev/null || echo 0)
  [ "$__or_n" -gt "$__or_l" ] && printf '\n[output truncated: %s bytes, the first %s shown]' "$__or_n" "$__or_l"
  rm -f "$__or_o" "$__or_c"
  exit $__or_rc
}
exec 3>&1 4>&2
trap __or_finish EXIT
exec > "$__or_o" 2>&1 < /dev/null
. "$__or_c"
"""

# helper.py OP BASE64_JSON_ARGS -> one JSON object on stdout.
HELPER = r'''
import base64, fnmatch, json, os, re, shutil, subprocess, sys, time
from pathlib import Path, PurePosixPath

GLOB_LIMIT = 200
WALK_LIMIT = 50000
GREP_LIMIT = 100 * 1024
GREP_LINE = 2000

def out(obj):
    sys.stdout.write(json.dumps(obj))
    sys.exit(0)

def glob(a):
    pattern, root = a["pattern"], Path(a["path"])
    if not root.is_dir():
        out({"error": "not a directory"})
    matches = []
    try:
        for i, m in enumerate(root.glob(pattern)):
            if i >= WALK_LIMIT:
                break
            matches.append(m)
    except (ValueError, OSError) as e:
        out({"error": str(e)})
    def mtime(p):
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0
    matches.sort(key=mtime, reverse=True)
    out({"matches": [str(m) for m in matches[:GLOB_LIMIT]], "total": len(matches)})

def grep(a):
    pattern, search = a["pattern"], a["path"]
    if not os.path.exists(search):
        out({"error": "no such file or directory"})
    rg = shutil.which("rg")
    if rg:
        try:
            p = subprocess.run([rg, "--no-config", "-n", "--no-heading", "-e", pattern, "--", search],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            out({"error": "timed out after 60s"})
        if p.returncode == 1:
            out({"text": "no matches"})
        if p.returncode != 0:
            out({"error": "rg failed: " + p.stderr[:2000].decode(errors="replace")})
        text = p.stdout[:GREP_LIMIT].decode(errors="replace")
        if len(p.stdout) > GREP_LIMIT:
            text += "\n[output truncated at %d bytes]" % GREP_LIMIT
        out({"text": text})
    try:
        rx = re.compile(pattern)
    except re.error as e:
        out({"error": "invalid regex: %s" % e})
    hits, budget, seen, deadline = [], GREP_LIMIT, 0, time.monotonic() + 60
    def scan(full):
        nonlocal budget
        try:
            with open(full, "rb") as f:
                if b"\x00" in f.read(512):
                    return True
                f.seek(0)
                for i, raw in enumerate(f, 1):
                    if len(raw) > GREP_LINE:
                        continue
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    if rx.search(line):
                        entry = "%s:%d:%s" % (full, i, line)
                        budget -= len(entry) + 1
                        if budget < 0:
                            hits.append("[output truncated at %d bytes]" % GREP_LIMIT)
                            return False
                        hits.append(entry)
        except OSError:
            pass
        return time.monotonic() < deadline
    if os.path.isfile(search):
        scan(search)
    else:
        for dirpath, dirnames, filenames in os.walk(search):
            dirnames[:] = [d for d in dirnames if d not in (".git", "node_modules") and not os.path.islink(os.path.join(dirpath, d))]
            stop = False
            for name in filenames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                seen += 1
                if seen > WALK_LIMIT or not scan(full):
                    stop = True
                    break
            if stop:
                break
    out({"text": "\n".join(hits) if hits else "no matches"})

def stat(a):
    try:
        st = os.stat(a["path"])
    except OSError as e:
        out({"error": (e.strerror or "i/o error").lower()})
    import stat as S
    kind = "file" if S.S_ISREG(st.st_mode) else "dir" if S.S_ISDIR(st.st_mode) else "other"
    out({"kind": kind, "size": st.st_size})

def mkdirs(a):
    try:
        os.makedirs(a["path"], exist_ok=True)
    except OSError as e:
        out({"error": (e.strerror or "i/o error").lower()})
    out({"ok": True})

def pack(a):
    # A gzipped tar of the working directory (without skills/), refused past a size.
    import tarfile
    root, dest, limit = a["path"], a["dest"], int(a["limit"])
    total, count = 0, 0
    with tarfile.open(dest, "w:gz") as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            if rel == "skills" or rel.startswith("skills" + os.sep):
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            for name in filenames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                size = os.path.getsize(full)
                total += size
                count += 1
                if total > limit or count > 10000:
                    out({"error": "outputs exceed the limit"})
                tar.add(full, arcname=os.path.relpath(full, root), recursive=False)
    out({"ok": True, "files": count, "size": os.path.getsize(dest)})

OPS = {"glob": glob, "grep": grep, "stat": stat, "mkdirs": mkdirs, "pack": pack}
OPS[sys.argv[1]](json.loads(base64.b64decode(sys.argv[2])))
'''
