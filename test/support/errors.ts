import { GearmanError } from '../../lib/engine/index.js';

/** The error `promise` rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** The error `run` throws; fails the test if it returns. */
export function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw, but it returned');
}

/** The GearmanError `run` throws, checked to be INVALID_ARGUMENT (how every bad option fails). */
export function invalidArgument(run: () => unknown): GearmanError {
  const error = thrown(run);
  expect(error).toBeInstanceOf(GearmanError);
  expect((error as GearmanError).code).toBe('INVALID_ARGUMENT');
  return error as GearmanError;
}
