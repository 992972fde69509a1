#!/usr/bin/env node
/**
 * What a fresh machine needs before `npm test` or `npm run sample`, installed when missing:
 * the npm dependencies, and gearmand (Debian's gearman-job-server; with `test`, also the
 * gearman-tools CLI the interop tests call and gearman-server, Perl's Gearman::Server, for
 * test/perl) when this is a root shell with apt-get. Otherwise it says exactly what to run (and
 * for `test` carries on: jest.config.js runs what the machine has).
 *
 * `node scripts/setup.mjs test` is npm's `pretest`; `scripts/sample.mjs` imports the functions.
 * Plain JavaScript on purpose: it runs before anything is installed.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** An error already reported to the user (no stack trace needed). */
export class SetupError extends Error {}

let prefix = '[setup]';
let command = 'the command';

/** Sets how messages are labelled and which command they tell the user to run again. */
export function configure(label, rerun) {
  prefix = label;
  command = rerun;
}

export function log(message) {
  process.stdout.write(`${prefix} ${message}\n`);
}

export function fail(message) {
  process.stderr.write(`${prefix} ${message}\n`);
  return new SetupError(message);
}

// ---------------------------------------------------------------------------------------------
// npm dependencies

export function run(cmd, args, options = {}) {
  log(`$ ${[cmd, ...args].join(' ')}`);
  const result = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', ...options });
  if (result.error) return { ok: false, error: result.error.message };
  return { ok: result.status === 0, error: `exit code ${result.status ?? result.signal}` };
}

export function ensureDependencies() {
  const needed = [
    'typescript',
    '@nestjs/core',
    '@nestjs/microservices',
    '@nestjs/platform-express',
    '@nestjs/terminus',
  ];
  const missing = needed.filter((name) => !existsSync(join(ROOT, 'node_modules', name, 'package.json')));
  if (missing.length === 0) return;
  log(`npm dependencies missing (${missing.join(', ')}): installing them`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = run(npm, ['ci', '--no-audit', '--no-fund']);
  if (!result.ok) {
    throw fail(
      `Could not install the npm dependencies (npm ci: ${result.error}). Run \`npm ci\` in ${ROOT} and try again.`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// gearmand

/** Debian's gearman-server package installs Perl's Gearman::Server as /usr/bin/gearmand: not the C server. */
function isPerlServer(path) {
  const head = Buffer.alloc(64);
  let fd;
  try {
    fd = openSync(path, 'r');
    return /^#!.*perl/.test(head.toString('latin1', 0, readSync(fd, head, 0, head.length, 0)));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The C gearmand: `GEARMAND` if set, else the first one in the usual places or on PATH. */
export function findGearmand() {
  if (process.env.GEARMAND) return existsSync(process.env.GEARMAND) ? process.env.GEARMAND : undefined;
  const dirs = [
    '/usr/sbin',
    '/usr/local/sbin',
    '/usr/bin',
    '/usr/local/bin',
    '/opt/homebrew/sbin',
    '/opt/homebrew/bin',
  ];
  dirs.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  return dirs.map((d) => join(d, 'gearmand')).find((p) => existsSync(p) && !isPerlServer(p));
}

/** Perl's Gearman::Server (Debian: gearman-server), which the tests in test/perl start: `GEARMAN_PERL_SERVER` or found. */
export function findPerlServer() {
  if (process.env.GEARMAN_PERL_SERVER)
    return existsSync(process.env.GEARMAN_PERL_SERVER) ? process.env.GEARMAN_PERL_SERVER : undefined;
  const dirs = ['/usr/bin', '/usr/local/bin', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  return dirs.map((d) => join(d, 'gearmand')).find((p) => existsSync(p) && isPerlServer(p));
}

export function onPath(name) {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, name)));
}

/**
 * Returns gearmand's path; `withTools` also wants the gearman CLI (package gearman-tools). With
 * `optional`, a machine that cannot install them (no root, no apt) gets the instructions as a notice
 * and `undefined` (the caller falls back to the embedded job server) instead of an error.
 */
export function ensureGearmand(withTools = false, optional = false) {
  const packages = withTools ? ['gearman-job-server', 'gearman-tools', 'gearman-server'] : ['gearman-job-server'];
  const complete = () => !withTools || (onPath('gearman') && findPerlServer() !== undefined);
  const found = findGearmand();
  if (found && complete()) return found;
  if (process.env.GEARMAND) throw fail(`GEARMAND=${process.env.GEARMAND} does not exist.`);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = process.platform === 'linux' && onPath('apt-get');
  if (isRoot && hasApt) {
    log(`gearmand or its tools are not installed: installing the Debian packages ${packages.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (run('apt-get', ['update'], { env }).ok && run('apt-get', ['install', '-y', ...packages], { env }).ok) {
      const installed = findGearmand();
      if (installed && complete()) return installed;
    }
    throw fail(
      `apt-get could not install ${packages.join(' ')} (see above). Install them yourself, then run \`${command}\` again.`,
    );
  }
  const what = withTools
    ? `Not all of ${packages.join(', ')} are installed (gearmand, its CLI tools, Perl's Gearman::Server for test/perl)`
    : 'gearmand (the Gearman job server) is not installed';
  const lines = [`${what}. Install them, then run \`${command}\` again:`];
  if (hasApt) lines.push(`  sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`);
  else if (process.platform === 'darwin') lines.push('  brew install gearman');
  else {
    lines.push(`  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`);
    lines.push('  Fedora/RHEL:   sudo dnf install gearmand');
    lines.push('  macOS:         brew install gearman');
  }
  lines.push(`Or point GEARMAND at a gearmand binary: GEARMAND=/path/to/gearmand ${command}`);
  if (!optional) throw fail(lines.join('\n'));
  log(lines.join('\n'));
  return undefined;
}

// ---------------------------------------------------------------------------------------------

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const forTests = process.argv[2] === 'test';
  configure('[setup]', forTests ? 'npm test' : 'node scripts/setup.mjs');
  try {
    ensureDependencies();
    // Where they cannot be installed, jest.config.js runs what it can (the embedded job server in
    // gearmand's place) and names the suites it leaves out.
    if (forTests && !ensureGearmand(true, true))
      log('The tests run without them: jest.config.js says what it leaves out.');
    if (!forTests) ensureGearmand(false);
  } catch (err) {
    if (!(err instanceof SetupError)) process.stderr.write(`[setup] ${err.stack ?? err}\n`);
    process.exit(1);
  }
}
