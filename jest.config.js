/** Jest 30 in ESM mode: Nest 12 is ESM only (see README, "Development"). */
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

/**
 * Two layers: `unit` (test/unit) needs nothing installed and opens no socket; `integration`
 * (everything else) runs against a real gearmand. `jest --selectProjects unit` runs one.
 */
export default {
  testTimeout: shared.testTimeout,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'], testMatch: ['**/*.spec.ts'] },
    {
      ...shared,
      displayName: 'integration',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/'],
    },
  ],
};
