#!/bin/sh
# Compiles the TypeScript adapter (and the engine it imports) into ./build with esbuild
# (a dependency of tsx, already in the project's node_modules): one ESM bundle per program.
set -e
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
ESBUILD="$ROOT/node_modules/.bin/esbuild"
[ -x "$ESBUILD" ] || { echo "build.sh: $ESBUILD missing: run npm ci in $ROOT" >&2; exit 1; }
mkdir -p build
echo '{"type":"module"}' >build/package.json
"$ESBUILD" client.ts worker.ts --bundle --platform=node --format=esm --target=node20 \
  --sourcemap --outdir=build --log-level=warning
