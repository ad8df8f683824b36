#!/usr/bin/env bash
# mmdebstrap --customize-hook for the playground template.
# Runs on the host after all packages are installed, with $1 = the root directory of the tree.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }

# --- user "user" 1000:1000, home /home/user, shell /bin/bash ---
if ! chroot "$root" getent group user >/dev/null; then
  chroot "$root" groupadd --gid 1000 user
fi
if ! chroot "$root" getent passwd user >/dev/null; then
  chroot "$root" useradd --uid 1000 --gid 1000 --create-home --home-dir /home/user \
    --shell /bin/bash user
fi
chroot "$root" chown -R 1000:1000 /home/user

# --- identity: the agent gives every sandbox its own hostname and machine-id at start ---
echo omnirun >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# do not keep the build host's resolver config; the agent writes one when the sandbox has a network
printf '# written by the omnirun agent when the sandbox has a network\n' >"$root/etc/resolv.conf"

# --- environment defaults (the agent sets the environment of the processes it starts) ---
cat >"$root/etc/environment" <<'EOF'
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LANG="C.UTF-8"
EOF
cat >"$root/etc/profile.d/omnirun.sh" <<'EOF'
# OmniRun sandbox defaults
export LANG="${LANG:-C.UTF-8}"
case ":$PATH:" in *":$HOME/.local/bin:"*) ;; *) PATH="$HOME/.local/bin:$PATH" ;; esac
export PATH
EOF
# A sandbox is disposable: let "pip install x" work (PEP 668 would refuse it on Debian's python).
cat >"$root/etc/pip.conf" <<'EOF'
[global]
break-system-packages = true
EOF

# --- code contexts: the service the agent starts on the first context request ---
install -D -m 0755 "$(dirname "${BASH_SOURCE[0]}")/contexts-service.py" "$root/usr/local/lib/omnirun/contexts-service"
# matplotlib builds its font list on first import (slow under emulation): build it now, as user
chroot "$root" runuser -u user -- env HOME=/home/user python3 -c 'import matplotlib.font_manager'

# --- mount points and /tmp ---
mkdir -p "$root"/{proc,sys,dev,run,tmp}
chmod 1777 "$root/tmp"
chmod 0755 "$root/run"

# --- size: no docs, man pages, translations, apt lists or caches ---
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/cache/ldconfig/aux-cache "$root"/root/.cache
find "$root/var/log" -type f -delete
# keep python's __pycache__: without it every python3 start recompiles the stdlib it imports
