#!/usr/bin/env bash
# mmdebstrap --customize-hook for the desktop template (runs on the host after playground's hook).
# - noVNC's static files, unpacked from Debian's novnc .deb (pinned version and sha256, downloaded
#   once on the host into the cache): the package itself depends on Node.js and OpenStack
#   libraries, of which a browser viewer needs nothing.
# - The desktop's start and ready scripts (the template's START and READY).
# - XFCE pre-seeded for the sandbox user: the default panel (no first-start dialog), no
#   compositing, no screensaver or screen blanking, no session saving.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }

NOVNC_VERSION=1:1.3.0-1
NOVNC_DEB=novnc_1.3.0-1_all.deb
NOVNC_SHA256=5ff8b8c93c1c6cc911e01bfa77d12d4098e1904f738a996040c8095e02492ebb

cache="${OMNI_CACHE:-${OMNIRUN_CACHE_DIR:-${HOME:-/root}/.cache/omnirun}}/downloads"
mkdir -p "$cache"
have_deb() { [[ -f "$cache/$NOVNC_DEB" ]] && [[ "$(sha256sum <"$cache/$NOVNC_DEB" | cut -d' ' -f1)" == "$NOVNC_SHA256" ]]; }
if ! have_deb; then
  echo "[image] desktop: downloading $NOVNC_DEB" >&2
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "novnc=$NOVNC_VERSION" >&2)
  got=("$tmp"/novnc_*.deb) # apt names it with the epoch escaped (novnc_1%3a1.3.0-1_all.deb)
  [[ -f "${got[0]}" && "$(sha256sum <"${got[0]}" | cut -d' ' -f1)" == "$NOVNC_SHA256" ]] ||
    { echo "customize.sh: the downloaded novnc does not match its pinned sha256" >&2; exit 1; }
  mv -f "${got[0]}" "$cache/$NOVNC_DEB"
fi
unpacked=$(mktemp -d)
dpkg-deb -x "$cache/$NOVNC_DEB" "$unpacked"
[[ -f "$unpacked/usr/share/novnc/vnc.html" ]] || { echo "customize.sh: no vnc.html in $NOVNC_DEB" >&2; exit 1; }
rm -rf "$root/usr/share/novnc"
cp -a "$unpacked/usr/share/novnc" "$root/usr/share/novnc"
# links into /usr/share/javascript (packages not installed here) are replaced by nothing: the
# viewer (vnc.html, vnc_lite.html) needs only app/, core/ and vendor/ of its own folder
find "$root/usr/share/novnc" -xtype l -delete
# the page opens at / (an exposure's link) and connects to /websockify, the path websockify serves
ln -sfn vnc.html "$root/usr/share/novnc/index.html"
rm -rf "$unpacked"

# --- screen size and the desktop's services ---
mkdir -p "$root/etc/omnirun" "$root/usr/local/lib/omnirun"
cat >"$root/etc/omnirun/desktop.conf" <<'CONF'
# The desktop's screen: WIDTHxHEIGHT and colour depth (read by start-desktop at boot).
# A running desktop can also be resized: xrandr --fb 1280x800
GEOMETRY=1024x768
DEPTH=24
CONF

cat >"$root/usr/local/lib/omnirun/start-desktop" <<'START'
#!/bin/bash
# The desktop template's START (run as root before the snapshot): Xvnc as display :0 and the
# VNC server on 127.0.0.1:5900, the keyboard layout, XFCE in a D-Bus session, and websockify
# serving noVNC on port 6080 (its websocket at /websockify). Everything runs as "user".
set -euo pipefail
GEOMETRY=1024x768 DEPTH=24
# shellcheck disable=SC1091
[[ -f /etc/omnirun/desktop.conf ]] && . /etc/omnirun/desktop.conf
[[ "$GEOMETRY" =~ ^[0-9]+x[0-9]+$ && "$DEPTH" =~ ^(16|24|32)$ ]] ||
  { echo "start-desktop: bad GEOMETRY/DEPTH in /etc/omnirun/desktop.conf" >&2; exit 1; }
install -d -m 1777 /tmp/.X11-unix
install -d -o user -g user -m 0700 /run/user/1000
install -d -o user -g user -m 0755 /home/user/.cache
log=/home/user/.cache/desktop.log
as_user() {
  runuser -u user -- env -i HOME=/home/user USER=user LOGNAME=user SHELL=/bin/bash LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin DISPLAY=:0 XDG_RUNTIME_DIR=/run/user/1000 NO_AT_BRIDGE=1 "$@"
}
as_user Xvnc :0 -geometry "$GEOMETRY" -depth "$DEPTH" -rfbport 5900 -interface 127.0.0.1 -localhost \
  -SecurityTypes None -AlwaysShared -nolisten tcp -desktop omnirun -dpi 96 >>"$log" 2>&1 &
for _ in $(seq 300); do [[ -S /tmp/.X11-unix/X0 ]] && break; sleep 0.1; done
[[ -S /tmp/.X11-unix/X0 ]] || { echo "start-desktop: Xvnc did not start" >&2; tail -n 20 "$log" >&2; exit 1; }
as_user setxkbmap us
as_user xset s off -dpms s noblank || true # Xvnc may lack the DPMS extension: nothing to turn off then
as_user dbus-run-session -- xfce4-session >>"$log" 2>&1 &
as_user websockify --web /usr/share/novnc 6080 127.0.0.1:5900 >>"$log" 2>&1 &
wait
START

cat >"$root/usr/local/lib/omnirun/desktop-ready" <<'READY'
#!/bin/bash
# The desktop template's READY: noVNC answers and the screen is finished (every panel mapped
# and painted, the desktop mapped, two screenshots a moment apart identical), so that the
# snapshot, and with it a new sandbox's first screenshot, holds the finished desktop.
set -euo pipefail
export DISPLAY=:0
curl -sf -o /dev/null http://127.0.0.1:6080/vnc.html
/usr/local/lib/omnirun/screen-settled
READY
install -m 0755 "$(dirname "${BASH_SOURCE[0]}")/screen-settled.py" "$root/usr/local/lib/omnirun/screen-settled"
chmod 0755 "$root/usr/local/lib/omnirun/start-desktop" "$root/usr/local/lib/omnirun/desktop-ready"

# --- XFCE, pre-seeded for the sandbox user ---
conf="$root/home/user/.config/xfce4/xfconf/xfce-perchannel-xml"
mkdir -p "$conf"
# the default panel as the user's own: the panel asks nothing at its first start
cp "$root/etc/xdg/xfce4/panel/default.xml" "$conf/xfce4-panel.xml"
cat >"$conf/xfwm4.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfwm4" version="1.0">
  <property name="general" type="empty">
    <property name="use_compositing" type="bool" value="false"/>
    <property name="workspace_count" type="int" value="1"/>
  </property>
</channel>
XML
cat >"$conf/xfce4-session.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-session" version="1.0">
  <property name="general" type="empty">
    <property name="SaveOnExit" type="bool" value="false"/>
    <property name="AutoSave" type="bool" value="false"/>
    <property name="PromptOnLogout" type="bool" value="false"/>
  </property>
  <property name="shutdown" type="empty">
    <property name="LockScreen" type="bool" value="false"/>
  </property>
</channel>
XML
cat >"$conf/xfce4-screensaver.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-screensaver" version="1.0">
  <property name="saver" type="empty">
    <property name="enabled" type="bool" value="false"/>
  </property>
  <property name="lock" type="empty">
    <property name="enabled" type="bool" value="false"/>
  </property>
</channel>
XML
cat >"$conf/xfce4-power-manager.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-power-manager" version="1.0">
  <property name="xfce4-power-manager" type="empty">
    <property name="dpms-enabled" type="bool" value="false"/>
    <property name="blank-on-ac" type="int" value="0"/>
  </property>
</channel>
XML
cat >"$conf/keyboard-layout.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="keyboard-layout" version="1.0">
  <property name="Default" type="empty">
    <property name="XkbDisable" type="bool" value="true"/>
    <property name="XkbLayout" type="string" value="us"/>
  </property>
</channel>
XML
# no tips dialog in the terminal, no "unsafe paste" question when an agent pastes
mkdir -p "$root/home/user/.config/xfce4/terminal"
cat >"$root/home/user/.config/xfce4/terminal/terminalrc" <<'RC'
[Configuration]
MiscShowUnsafePasteDialog=FALSE
MiscConfirmClose=FALSE
MiscMenubarDefault=FALSE
RC
# Firefox: no first-run pages, no default-browser question
mkdir -p "$root/usr/lib/firefox-esr/distribution"
cat >"$root/usr/lib/firefox-esr/distribution/policies.json" <<'JSON'
{"policies": {"DisableAppUpdate": true, "DontCheckDefaultBrowser": true, "OverrideFirstRunPage": "",
  "OverridePostUpdatePage": "", "DisableTelemetry": true, "NoDefaultBookmarks": true}}
JSON
chroot "$root" chown -R 1000:1000 /home/user
