#!/bin/sh
# The embedded job server (lib/server) from source, with gearmand's flags: a drop-in where a script
# starts gearmand, e.g. GEARMAND_BIN="$PWD/scripts/nestjs-gearman-server.sh" for ../shared/bench.
# NESTJS_GEARMAN_SERVER_FLAGS adds flags of its own where the caller cannot (e.g. "--no-epoch-wakeup").
# For development and tests; production stays on gearmand.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck disable=SC2086 # the extra flags are meant to split on spaces
exec node --import "file://$ROOT/node_modules/tsx/dist/loader.mjs" "$ROOT/lib/server/bin.ts" \
  ${NESTJS_GEARMAN_SERVER_FLAGS:-} "$@"
