#!/usr/bin/env node
// Type-checks every ```ts block of README.md against the library, so the manual cannot drift
// from the API. Each block is compiled as its own module.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.tmp', 'readme-check');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
if (blocks.length === 0) throw new Error('README.md has no ```ts blocks to check');
blocks.forEach((code, i) => writeFileSync(join(dir, `block-${i + 1}.ts`), code));

writeFileSync(
  join(dir, 'tsconfig.json'),
  JSON.stringify({
    extends: '../../tsconfig.json',
    compilerOptions: { noEmit: true, rootDir: '../..', noUnusedLocals: false },
    include: ['./*.ts'],
  }),
);
try {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, 'tsconfig.json')], { stdio: 'inherit' });
} catch {
  console.error(`README.md: a code block does not compile (files in ${dir})`);
  process.exit(1);
}
console.log(`README.md: ${blocks.length} TypeScript blocks compile`);
