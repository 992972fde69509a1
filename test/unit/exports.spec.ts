/**
 * The public API of each entry point, pinned: adding or removing a name must show up here as a
 * deliberate diff. Values are checked on the loaded module, types on the entry's export list.
 */
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import * as engine from '../../lib/engine/index.js';
import * as health from '../../lib/health/index.js';
import * as main from '../../lib/index.js';
import * as protocol from '../../lib/protocol/index.js';
import * as server from '../../lib/server/index.js';
import * as testing from '../../lib/testing/index.js';

/** Every name an entry file exports, values and types, from its `export { ... } from` lists. */
function exportedNames(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022);
  const names: string[] = [];
  for (const statement of source.statements) {
    if (!ts.isExportDeclaration(statement)) continue;
    if (!statement.exportClause || !ts.isNamedExports(statement.exportClause)) {
      throw new Error(`${file}: \`export *\` hides what is public; list the names`);
    }
    for (const element of statement.exportClause.elements) names.push(element.name.text);
  }
  return names.sort();
}

const entries = {
  'nestjs-gearman': {
    file: 'lib/index.ts',
    module: main,
    values: [
      'ClientGearman',
      'GEARMAN_CLIENT',
      'GEARMAN_TRANSPORT',
      'GearmanAdminError',
      'GearmanAdminModule',
      'GearmanAdminService',
      'GearmanCancelledError',
      'GearmanCodecError',
      'GearmanConnectionError',
      'GearmanContext',
      'GearmanError',
      'GearmanJobError',
      'GearmanModule',
      'GearmanRecord',
      'GearmanRecordBuilder',
      'GearmanRpcError',
      'GearmanServerError',
      'GearmanStatus',
      'GearmanTimeoutError',
      'InjectGearmanClient',
      'ServerGearman',
      'textCodec',
    ],
    types: [
      'BackoffOptions',
      'ErrorMode',
      'FunctionPriorityStatus',
      'FunctionStatus',
      'GearmanAdminModuleAsyncOptions',
      'GearmanAdminModuleOptions',
      'GearmanClientAsyncRegistration',
      'GearmanClientProxyOptions',
      'GearmanClientRegistration',
      'GearmanCodec',
      'GearmanCodecOption',
      'GearmanErrorCode',
      'GearmanEvents',
      'GearmanJobEvent',
      'GearmanModuleAsyncOptions',
      'GearmanModuleClients',
      'GearmanModuleOptions',
      'GearmanOptionsFactory',
      'GearmanPatternExtras',
      'GearmanRecordOptions',
      'GearmanServerOptions',
      'GearmanTelemetryOptions',
      'JobInfo',
      'JobPriority',
      'MaxQueueLimits',
      'ServerAddress',
      'ServerPing',
      'ServerResult',
      'ServerSpec',
      'ServerStrategy',
      'WithServer',
      'WorkerInfo',
    ],
  },
  'nestjs-gearman/engine': {
    file: 'lib/engine/index.ts',
    module: engine,
    values: [
      'GearmanAdmin',
      'GearmanAdminConnection',
      'GearmanAdminError',
      'GearmanAdminServersError',
      'GearmanCancelledError',
      'GearmanClient',
      'GearmanConnectionError',
      'GearmanError',
      'GearmanJob',
      'GearmanJobError',
      'GearmanProtocolError',
      'GearmanServerError',
      'GearmanTimeoutError',
      'GearmanWorker',
      'WorkerJob',
    ],
    types: [
      'BackoffOptions',
      'ConnectionOptions',
      'ErrorMode',
      'FunctionPriorityStatus',
      'FunctionStatus',
      'GearmanAdminConnectionOptions',
      'GearmanAdminOptions',
      'GearmanClientEvents',
      'GearmanClientOptions',
      'GearmanErrorCode',
      'GearmanJobEvents',
      'GearmanProtocolErrorCode',
      'GearmanWorkerEvents',
      'GearmanWorkerOptions',
      'HeartbeatOptions',
      'JobHandler',
      'JobInfo',
      'JobOutcome',
      'JobPriority',
      'JobRequest',
      'JobResult',
      'JobState',
      'JobStatus',
      'MaxQueueLimits',
      'PacketTap',
      'PacketTapEvent',
      'RegisterOptions',
      'RunAllOptions',
      'ServerAddress',
      'ServerResult',
      'ServerSpec',
      'ServerStrategy',
      'SubmitOptions',
      'WithServer',
      'WorkerInfo',
    ],
  },
  'nestjs-gearman/protocol': {
    file: 'lib/protocol/index.ts',
    module: protocol,
    values: [
      'AdminReplyReader',
      'GearmanError',
      'GearmanProtocolError',
      'HEADER_SIZE',
      'MAX_FUNCTION_NAME_LENGTH',
      'MAX_HANDLE_LENGTH',
      'MAX_UNIQUE_LENGTH',
      'PACKET_SPECS',
      'PacketDecoder',
      'PacketType',
      'PacketWriter',
      'adminReplyShape',
      'encodePacket',
      'packetArgCount',
      'packetName',
      'parseErrLine',
      'parseGetpid',
      'parseOk',
      'parseOkValue',
      'parsePriorityStatus',
      'parseShowJobs',
      'parseShowUniqueJobs',
      'parseStatus',
      'parseWorkers',
      'readData',
      'readError',
      'readHandle',
      'readJobAssign',
      'readStatusReply',
      'readWorkStatus',
    ],
    types: [
      'AdminReply',
      'AdminReplyShape',
      'FunctionPriorityStatus',
      'FunctionStatus',
      'GearmanErrorCode',
      'GearmanProtocolErrorCode',
      'JobAssignment',
      'JobInfo',
      'Magic',
      'OversizedPacket',
      'Packet',
      'PacketArg',
      'PacketDecoderOptions',
      'PacketSpec',
      'ServerErrorReply',
      'StatusReply',
      'WorkStatus',
      'WorkerInfo',
    ],
  },
  'nestjs-gearman/health': {
    file: 'lib/health/index.ts',
    module: health,
    values: ['GearmanHealthIndicator'],
    types: ['GearmanFunctionCheck', 'GearmanHealthCheck', 'GearmanHealthOptions'],
  },
  'nestjs-gearman/server': {
    file: 'lib/server/index.ts',
    module: server,
    values: ['spawnGearmanServer', 'startGearmanServer'],
    types: [
      'GearmanServer',
      'GearmanServerLogLevel',
      'GearmanServerOptions',
      'GearmanServerProcess',
      'SpawnGearmanServerOptions',
    ],
  },
  'nestjs-gearman/testing': {
    file: 'lib/testing/index.ts',
    module: testing,
    values: ['createTestContext', 'startTestServer'],
    types: ['TestContext', 'TestContextOptions', 'TestReports', 'TestServer', 'TestServerOptions'],
  },
};

describe.each(Object.entries(entries))('%s', (_entry, { file, module, values, types }) => {
  it('exports exactly these values', () => {
    expect(Object.keys(module).sort()).toEqual([...values].sort());
  });

  it('lists exactly these names, types included, with no `export *`', () => {
    expect(exportedNames(file)).toEqual([...values, ...types].sort());
  });
});

it('every error class of every entry point extends GearmanError', () => {
  const errors = [main, engine, protocol].flatMap((m) =>
    Object.entries(m).filter(([name]) => name.endsWith('Error') && name.startsWith('Gearman')),
  );
  expect(errors.length).toBeGreaterThan(10);
  for (const [name, error] of errors) {
    const extendsRoot =
      error === main.GearmanError || (error as { prototype: unknown }).prototype instanceof main.GearmanError;
    expect({ name, extendsRoot }).toEqual({ name, extendsRoot: true });
  }
});
