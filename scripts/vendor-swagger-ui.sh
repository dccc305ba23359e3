#!/usr/bin/env bash
# Refreshes the Swagger UI files that oxinfer embeds (src/http/swagger-ui/) from the npm package swagger-ui-dist.
# Only what the docs pages load is kept (the bundle and its stylesheet), gzip-compressed with zopfli (deterministic,
# ~4% smaller than gzip -9; `apt-get install zopfli`): the pages are served from the binary with no internet, and
# the container image budget (60 MB) leaves no room for the rest.
# Usage: scripts/vendor-swagger-ui.sh [VERSION]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${1:-5.32.6}"
DEST="$ROOT/src/http/swagger-ui"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null && tar xzf "swagger-ui-dist-$VERSION.tgz")
mkdir -p "$DEST"
command -v zopfli >/dev/null || { echo "vendor-swagger-ui: zopfli is needed (apt-get install zopfli)" >&2; exit 1; }
for f in swagger-ui-bundle.js swagger-ui.css; do
  zopfli --i15 -c "$TMP/package/$f" > "$DEST/$f.gz"
done
cp "$TMP/package/LICENSE" "$DEST/LICENSE"
cp "$TMP/package/NOTICE" "$DEST/NOTICE"
cp "$TMP/package/swagger-ui-bundle.js.LICENSE.txt" "$DEST/swagger-ui-bundle.js.LICENSE.txt"
echo "$VERSION" > "$DEST/VERSION"
ls -l "$DEST"
