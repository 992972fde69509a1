/**
 * With BENCH_DRIVER=node-common: loads the bench harness's shared Node driver (`lib/node-common.js`: windowing, payloads,
 * verification, timing, JSON output), so this adapter is measured exactly like the library
 * adapters beside it. The harness is `$BENCH_HARNESS_DIR`, or `../shared/bench` next to the
 * project root (the layout the harness README assumes: run from the project root as
 * `bash ../shared/bench/run.sh ./bench/adapter ...`).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchArgs {
  host: string;
  port: number;
  workload: string;
  mode: string;
  n: number;
  c: number;
  size: number;
  warmup: number;
}

export type Done = (err: Error | null, result?: Buffer) => void;
export type Created = (err: Error | null) => void;

export interface WorkerCounter {
  /** True once the N-th job of a drain has been counted (the result line is printed then). */
  onJob(payload: Buffer): boolean;
  readonly bad: number;
}

export interface NodeCommon {
  parseArgs(): BenchArgs;
  runForeground(o: BenchArgs, submit: (i: number, payload: Buffer, done: Done) => void): Promise<boolean>;
  runBackground(o: BenchArgs, submitBg: (i: number, payload: Buffer, created: Created) => void): Promise<boolean>;
  workerCounter(o: BenchArgs): WorkerCounter;
  notApplicable(o: BenchArgs, reason: string): void;
  die(msg: unknown): never;
  finish(ok: boolean, close?: () => unknown): void;
}

/** bench/adapter (the compiled files live in bench/adapter/build). */
const adapterDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export function loadCommon(): NodeCommon {
  const harness = process.env.BENCH_HARNESS_DIR ?? join(adapterDir, '..', '..', '..', 'shared', 'bench');
  const file = join(harness, 'lib', 'node-common.js');
  if (!existsSync(file)) {
    process.stderr.write(
      `bench adapter: ${file} not found. Set BENCH_HARNESS_DIR to the harness folder (the one with run.sh and lib/node-common.js).\n`,
    );
    process.exit(2);
  }
  return createRequire(import.meta.url)(file) as NodeCommon;
}
