/** Jest 30 in ESM mode: Nest 12 is ESM only (see README, "Development"). */
import { findGearmand, findPerlServer, onPath } from './scripts/setup.mjs';

const shared = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  moduleNameMapper: {
    '^nestjs-gearman$': '<rootDir>/lib/index.ts',
    '^nestjs-gearman/engine$': '<rootDir>/lib/engine/index.ts',
    '^nestjs-gearman/protocol$': '<rootDir>/lib/protocol/index.ts',
    '^nestjs-gearman/health$': '<rootDir>/lib/health/index.ts',
    '^nestjs-gearman/server$': '<rootDir>/lib/server/index.ts',
    '^nestjs-gearman/testing$': '<rootDir>/lib/testing/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: false }],
  },
  testTimeout: 30000,
};

/** Suites that need more than Node: what each needs, and the suites (paths under test/). */
const NEEDS = [
  {
    what: 'gearmand',
    has: findGearmand(),
    // Its libsqlite3 queue, and the embedded server compared with it.
    suites: ['reliability/persistent-queue.spec.ts', 'server/conformance.spec.ts'],
  },
  {
    what: "libgearman's gearman and gearadmin tools",
    has: onPath('gearman') && onPath('gearadmin'),
    suites: ['engine/client-worker-interop.spec.ts', 'nest/interop.spec.ts', 'server/cli.spec.ts'],
  },
  { what: "Perl's Gearman::Server", has: findPerlServer(), suites: ['perl/'] },
];
/** The engine, Nest and protocol suites, run on both servers: the embedded server's conformance. */
const BOTH_SERVERS = [
  '**/test/engine/**/*.spec.ts',
  '**/test/nest/**/*.spec.ts',
  '**/test/protocol.integration.spec.ts',
];

/**
 * What this machine has, decided once: the test processes inherit `GEARMAND` and
 * `GEARMAN_PERL_SERVER` (scripts/setup.mjs finds them; set them for other builds), and each
 * project's setup file sets `GEARMAN_TEST_SERVER` (test/support/gearmand.ts reads it).
 * - gearmand installed: `unit`, `gearmand` (every integration suite) and `embedded` (the engine,
 *   Nest and protocol suites again, on the embedded job server).
 * - no gearmand (a laptop without it and without root): `unit` and `embedded` (every integration
 *   suite the machine can run), with a notice at the start and the end of the run.
 * Suites whose needs are missing do not run, and the notice names them.
 */
const gearmand = NEEDS[0].has;
if (gearmand) process.env.GEARMAND = gearmand;
if (NEEDS[2].has) process.env.GEARMAN_PERL_SERVER = NEEDS[2].has;
const missing = NEEDS.filter((need) => !need.has);
const excluded = missing.flatMap((need) => need.suites.map((suite) => `<rootDir>/test/${suite}`));
const notice =
  missing.length === 0
    ? undefined
    : [
        `Not installed: ${missing.map((need) => need.what).join('; ')}.`,
        gearmand ? '' : 'The integration suites run against the embedded job server (lib/server) only.',
        `These suites do not run:\n  ${missing.flatMap((need) => need.suites.map((s) => `test/${s}`)).join('\n  ')}`,
        'To run them: apt-get install gearman-job-server gearman-tools gearman-server (macOS: brew install gearman), ' +
          'or set GEARMAND=/path/to/gearmand.',
      ]
        .filter(Boolean)
        .join('\n');
if (notice) process.stderr.write(`\n[nestjs-gearman tests] ${notice}\n\n`);

const integration = {
  ...shared,
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/', ...excluded],
};
const onServer = (server) => ({ displayName: server, setupFiles: [`<rootDir>/test/support/setup-${server}.ts`] });

export default {
  testTimeout: shared.testTimeout,
  reporters: notice ? ['default', ['<rootDir>/test/support/notice-reporter.js', { notice }]] : ['default'],
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'], testMatch: ['**/*.spec.ts'] },
    ...(gearmand ? [{ ...integration, ...onServer('gearmand') }] : []),
    { ...integration, ...onServer('embedded'), ...(gearmand ? { testMatch: BOTH_SERVERS } : {}) },
  ],
};
