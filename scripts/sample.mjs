#!/usr/bin/env node
/* global fetch, AbortSignal */
/**
 * `npm run sample`: runs the sample application on this machine with one command.
 *
 * 1. installs the npm dependencies when node_modules is missing (`npm ci`);
 * 2. installs gearmand (Debian package gearman-job-server) when it is missing and this is a root
 *    shell with apt-get; otherwise says what to run and uses the embedded job server (lib/server,
 *    for development only) instead;
 * 3. builds the library (dist/) and the sample (dist-sample/, which imports `nestjs-gearman` by
 *    the package's own name);
 * 4. starts two private gearmands on free loopback ports, the worker and the HTTP gateway;
 * 5. prints the URLs and curl lines, and on Ctrl-C (SIGINT) or SIGTERM stops, by PID, everything
 *    it started.
 *
 * Plain JavaScript on purpose: it runs before anything is installed or built.
 * Environment: PORT (gateway port, default 3000 or a free one), GEARMAND (path to gearmand),
 * SAMPLE_SERVER (`gearmand` or `embedded` to force one of the two job servers).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configure, ensureDependencies, ROOT, ensureGearmand, fail, log, onPath, run, SetupError } from './setup.mjs';

configure('[sample]', 'npm run sample');

const HOST = '127.0.0.1';
const GEARMAND_COUNT = 2;
const DEFAULT_PORT = 3000;
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

/** Everything this script started, in start order; stopped in reverse order. */
const started = [];
let stopping = false;

// ---------------------------------------------------------------------------------------------
// 3. build

function build() {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const project of ['tsconfig.build.json', 'tsconfig.sample.json']) {
    const result = run(process.execPath, [tsc, '-p', project]);
    if (!result.ok) throw fail(`The build failed (tsc -p ${project}: ${result.error}).`);
  }
}

// ---------------------------------------------------------------------------------------------
// 4. processes

/** A free TCP port on 127.0.0.1, or `undefined` when `port` (if given) is taken. */
function probePort(port = 0) {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen(port, HOST, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined));
    });
  });
}

async function freePort() {
  const port = await probePort(0);
  if (port === undefined) throw fail('No free TCP port on 127.0.0.1.');
  return port;
}

/** One admin command to a gearmand; resolves with its first reply line. */
function adminLine(port, command, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(text.slice(0, nl).trim());
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Spawns a process in its own process group (Ctrl-C reaches only this script, which stops them in order). */
function startProcess(name, command, args, options = {}) {
  const child = spawn(command, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const entry = { name, child, pid: child.pid, exited: false, exitInfo: '', dir: options.dir };
  entry.exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      entry.exited = true;
      entry.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      entry.exited = true;
      entry.exitInfo = err.message;
      resolve();
    });
  });
  entry.output = '';
  const forward = (stream, target) => {
    let pending = '';
    stream.on('data', (chunk) => {
      const text = chunk.toString('utf8');
      entry.output = (entry.output + text).slice(-20_000);
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) target.write(`[${name}] ${line}\n`);
    });
  };
  forward(child.stdout, process.stdout);
  forward(child.stderr, process.stderr);
  started.push(entry);
  entry.exit.then(() => {
    if (stopping) return;
    if (name.startsWith('gearmand')) {
      log(
        `${name} (pid ${entry.pid}) stopped (${entry.exitInfo}); the worker and the gateway keep trying to reconnect to it.`,
      );
    } else if (entry.ready) {
      log(`${name} (pid ${entry.pid}) stopped unexpectedly (${entry.exitInfo}): stopping everything.`);
      void shutdown(1);
    }
  });
  return entry;
}

async function startGearmand(bin, index) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-gearman-sample-'));
  const name = `gearmand-${index + 1}`;
  const entry = startProcess(
    name,
    bin,
    ['-L', HOST, '-p', String(port), '-t', '1', '-l', join(dir, 'gearmand.log'), '--verbose=WARNING'],
    { dir },
  );
  entry.port = port;
  entry.address = `${HOST}:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (entry.exited)
      throw fail(
        `${name} exited at start (${entry.exitInfo}); its log is in ${dir}/gearmand.log. ${entry.output.trim()}`,
      );
    try {
      // getpid proves that the server on this port is ours, not another gearmand that took the port.
      const reply = await adminLine(port, 'getpid', 500);
      if (reply === `OK ${entry.pid}`) {
        entry.ready = true;
        return entry;
      }
      throw fail(`Port ${port} is answered by another gearmand (${reply}); run the sample again.`);
    } catch (err) {
      if (err instanceof SetupError) throw err;
    }
    await delay(50);
  }
  throw fail(
    `${name} did not answer on ${entry.address} within ${START_TIMEOUT_MS / 1000} s; see ${dir}/gearmand.log.`,
  );
}

/** Starts a compiled sample entry and waits for the log line that says it is ready. */
async function startNode(name, file, env, readyLine) {
  const entry = startProcess(name, process.execPath, [join(ROOT, 'dist-sample', file)], {
    env: { ...process.env, ...env },
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  // eslint-disable-next-line no-control-regex
  const plain = () => entry.output.replace(/\u001b\[[0-9;]*m/g, '');
  while (Date.now() < deadline) {
    const match = readyLine.exec(plain());
    if (match) {
      entry.ready = true;
      return { entry, match };
    }
    if (entry.exited) throw fail(`The ${name} exited at start (${entry.exitInfo}); see its output above.`);
    await delay(100);
  }
  throw fail(`The ${name} did not start within ${START_TIMEOUT_MS / 1000} s; see its output above.`);
}

async function waitForHealth(url) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) });
      const body = await response.json();
      if (response.status === 200 && body.status === 'ok') return;
      last = `${response.status} ${JSON.stringify(body)}`;
    } catch (err) {
      last = err.message;
    }
    await delay(200);
  }
  throw fail(`${url}/health did not report ok within ${START_TIMEOUT_MS / 1000} s (last: ${last}).`);
}

// ---------------------------------------------------------------------------------------------
// 5. stop

async function stopEntry(entry, graceMs) {
  if (entry.exited) return;
  try {
    if (entry.name.startsWith('gearmand')) process.kill(entry.pid, 'SIGCONT'); // in case it was paused with kill -STOP
    process.kill(entry.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    log(`${entry.name} (pid ${entry.pid}) did not stop within ${graceMs / 1000} s: SIGKILL`);
    try {
      process.kill(entry.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await entry.exit;
  clearTimeout(timer);
}

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  log('stopping everything this script started...');
  const reversed = [...started].reverse();
  // The gateway and the worker first (they close their Gearman connections gracefully), then the servers.
  for (const entry of reversed.filter((e) => !e.name.startsWith('gearmand'))) await stopEntry(entry, STOP_GRACE_MS);
  await Promise.all(reversed.filter((e) => e.name.startsWith('gearmand')).map((e) => stopEntry(e, 5000)));
  for (const entry of started) if (entry.dir) rmSync(entry.dir, { recursive: true, force: true });
  log(
    `stopped: ${started.map((e) => `${e.name} (pid ${e.pid}, ${e.exitInfo || 'not running'})`).join(', ') || 'nothing was running'}`,
  );
  process.exit(code);
}

/** Last resort when this script itself dies: no child outlives it. */
function killAllNow() {
  for (const entry of started) {
    if (entry.exited) continue;
    try {
      process.kill(entry.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    signals += 1;
    if (signals > 1) {
      log(`${signal} again: killing everything now`);
      killAllNow();
      process.exit(130);
    }
    void shutdown(0);
  });
}
process.on('exit', killAllNow);

// ---------------------------------------------------------------------------------------------

function banner(url, gearmands, worker, gateway) {
  const servers = gearmands.map((g) => g.address).join(',');
  const json = "-H 'content-type: application/json'";
  const cliLine = onPath('gearman')
    ? `  gearman -h ${HOST} -p ${gearmands[0].port} -f text.upper 'hello from the CLI'`
    : `  gearman -h ${HOST} -p ${gearmands[0].port} -f text.upper 'hello from the CLI'   (needs the Debian package gearman-tools)`;
  return [
    '',
    'nestjs-gearman sample is running. Ctrl-C stops everything below.',
    '',
    ...gearmands.map((g) => `  ${g.name}   ${g.address}   pid ${g.pid}`),
    `  worker       GEARMAN_SERVERS=${servers}   pid ${worker.pid}`,
    `  gateway      ${url}   pid ${gateway.pid}`,
    '',
    'Try:',
    `  curl -s -X POST ${url}/math/sum ${json} -d '{"numbers":[1,2,3]}'`,
    `  curl -s -X POST ${url}/reports ${json} -d '{"name":"q3","rows":5}'`,
    `  curl -s -X POST ${url}/emails ${json} -d '{"to":"ada@example.com","subject":"Hello"}'`,
    `  curl -s -X POST ${url}/orders/validate ${json} -d '{"id":"A-1","lines":[{"sku":"pen","quantity":2,"price":150}]}'`,
    `  curl -s -i -X POST ${url}/orders/validate ${json} -d '{"id":"A-2","lines":[]}'      # 422`,
    `  curl -s -X POST ${url}/text/upper ${json} -d '{"text":"hello"}'`,
    `  curl -s ${url}/health`,
    `  curl -s ${url}/admin/status`,
    cliLine,
    '',
    `/health "degraded": pause one gearmand with  kill -STOP ${gearmands[0].pid}  and resume it with  kill -CONT ${gearmands[0].pid}`,
    '',
  ].join('\n');
}

/**
 * The job server to run: gearmand when it is there (or can be installed), else the embedded one,
 * which takes gearmand's flags (scripts/nestjs-gearman-server.sh). SAMPLE_SERVER forces either.
 */
function chooseServer() {
  const forced = process.env.SAMPLE_SERVER;
  if (forced !== undefined && forced !== 'gearmand' && forced !== 'embedded') {
    throw fail(`SAMPLE_SERVER must be gearmand or embedded, not ${JSON.stringify(forced)}.`);
  }
  const embedded = { bin: join(ROOT, 'scripts', 'nestjs-gearman-server.sh'), name: 'the embedded job server' };
  if (forced === 'embedded') return embedded;
  try {
    return { bin: ensureGearmand(), name: 'gearmand' };
  } catch (err) {
    if (forced === 'gearmand' || !(err instanceof SetupError)) throw err;
    log('using the embedded job server instead (for development and tests; production stays on gearmand)');
    return embedded;
  }
}

async function main() {
  process.chdir(ROOT);
  ensureDependencies();
  const server = chooseServer();
  const gearmandBin = server.bin;
  log('building the library (dist/) and the sample (dist-sample/)');
  build();

  const gearmands = [];
  for (let i = 0; i < GEARMAND_COUNT; i++) gearmands.push(await startGearmand(gearmandBin, i));
  const servers = gearmands.map((g) => g.address).join(',');
  log(`${server.name} running on ${servers}`);

  const { entry: worker } = await startNode(
    'worker',
    'worker.main.js',
    { GEARMAN_SERVERS: servers },
    /Gearman worker ready/,
  );

  let port = process.env.PORT ? Number(process.env.PORT) : DEFAULT_PORT;
  if (!process.env.PORT && (await probePort(DEFAULT_PORT)) === undefined) {
    port = await freePort();
    log(`port ${DEFAULT_PORT} is taken: the gateway uses ${port} (set PORT to choose)`);
  }
  const { entry: gateway, match } = await startNode(
    'gateway',
    'gateway.main.js',
    { GEARMAN_SERVERS: servers, PORT: String(port), HOST },
    /HTTP gateway on (http:\/\/\S+)/,
  );
  const url = match[1].replace('://[::1]', `://${HOST}`);
  await waitForHealth(url);
  process.stdout.write(`${banner(url, gearmands, worker, gateway)}\n`);
}

main().catch((err) => {
  if (!(err instanceof SetupError)) process.stderr.write(`[sample] ${err.stack ?? err}\n`);
  if (started.length === 0) process.exit(1);
  void shutdown(1);
});
