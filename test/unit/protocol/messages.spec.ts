import { PacketDecoder } from '../../../lib/protocol/decoder.js';
import { type PacketArg, encodePacket } from '../../../lib/protocol/encoder.js';
import {
  readData,
  readError,
  readHandle,
  readJobAssign,
  readStatusReply,
  readWorkStatus,
} from '../../../lib/protocol/messages.js';
import { type Packet, PacketType } from '../../../lib/protocol/packet-types.js';

/** One packet as a client reads it: encoded with \0RES magic, decoded from one chunk. */
function received(type: number, args: readonly PacketArg[]): { packet: Packet; wire: Buffer } {
  const wire = encodePacket(type, args, 'RES');
  const packets: Packet[] = [];
  new PacketDecoder((p) => packets.push(p)).push(wire);
  expect(packets).toHaveLength(1);
  return { packet: packets[0], wire };
}
const packet = (type: number, args: readonly PacketArg[]) => received(type, args).packet;

/**
 * A WORK_FAIL payload as gearmand writes it from an exception: the handle and a trailing NUL
 * (docs/gearmand-behaviour.md#work_exception).
 */
function workFailWithNul(handle: string): Packet {
  const payload = Buffer.from(`${handle}\0`, 'latin1');
  const wire = Buffer.concat([
    Buffer.from([0, 0x52, 0x45, 0x53, 0, 0, 0, PacketType.WORK_FAIL, 0, 0, 0, payload.length]),
    payload,
  ]);
  const packets: Packet[] = [];
  new PacketDecoder((p) => packets.push(p)).push(wire);
  return packets[0];
}

describe('readHandle', () => {
  const handle = 'H:host-01:42';

  it.each([
    ['JOB_CREATED', PacketType.JOB_CREATED, [handle]],
    ['WORK_DATA', PacketType.WORK_DATA, [handle, Buffer.from('d')]],
    ['WORK_WARNING', PacketType.WORK_WARNING, [handle, Buffer.from('w')]],
    ['WORK_STATUS', PacketType.WORK_STATUS, [handle, '1', '2']],
    ['WORK_COMPLETE', PacketType.WORK_COMPLETE, [handle, Buffer.from('r')]],
    ['WORK_FAIL', PacketType.WORK_FAIL, [handle]],
    ['WORK_EXCEPTION', PacketType.WORK_EXCEPTION, [handle, Buffer.from('e')]],
  ] as [string, number, PacketArg[]][])('reads the handle of %s', (_name, type, args) => {
    expect(readHandle(packet(type, args))).toBe(handle);
  });

  it("strips the trailing NUL of gearmand's WORK_FAIL made from an exception", () => {
    const p = workFailWithNul(handle);
    expect(p.args[0]).toHaveLength(handle.length + 1);
    expect(readHandle(p)).toBe(handle);
  });

  it('reads the bytes of a handle as latin1, one character per byte', () => {
    expect(readHandle(packet(PacketType.JOB_CREATED, [Buffer.from([0x48, 0xe9, 0xff])]))).toBe('H\u00e9\u00ff');
  });

  it('reads an empty WORK_FAIL handle as empty', () => {
    expect(readHandle(packet(PacketType.WORK_FAIL, ['']))).toBe('');
  });
});

describe('readData', () => {
  const data = Buffer.from([1, 0, 2, 0, 3]);

  it.each([
    ['WORK_DATA', PacketType.WORK_DATA, ['H:1', data]],
    ['WORK_WARNING', PacketType.WORK_WARNING, ['H:1', data]],
    ['WORK_COMPLETE', PacketType.WORK_COMPLETE, ['H:1', data]],
    ['WORK_EXCEPTION', PacketType.WORK_EXCEPTION, ['H:1', data]],
    ['ECHO_RES', PacketType.ECHO_RES, [data]],
    ['JOB_ASSIGN', PacketType.JOB_ASSIGN, ['H:1', 'f', data]],
    ['JOB_ASSIGN_UNIQ', PacketType.JOB_ASSIGN_UNIQ, ['H:1', 'f', 'u', data]],
    ['JOB_ASSIGN_ALL', PacketType.JOB_ASSIGN_ALL, ['H:1', 'f', 'u', 'r', data]],
  ] as [string, number, PacketArg[]][])(
    'reads the data of %s (NULs included) as a view of the input',
    (_name, type, args) => {
      const { packet: p, wire } = received(type, args);
      const read = readData(p);
      expect(read.equals(data)).toBe(true);
      expect(read.buffer).toBe(wire.buffer);
      expect(read.byteOffset).toBe(wire.byteOffset + wire.length - data.length);
    },
  );

  it('reads empty data as an empty Buffer', () => {
    expect(readData(packet(PacketType.WORK_COMPLETE, ['H:1', Buffer.alloc(0)]))).toHaveLength(0);
  });
});

describe('readWorkStatus', () => {
  it('reads numerator and denominator', () => {
    expect(readWorkStatus(packet(PacketType.WORK_STATUS, ['H:1', '3', '10']))).toEqual({
      numerator: 3,
      denominator: 10,
    });
  });

  it('reads what is not a number as 0', () => {
    expect(readWorkStatus(packet(PacketType.WORK_STATUS, ['H:1', 'x', '']))).toEqual({ numerator: 0, denominator: 0 });
  });
});

describe('readStatusReply', () => {
  it('reads STATUS_RES: the id is the handle, no waiting clients', () => {
    expect(readStatusReply(packet(PacketType.STATUS_RES, ['H:host:7', '1', '0', '2', '5']))).toEqual({
      id: 'H:host:7',
      known: true,
      running: false,
      numerator: 2,
      denominator: 5,
      waitingClients: undefined,
    });
  });

  it('reads STATUS_RES_UNIQUE: the id is the unique (UTF-8), then the waiting clients', () => {
    expect(readStatusReply(packet(PacketType.STATUS_RES_UNIQUE, ['order-\u00e9', '1', '1', '0', '0', '3']))).toEqual({
      id: 'order-\u00e9',
      known: true,
      running: true,
      numerator: 0,
      denominator: 0,
      waitingClients: 3,
    });
  });

  it('reads an unknown job: flags other than 1 are false, non-numbers 0', () => {
    expect(readStatusReply(packet(PacketType.STATUS_RES_UNIQUE, ['u', '0', '10', 'x', '', 'y']))).toEqual({
      id: 'u',
      known: false,
      running: false,
      numerator: 0,
      denominator: 0,
      waitingClients: 0,
    });
  });
});

describe('readJobAssign', () => {
  const payload = Buffer.from([0, 1, 2]);

  it('reads JOB_ASSIGN: no unique, no reducer', () => {
    const { packet: p, wire } = received(PacketType.JOB_ASSIGN, ['H:h:1', 'resize', payload]);
    const job = readJobAssign(p);
    expect(job).toEqual({ handle: 'H:h:1', functionName: 'resize', unique: '', reducer: undefined, payload });
    expect(job.payload.buffer).toBe(wire.buffer);
  });

  it('reads JOB_ASSIGN_UNIQ: the unique, no reducer', () => {
    const job = readJobAssign(packet(PacketType.JOB_ASSIGN_UNIQ, ['H:h:2', 'r\u00e9size', 'u-\u00e9', payload]));
    expect(job).toEqual({
      handle: 'H:h:2',
      functionName: 'r\u00e9size',
      unique: 'u-\u00e9',
      reducer: undefined,
      payload,
    });
  });

  it('reads JOB_ASSIGN_ALL: the unique and the reducer', () => {
    const job = readJobAssign(packet(PacketType.JOB_ASSIGN_ALL, ['H:h:3', 'map', 'u', 'reduce', payload]));
    expect(job).toEqual({ handle: 'H:h:3', functionName: 'map', unique: 'u', reducer: 'reduce', payload });
  });

  it('reads an empty reducer of JOB_ASSIGN_ALL as none', () => {
    expect(readJobAssign(packet(PacketType.JOB_ASSIGN_ALL, ['H:h:4', 'f', '', '', payload])).reducer).toBeUndefined();
  });
});

describe('readError', () => {
  it('reads the code and the text', () => {
    expect(readError(packet(PacketType.ERROR, ['QUEUE_ERROR', 'Job queue is full']))).toEqual({
      code: 'QUEUE_ERROR',
      message: 'Job queue is full',
    });
  });

  it('reads the text as UTF-8', () => {
    expect(readError(packet(PacketType.ERROR, ['X', 'caf\u00e9'])).message).toBe('caf\u00e9');
  });

  it('reads a packet built without fields as UNKNOWN with no text', () => {
    expect(readError({ type: PacketType.ERROR, args: [] })).toEqual({ code: 'UNKNOWN', message: '' });
    expect(readError({ type: PacketType.ERROR, args: [Buffer.from('JOB_NOT_FOUND')] })).toEqual({
      code: 'JOB_NOT_FOUND',
      message: '',
    });
  });
});
