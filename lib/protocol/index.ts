/**
 * `nestjs-gearman/protocol`: the Gearman codec (binary packets in both directions, admin replies),
 * with no I/O, for tools and tests. Every name here is public API.
 */
export {
  HEADER_SIZE,
  type Magic,
  MAX_FUNCTION_NAME_LENGTH,
  MAX_HANDLE_LENGTH,
  MAX_UNIQUE_LENGTH,
  type Packet,
  PACKET_SPECS,
  packetArgCount,
  packetName,
  type PacketSpec,
  PacketType,
} from './packet-types.js';
export { encodePacket, type PacketArg, PacketWriter } from './encoder.js';
export { type OversizedPacket, PacketDecoder, type PacketDecoderOptions } from './decoder.js';
export {
  type JobAssignment,
  readData,
  readError,
  readHandle,
  readJobAssign,
  readStatusReply,
  readWorkStatus,
  type ServerErrorReply,
  type StatusReply,
  type WorkStatus,
} from './messages.js';
export {
  type AdminReply,
  AdminReplyReader,
  type AdminReplyShape,
  adminReplyShape,
  type FunctionPriorityStatus,
  type FunctionStatus,
  type JobInfo,
  parseErrLine,
  parseGetpid,
  parseOk,
  parseOkValue,
  parsePriorityStatus,
  parseShowJobs,
  parseShowUniqueJobs,
  parseStatus,
  parseWorkers,
  type WorkerInfo,
} from './admin-replies.js';
export { GearmanError, type GearmanErrorCode, GearmanProtocolError, type GearmanProtocolErrorCode } from './errors.js';
