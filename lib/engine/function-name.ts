import { MAX_FUNCTION_NAME_LENGTH, MAX_REDUCER_LENGTH } from '../protocol/packet-types.js';
import { invalidArgument } from './errors.js';

/**
 * Checks a function name before anything is sent (register, submit): non-empty, no NUL, and at
 * most the UTF-8 bytes gearmand 1.1.20 handles (docs/gearmand-behaviour.md#function-names).
 * Throws INVALID_ARGUMENT.
 */
export function checkFunctionName(name: unknown): void {
  if (typeof name !== 'string' || name === '' || name.includes('\0')) {
    throw invalidArgument(`Invalid function name ${JSON.stringify(name)}: use a non-empty string without NUL bytes`);
  }
  checkLength(name, 'function name', MAX_FUNCTION_NAME_LENGTH);
}

/**
 * The reducer of a reduce job: gearmand 1.1.20 refuses one above 64 bytes with a misleading
 * ARGUMENT_TOO_LARGE "Unique value too large" (docs/gearmand-behaviour.md#function-names).
 */
export function checkReducerName(name: unknown): void {
  if (typeof name !== 'string' || name.includes('\0')) {
    throw invalidArgument(`Invalid reducer ${JSON.stringify(name)}: use a function name without NUL bytes`);
  }
  checkLength(name, 'reducer', MAX_REDUCER_LENGTH);
}

function checkLength(name: string, what: string, max: number): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit: short names need no byte count.
  if (name.length * 3 <= max) return;
  const bytes = Buffer.byteLength(name);
  if (bytes <= max) return;
  throw invalidArgument(
    `The ${what} ${JSON.stringify(name.slice(0, 40))}... is ${bytes} bytes (UTF-8), above the ${max} bytes ` +
      'gearmand 1.1.20 handles (a longer one makes it drop the connection or refuse the job): use a shorter name',
  );
}
