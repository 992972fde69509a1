/**
 * The package as a user gets it: `npm pack` (its prepack build), the tarball installed into a fresh
 * Nest 12 app (ESM, NodeNext, strict), compiled with tsc, and run against a real gearmand: the
 * README's engine example, and a Nest worker and client talking through the transport.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useGearmand } from './support/harness.js';

const ROOT = join(import.meta.dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The README block that shows the engine without Nest, pointed at this test's gearmand. */
function readmeEngineExample(address: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .find((code) => code.includes("from 'nestjs-gearman/engine'") && code.includes('export async function main'));
  if (!block)
    throw new Error('README.md has no ```ts block with the engine example (main() importing nestjs-gearman/engine)');
  return block.replaceAll('127.0.0.1:4730', address);
}

const NEST_APP = (address: string) => `
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { ClientGearman, GearmanError, ServerGearman } from 'nestjs-gearman';

@Controller()
class MathController {
  @MessagePattern('package.sum')
  sum(@Payload() numbers: number[]): number {
    return numbers.reduce((a, b) => a + b, 0);
  }
}

@Module({ controllers: [MathController] })
class WorkerModule {}

export async function nest(): Promise<string> {
  const app = await NestFactory.createMicroservice(WorkerModule, {
    strategy: new ServerGearman({ servers: ['${address}'], logger: false }),
    logger: false,
  });
  await app.listen();
  const client = new ClientGearman({ servers: ['${address}'] });
  try {
    const sum = await lastValueFrom(client.send<number>('package.sum', [1, 2, 3]));
    const missing = new ClientGearman({ servers: ['127.0.0.1:1'], connectTimeout: 200 });
    const error = await lastValueFrom(missing.send('package.sum', [])).catch((e: unknown) => e);
    await missing.close();
    return \`sum=\${sum} typed=\${error instanceof GearmanError}\`;
  } finally {
    await client.close();
    await app.close();
  }
}
`;

const MAIN = `
import { main } from './readme-example.js';
import { nest } from './nest-app.js';

const log = console.log;
const lines: string[] = [];
console.log = (...args: unknown[]) => lines.push(args.join(' '));
await main();
const nestResult = await nest();
console.log = log;
console.log(JSON.stringify({ readme: lines, nest: nestResult }));
`;

describe('the packed package in a fresh Nest 12 app', () => {
  const gearmand = useGearmand();
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nestjs-gearman-app-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('installs, compiles under NodeNext and runs the README example and a Nest round trip', () => {
    const tarball = execFileSync(npm, ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!;
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    const versions = (names: string[]) => Object.fromEntries(names.map((n) => [n, root.devDependencies[n]]));
    const app = join(dir, 'app');
    mkdirSync(join(app, 'src'), { recursive: true });
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'fresh-app',
        private: true,
        type: 'module',
        dependencies: {
          'nestjs-gearman': `file:${join(dir, tarball)}`,
          ...versions(['@nestjs/common', '@nestjs/core', '@nestjs/microservices', 'reflect-metadata', 'rxjs']),
        },
        devDependencies: versions(['typescript', '@types/node']),
      }),
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          skipLibCheck: false,
          types: ['node'],
          outDir: 'dist',
          rootDir: 'src',
        },
        include: ['src'],
      }),
    );
    writeFileSync(join(app, 'src', 'readme-example.ts'), readmeEngineExample(gearmand.address));
    writeFileSync(join(app, 'src', 'nest-app.ts'), NEST_APP(gearmand.address));
    writeFileSync(join(app, 'src', 'main.ts'), MAIN);

    execFileSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: app,
      stdio: 'pipe',
    });
    // The types users compile against: skipLibCheck is off, so the shipped .d.ts must be sound.
    execFileSync(join(app, 'node_modules', '.bin', 'tsc'), ['-p', app], { cwd: app, stdio: 'pipe' });
    const output = execFileSync(process.execPath, [join(app, 'dist', 'main.js')], {
      cwd: app,
      encoding: 'utf8',
      timeout: 30_000,
    });

    expect(JSON.parse(output.trim().split('\n').pop()!)).toEqual({
      readme: ['1/2', 'olleh'],
      nest: 'sum=6 typed=true',
    });
    // What the tarball carries: the build, its maps with their sources, no tests or sources outside dist.
    const files = execFileSync('tar', ['-tzf', join(dir, tarball)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    expect(files).toEqual(
      expect.arrayContaining(['package/LICENSE', 'package/README.md', 'package/CHANGELOG.md', 'package/dist/index.js']),
    );
    expect(
      files.filter((f) => !/^package\/(dist\/|LICENSE$|README\.md$|CHANGELOG\.md$|package\.json$)/.test(f)),
    ).toEqual([]);
    const map = JSON.parse(
      readFileSync(join(app, 'node_modules', 'nestjs-gearman', 'dist', 'index.js.map'), 'utf8'),
    ) as {
      sourcesContent?: string[];
    };
    expect(map.sourcesContent?.[0]).toContain('export');
  }, 180_000);
});
