import {
  GearmanAdminError,
  GearmanCancelledError,
  GearmanConnectionError,
  GearmanError,
  GearmanJobError,
  GearmanServerError,
  GearmanTimeoutError,
  invalidArgument,
} from '../../../lib/engine/errors.js';
import { GearmanCodecError, jsonCodec } from '../../../lib/nest/codecs.js';
import { PacketDecoder } from '../../../lib/protocol/decoder.js';
import { GearmanError as ProtocolRoot, GearmanProtocolError } from '../../../lib/protocol/errors.js';

describe('one error root', () => {
  it('is the same class from protocol and engine', () => {
    expect(GearmanError).toBe(ProtocolRoot);
  });

  it('roots protocol errors, with code, message and cause', () => {
    const cause = new Error('socket said so');
    const error = new GearmanProtocolError('BAD_MAGIC', 'bad magic', { cause });
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'GearmanProtocolError', code: 'BAD_MAGIC', message: 'bad magic', cause });
    expect(new GearmanProtocolError('UNKNOWN_TYPE', 'x').cause).toBeUndefined();
  });

  it('roots what the decoder throws', () => {
    const decoder = new PacketDecoder(() => undefined);
    let thrown: unknown;
    try {
      decoder.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n'));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(GearmanError);
    expect(thrown).toMatchObject({ code: 'BAD_MAGIC' });
  });

  it('roots every engine error, with its code', () => {
    const cause = new Error('ECONNRESET');
    const errors: [GearmanError, string, string][] = [
      [new GearmanError('NOT_CANCELLABLE', 'm', { cause }), 'GearmanError', 'NOT_CANCELLABLE'],
      [
        new GearmanConnectionError('CONNECTION_LOST', 'm', 'localhost:4730', { cause }),
        'GearmanConnectionError',
        'CONNECTION_LOST',
      ],
      [new GearmanServerError('QUEUE_ERROR', 'full', 'localhost:4730'), 'GearmanServerError', 'SERVER_ERROR'],
      [new GearmanTimeoutError('m'), 'GearmanTimeoutError', 'TIMEOUT'],
      [new GearmanJobError('JOB_FAILED', 'm', 'H:1', 'f'), 'GearmanJobError', 'JOB_FAILED'],
      [new GearmanCancelledError('m', { cause }), 'GearmanCancelledError', 'CANCELLED'],
      [new GearmanAdminError('ERR', 'm'), 'GearmanAdminError', 'ADMIN_ERROR'],
      [invalidArgument('m'), 'GearmanError', 'INVALID_ARGUMENT'],
    ];
    for (const [error, name, code] of errors) {
      expect(error).toBeInstanceOf(GearmanError);
      expect({ name: error.name, code: error.code }).toEqual({ name, code });
    }
    expect(errors[0][0].cause).toBe(cause);
    expect(errors[1][0].cause).toBe(cause);
    expect(errors[5][0].cause).toBe(cause);
  });

  it('roots codec errors, with CODEC_ERROR and the cause', () => {
    const cause = new SyntaxError('Unexpected token');
    const error = new GearmanCodecError('not JSON', { cause });
    expect(error).toBeInstanceOf(GearmanError);
    expect(error).toMatchObject({ name: 'GearmanCodecError', code: 'CODEC_ERROR', message: 'not JSON', cause });
    expect(() => jsonCodec.decode(Buffer.from('{'))).toThrow(GearmanError);
  });
});
