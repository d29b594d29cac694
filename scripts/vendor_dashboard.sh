#!/usr/bin/env bash
# Vendors uPlot (the dashboard's chart library) into net/dashboard/: fetches the pinned
# version from the npm registry with `npm pack`, copies its minified IIFE build, its CSS
# and its licence, and prints the sha256 of each. Bump UPLOT_VERSION to refresh; commit
# the three files it writes. Needs npm and the npm registry; nothing else.
set -euo pipefail

UPLOT_VERSION=1.6.32

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/net/dashboard"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null)
tarball=$(ls "$tmp"/uplot-"$UPLOT_VERSION".tgz)
tar -xzf "$tarball" -C "$tmp" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE

install -m 644 "$tmp/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
install -m 644 "$tmp/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
install -m 644 "$tmp/package/LICENSE" "$dest/uPlot.LICENSE"

echo "uPlot $UPLOT_VERSION -> ${dest#"$root"/}"
(cd "$dest" && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE)
