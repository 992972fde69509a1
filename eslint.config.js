import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layers of lib/: protocol <- engine <- nest <- health. A layer imports only from the layers
// before it, and nothing in lib/ imports from test/ (or from the package's own name). The embedded
// job server, lib/server, stands on protocol alone, beside the others: it imports none of them and
// none of them imports it.
const LAYERS = ['protocol', 'engine', 'nest', 'health'];
const SERVER = 'server';
const upward = (layer) => [...LAYERS.slice(LAYERS.indexOf(layer) + 1), SERVER];
const restrictImports = (above) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: [
        ...above.map((name) => ({
          regex: `^(\\.\\./)+${name}(/|$)`,
          message: `Layers: protocol <- engine <- nest <- health, and protocol <- server; this one must not import from lib/${name}.`,
        })),
        { regex: '^(\\.\\./)+test(/|$)', message: 'lib/ must not import from test/.' },
        { regex: '^nestjs-gearman(/|$)', message: 'lib/ imports its own files by relative path.' },
      ],
    },
  ],
});

export default tseslint.config(
  {
    ignores: [
      '.tmp/**',
      'dist/**',
      'dist-all/**',
      'dist-sample/**',
      'node_modules/**',
      'coverage/**',
      'bench/adapter*/build/**',
      'bench/telemetry/build/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  { files: ['lib/**/*.ts'], rules: restrictImports([]) },
  ...LAYERS.map((layer) => ({ files: [`lib/${layer}/**/*.ts`], rules: restrictImports(upward(layer)) })),
  { files: [`lib/${SERVER}/**/*.ts`], rules: restrictImports(LAYERS.slice(1)) },
);
