/**
 * The embedded Gearman job server: gearmand 1.1.20's binary and admin protocols in TypeScript,
 * in memory, on loopback by default. **For development and tests; production stays on gearmand.**
 *
 * Three ways to run it: in this process (`startGearmanServer`), as a child process
 * (`spawnGearmanServer`), or as the `nestjs-gearman-server` command, which takes gearmand's
 * common flags (`-L`, `-p`, `-P`, `-l`, `--verbose`, `-j`, ...).
 */
export { type GearmanServer, startGearmanServer } from './server.js';
export { type GearmanServerProcess, spawnGearmanServer, type SpawnGearmanServerOptions } from './child.js';
export type { GearmanServerLogLevel, GearmanServerOptions } from './options.js';
