#!/usr/bin/env bash
# mmdebstrap --customize-hook for the javascript template (runs on the host after the hooks of
# its parents): code contexts in JavaScript. A Jupyter kernel of our own (javascript-kernel.py,
# on ipykernel's wrapper-kernel base, from playground's Debian packages) drives one Node.js
# process per context (javascript-driver.js); the contexts service lists `javascript` once the
# kernel's spec is installed.
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }
here="$(dirname "${BASH_SOURCE[0]}")"
lib="$root/usr/local/lib/omnirun/javascript-kernel"
install -D -m 0755 "$here/javascript-kernel.py" "$lib/javascript-kernel.py"
install -D -m 0644 "$here/javascript-driver.js" "$lib/javascript-driver.js"
install -d "$root/usr/local/share/jupyter/kernels/javascript"
cat >"$root/usr/local/share/jupyter/kernels/javascript/kernel.json" <<'JSON'
{
  "argv": ["/usr/bin/python3", "/usr/local/lib/omnirun/javascript-kernel/javascript-kernel.py", "-f", "{connection_file}"],
  "display_name": "JavaScript (Node.js)",
  "language": "javascript",
  "interrupt_mode": "signal"
}
JSON
