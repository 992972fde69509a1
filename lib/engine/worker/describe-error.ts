/**
 * A description of any value a handler threw or rejected with, that never throws itself: handlers
 * may fail with `Object.create(null)`, `undefined`, a symbol, a BigInt, or an object whose
 * `toString` or `message` getter throws, and none of them may take the worker down.
 */
export function describeError(err: unknown): string {
  try {
    if (err instanceof Error) {
      const message: unknown = err.message;
      if (typeof message === 'string') return message === '' ? err.name || 'Error' : message;
    }
    switch (typeof err) {
      case 'string':
        return err;
      case 'undefined':
        return 'undefined (the handler failed without an error value)';
      case 'symbol':
        return err.toString();
      case 'bigint':
      case 'number':
      case 'boolean':
        return String(err);
      case 'function':
        return `a function${err.name ? ` (${err.name})` : ''}`;
      default:
        break;
    }
    if (err === null) return 'null (the handler failed without an error value)';
    const message = (err as { message?: unknown }).message;
    if (typeof message === 'string') return message;
    const json = JSON.stringify(err);
    if (json !== undefined && json !== '{}') return json;
    if (Object.getPrototypeOf(err) === null) return 'an object without a prototype (not an Error)';
    const text = String(err);
    return text === '[object Object]' ? 'an object that is not an Error' : text;
  } catch {
    return 'a value that cannot be described (its toString, toJSON or message throws)';
  }
}
