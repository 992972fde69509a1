#!/bin/sh
# Compiles the Nest adapter into ./build with esbuild (a dependency of tsx, already in the project's
# node_modules), as bench/adapter/build.sh does: one ESM bundle per program holding this project's
# lib/nest + lib/engine and bench/adapter's driver (imported from source, not copied). npm packages
# (@nestjs/*, rxjs, reflect-metadata) stay external and load from the project's node_modules, so
# Nest's optional require()s work as in an application.
set -e
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
ESBUILD="$ROOT/node_modules/.bin/esbuild"
[ -x "$ESBUILD" ] || { echo "build.sh: $ESBUILD missing: run npm ci in $ROOT" >&2; exit 1; }
mkdir -p build
echo '{"type":"module"}' >build/package.json
"$ESBUILD" client.ts worker.ts --bundle --packages=external --platform=node --format=esm --target=node20 \
  --tsconfig="$ROOT/tsconfig.json" --sourcemap --outdir=build --log-level=warning
