import {
  type AdminReply,
  AdminReplyReader,
  adminReplyShape,
  GearmanProtocolError,
  parseErrLine,
  parseGetpid,
  parseOk,
  parseOkValue,
  parsePriorityStatus,
  parseShowJobs,
  parseShowUniqueJobs,
  parseStatus,
  parseWorkers,
} from '../../../lib/protocol/index.js';

/** Sends the commands' expected shapes, feeds the text in the given pieces, returns the replies. */
function read(commands: string[], pieces: (string | Buffer)[]): AdminReply[] {
  const replies: AdminReply[] = [];
  const reader = new AdminReplyReader((r) => replies.push(r));
  for (const c of commands) reader.expect(adminReplyShape(c));
  for (const p of pieces) reader.push(p);
  expect(reader.pending).toBe(0);
  return replies;
}

// Verbatim replies of gearmand 1.1.20 (captured from a real server), line endings included.
const TRANSCRIPT: [string, string][] = [
  ['status', 'ERRfn\t1\t0\t0\nfnA\t2\t0\t0\n.\n'],
  ['prioritystatus', 'ERRfn\t0\t1\t0\t0\nfnA\t0\t2\t0\t0\n.\n'],
  ['workers', '38 127.0.0.1 - :\n39 127.0.0.1 worker-7 : fnA fnB\n.\n'],
  ['show jobs', 'H:vm:1\t0\t0\t1\nH:vm:2\t0\t0\t1\n.\n'],
  ['show unique jobs', '0298f8b4-e674-11f1-84a9-02fc00000001\n\nuq1\n.\n'],
  ['version', 'OK 1.1.20+ds\n'],
  ['getpid', 'OK 3811\n'],
  ['verbose', 'OK ERROR\n'],
  ['maxqueue fnA 5', 'OK\r\n'],
  ['maxqueue', 'ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n'],
  ['cancel job H:nope:1', 'ERR UNKNOWN_JOB\r\n'],
  ['drop function nothere', 'ERR function not found\r\n'],
  ['show foo', 'ERR UNKNOWN_SHOW_ARGUMENTS\r\n'],
  ['shutdown', 'ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n'],
];
const COMMANDS = TRANSCRIPT.map(([c]) => c);
const TEXT = TRANSCRIPT.map(([, t]) => t).join('');

const EXPECTED: AdminReply[] = [
  { ok: true, lines: ['ERRfn\t1\t0\t0', 'fnA\t2\t0\t0'] },
  { ok: true, lines: ['ERRfn\t0\t1\t0\t0', 'fnA\t0\t2\t0\t0'] },
  { ok: true, lines: ['38 127.0.0.1 - :', '39 127.0.0.1 worker-7 : fnA fnB'] },
  { ok: true, lines: ['H:vm:1\t0\t0\t1', 'H:vm:2\t0\t0\t1'] },
  { ok: true, lines: ['0298f8b4-e674-11f1-84a9-02fc00000001', '', 'uq1'] },
  { ok: true, lines: ['OK 1.1.20+ds'] },
  { ok: true, lines: ['OK 3811'] },
  { ok: true, lines: ['OK ERROR'] },
  { ok: true, lines: ['OK'] },
  {
    ok: false,
    code: 'INVALID_ARGUMENTS',
    message: 'An incomplete set of arguments was sent to this command maxqueue',
  },
  { ok: false, code: 'UNKNOWN_JOB', message: '' },
  { ok: false, code: 'UNKNOWN', message: 'function not found' },
  { ok: false, code: 'UNKNOWN_SHOW_ARGUMENTS', message: '' },
  { ok: false, code: 'UNKNOWN_COMMAND', message: 'Unknown server commandshutdown' },
];

describe('AdminReplyReader', () => {
  it('knows which commands answer with a list', () => {
    expect(COMMANDS.map(adminReplyShape)).toEqual([
      'list',
      'list',
      'list',
      'list',
      'list',
      'line',
      'line',
      'line',
      'line',
      'line',
      'line',
      'line',
      'list',
      'line',
    ]);
    expect(adminReplyShape('  STATUS  ')).toBe('list');
  });

  it('reads pipelined replies with mixed \\n and \\r\\n endings in one chunk', () => {
    expect(read(COMMANDS, [TEXT])).toEqual(EXPECTED);
  });

  it('gives the same replies for the transcript split at every position', () => {
    const bad: number[] = [];
    for (let at = 0; at <= TEXT.length; at++) {
      const got = read(COMMANDS, [TEXT.slice(0, at), TEXT.slice(at)]);
      if (JSON.stringify(got) !== JSON.stringify(EXPECTED)) bad.push(at);
    }
    expect(bad).toEqual([]);
  });

  it('gives the same replies when fed one byte at a time as Buffers', () => {
    const bytes = Buffer.from(TEXT);
    expect(
      read(
        COMMANDS,
        [...bytes].map((b) => Buffer.from([b])),
      ),
    ).toEqual(EXPECTED);
  });

  it('keeps a multi-byte UTF-8 function name intact when a chunk splits it', () => {
    const text = Buffer.from('größe\t3\t1\t2\n.\n');
    const got = read(['status'], [text.subarray(0, 3), text.subarray(3)]);
    expect(got).toEqual([{ ok: true, lines: ['größe\t3\t1\t2'] }]);
  });

  it('reads an empty list (a bare ".")', () => {
    expect(read(['status'], ['.\n'])).toEqual([{ ok: true, lines: [] }]);
  });

  it('reads ERR as the reply to a list command', () => {
    expect(read(['show jobs please', 'status'], ['ERR UNKNOWN_SHOW_ARGUMENTS\r\n', 'f\t0\t0\t1\n.\n'])).toEqual([
      { ok: false, code: 'UNKNOWN_SHOW_ARGUMENTS', message: '' },
      { ok: true, lines: ['f\t0\t0\t1'] },
    ]);
  });

  it('does not take a list row starting with "ERR" for an error', () => {
    // A function called ERRORS is a legitimate first row of `status`.
    expect(read(['status'], ['ERRORS\t1\t0\t0\n.\n'])).toEqual([{ ok: true, lines: ['ERRORS\t1\t0\t0'] }]);
  });

  it('throws BAD_ADMIN_REPLY for a line nobody asked for', () => {
    const reader = new AdminReplyReader(() => undefined);
    expect(() => reader.push('OK\r\n')).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
  });

  it('throws BAD_ADMIN_REPLY when unterminated text exceeds the limit, and starts afresh', () => {
    const replies: AdminReply[] = [];
    const reader = new AdminReplyReader((r) => replies.push(r), 100);
    reader.expect('list');
    expect(() => reader.push('x'.repeat(101))).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
    expect(reader.pending).toBe(0);
    reader.expect('line');
    reader.push('OK 1\n');
    expect(replies).toEqual([{ ok: true, lines: ['OK 1'] }]);
  });

  it('counts the characters of a growing list against the limit, not its line count', () => {
    const reader = new AdminReplyReader(() => undefined, 1000);
    reader.expect('list');
    let error: unknown;
    // Each push is well under the limit; the list as a whole is not.
    for (let i = 0; i < 100 && error === undefined; i++) {
      try {
        reader.push(`${'f'.repeat(40)}\t0\t0\t0\n`);
      } catch (e) {
        error = e;
      }
    }
    expect(error).toBeInstanceOf(GearmanProtocolError);
  });
});

describe('admin reply parsers', () => {
  it('parseStatus', () => {
    expect(parseStatus(['ERRfn\t1\t0\t0', 'resize\t12\t3\t4'])).toEqual([
      { function: 'ERRfn', total: 1, running: 0, workers: 0 },
      { function: 'resize', total: 12, running: 3, workers: 4 },
    ]);
    expect(parseStatus([])).toEqual([]);
    expect(() => parseStatus(['resize\t1\t0'])).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
    expect(() => parseStatus(['resize\tx\t0\t0'])).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
  });

  it('parsePriorityStatus', () => {
    expect(parsePriorityStatus(['resize\t2\t5\t1\t3'])).toEqual([
      { function: 'resize', high: 2, normal: 5, low: 1, workers: 3 },
    ]);
    expect(() => parsePriorityStatus(['resize\t2\t5\t1'])).toThrow(GearmanProtocolError);
  });

  it('parseWorkers: admin and client connections, ids, function lists', () => {
    expect(
      parseWorkers([
        '38 127.0.0.1 - :',
        '39 127.0.0.1 worker-7 : fnA fnB',
        '40 127.0.0.1 my worker : fnC',
        // gearmand 1.1.20 prints IPv6 peers oddly; whatever it prints is one token.
        '41 ::3434:3731:3600:0%727747104 - : fnA',
      ]),
    ).toEqual([
      { fd: 38, ip: '127.0.0.1', clientId: undefined, functions: [] },
      { fd: 39, ip: '127.0.0.1', clientId: 'worker-7', functions: ['fnA', 'fnB'] },
      { fd: 40, ip: '127.0.0.1', clientId: 'my worker', functions: ['fnC'] },
      { fd: 41, ip: '::3434:3731:3600:0%727747104', clientId: undefined, functions: ['fnA'] },
    ]);
    expect(() => parseWorkers(['garbage'])).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
  });

  it('parseShowJobs', () => {
    expect(parseShowJobs(['H:vm:1\t0\t0\t1', 'H:vm:2\t3\t1\t0'])).toEqual([
      { handle: 'H:vm:1', retries: 0, ignoreJob: false, queued: true },
      { handle: 'H:vm:2', retries: 3, ignoreJob: true, queued: false },
    ]);
    expect(() => parseShowJobs(['H:vm:1\t0'])).toThrow(GearmanProtocolError);
  });

  it('parseShowUniqueJobs keeps the blank line of a job without unique', () => {
    expect(parseShowUniqueJobs(['uq1', '', 'uq2'])).toEqual(['uq1', '', 'uq2']);
  });

  it('parseOkValue, parseGetpid, parseOk', () => {
    expect(parseOkValue(['OK 1.1.20+ds'])).toBe('1.1.20+ds');
    expect(parseOkValue(['OK ERROR'])).toBe('ERROR');
    expect(parseGetpid(['OK 3811'])).toBe(3811);
    expect(() => parseOk(['OK'])).not.toThrow();
    expect(() => parseOk(['NOPE'])).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
    expect(() => parseGetpid(['OK abc'])).toThrow(expect.objectContaining({ code: 'BAD_ADMIN_REPLY' }));
    expect(() => parseOkValue([])).toThrow(GearmanProtocolError);
  });

  it('parseErrLine decodes "+" as spaces and handles free-text errors', () => {
    expect(parseErrLine('ERR UNKNOWN_COMMAND Unknown+server+commandfoo')).toEqual({
      code: 'UNKNOWN_COMMAND',
      message: 'Unknown server commandfoo',
    });
    expect(parseErrLine('ERR there are still connected workers or executing clients')).toEqual({
      code: 'UNKNOWN',
      message: 'there are still connected workers or executing clients',
    });
    expect(parseErrLine('ERR')).toEqual({ code: 'UNKNOWN', message: '' });
  });
});
