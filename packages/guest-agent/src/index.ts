export { AgentClient, concat, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_READY_TIMEOUT_MS } from './client.js';
export type { AgentClientOptions, ExecOptions, ExecResult, ReadFileOptions, ReadyOptions, StdinSource, WriteFileOptions } from './client.js';
export { AgentError } from './errors.js';
export type { AgentErrorDetails, AgentErrorKind, PartialOutput } from './errors.js';
export { AgentProcess, AgentReadable, AgentStdin } from './process.js';
export type { ExitStatus, SpawnOptions } from './process.js';
export {
  AGENT_FRAMES,
  DATA_CHUNK_SIZE,
  decodeFrame,
  DEFAULT_AGENT_PORT,
  encodeFrame,
  ExecFlags,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  FrameType,
  frameTypeName,
  HOST_FRAMES,
  KillFlags,
  MAX_FRAME_LENGTH,
  PROTOCOL_VERSION,
  WriteFileFlags,
} from './protocol.js';
export type { Frame, FrameOf, FrameTypeName } from './protocol.js';
export type { AgentInfo } from './session.js';
export { signalName, signalNumber } from './signals.js';
export type { AgentConnector, AgentStream } from './stream.js';
