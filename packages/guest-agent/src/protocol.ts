/**
 * The hype-agent protocol, version 1 (guest/agent/PROTOCOL.md): frame types, payload layouts, and the
 * codec. A frame is a u32 big-endian length (type + payload, 1 .. MAX_FRAME_LENGTH), a type byte and the
 * payload; integers big-endian, strings a u32 byte length and UTF-8.
 */
import { AgentError } from './errors.js';

export const PROTOCOL_VERSION = 1;
/** The largest frame `length` (type byte + payload) either side accepts: 1 MiB. */
export const MAX_FRAME_LENGTH = 1 << 20;
/** The 4-byte length and the type byte. */
export const FRAME_HEADER_SIZE = 5;
/** The largest data payload the agent sends, and the size the client cuts its data into. */
export const DATA_CHUNK_SIZE = 64 * 1024;
/** The vsock port the agent listens on in hype's default guest. */
export const DEFAULT_AGENT_PORT = 1024;

/** Frame type bytes. */
export const FrameType = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  EXEC: 0x10,
  STDIN: 0x11,
  STDIN_EOF: 0x12,
  KILL: 0x13,
  STARTED: 0x14,
  STDOUT: 0x15,
  STDERR: 0x16,
  STDIN_ACK: 0x17,
  EXIT: 0x18,
  WRITE_FILE: 0x20,
  FILE_DATA: 0x21,
  FILE_END: 0x22,
  WRITE_DONE: 0x23,
  READ_FILE: 0x30,
  FILE_INFO: 0x31,
  ERROR: 0x7f,
} as const;
export type FrameTypeName = keyof typeof FrameType;

const TYPE_NAMES = new Map<number, FrameTypeName>(Object.entries(FrameType).map(([name, value]) => [value, name as FrameTypeName]));

/** EXEC flags. */
export const ExecFlags = { STDIN: 0x1, REPLACE_ENV: 0x2 } as const;
/** KILL flags. */
export const KillFlags = { GROUP: 0x1 } as const;
/** WRITE_FILE flags. */
export const WriteFileFlags = { MKDIRS: 0x1 } as const;

/** Which side sends each frame type (FILE_DATA and FILE_END go both ways). */
export const HOST_FRAMES: ReadonlySet<FrameTypeName> = new Set<FrameTypeName>(['HELLO', 'EXEC', 'STDIN', 'STDIN_EOF', 'KILL', 'WRITE_FILE', 'FILE_DATA', 'FILE_END', 'READ_FILE']);
export const AGENT_FRAMES: ReadonlySet<FrameTypeName> = new Set<FrameTypeName>([
  'HELLO_ACK',
  'STARTED',
  'STDOUT',
  'STDERR',
  'STDIN_ACK',
  'EXIT',
  'FILE_DATA',
  'FILE_END',
  'WRITE_DONE',
  'FILE_INFO',
  'ERROR',
]);

export type Frame =
  | { readonly type: 'HELLO'; readonly minVersion: number; readonly maxVersion: number; readonly client: string }
  | { readonly type: 'HELLO_ACK'; readonly version: number; readonly maxFrame: number; readonly stdinWindow: number; readonly agent: string }
  | { readonly type: 'EXEC'; readonly flags: number; readonly cwd: string; readonly argv: readonly string[]; readonly env: readonly string[] }
  | { readonly type: 'STDIN'; readonly data: Uint8Array }
  | { readonly type: 'STDIN_EOF' }
  | { readonly type: 'KILL'; readonly signal: number; readonly flags: number }
  | { readonly type: 'STARTED'; readonly pid: number }
  | { readonly type: 'STDOUT'; readonly data: Uint8Array }
  | { readonly type: 'STDERR'; readonly data: Uint8Array }
  | { readonly type: 'STDIN_ACK'; readonly bytes: number }
  | { readonly type: 'EXIT'; readonly kind: 'exited' | 'signaled'; readonly value: number; readonly coreDumped: boolean }
  | { readonly type: 'WRITE_FILE'; readonly mode: number; readonly flags: number; readonly path: string }
  | { readonly type: 'FILE_DATA'; readonly data: Uint8Array }
  | { readonly type: 'FILE_END' }
  | { readonly type: 'WRITE_DONE'; readonly bytes: number }
  | { readonly type: 'READ_FILE'; readonly maxBytes: number; readonly path: string }
  | { readonly type: 'FILE_INFO'; readonly mode: number; readonly size: number }
  | { readonly type: 'ERROR'; readonly errno: number; readonly code: string; readonly op: string; readonly message: string };

export type FrameOf<T extends FrameTypeName> = Extract<Frame, { type: T }>;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8');

// ---- encoding ----------------------------------------------------------------------------------------

class Writer {
  private readonly parts: (Uint8Array | number[])[] = [];
  length = 0;

  u8(value: number): this {
    this.parts.push([value & 0xff]);
    this.length += 1;
    return this;
  }

  u32(value: number, what: string): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${what} must be an integer in 0..2^32-1, got ${value}`);
    this.parts.push([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
    this.length += 4;
    return this;
  }

  u64(value: number, what: string): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${value}`);
    this.u32(Math.floor(value / 0x100000000), what);
    return this.u32(value >>> 0, what);
  }

  string(value: string): this {
    const bytes = utf8.encode(value);
    this.u32(bytes.length, 'a string length');
    return this.bytes(bytes);
  }

  bytes(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  frame(type: number): Uint8Array {
    const length = 1 + this.length;
    if (length > MAX_FRAME_LENGTH) throw new RangeError(`a ${TYPE_NAMES.get(type) ?? type} frame of ${length} bytes exceeds the limit of ${MAX_FRAME_LENGTH}`);
    const out = new Uint8Array(4 + length);
    new DataView(out.buffer).setUint32(0, length);
    out[4] = type;
    let offset = FRAME_HEADER_SIZE;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

function flagBits(flags: number, allowed: number, what: string): number {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff || (flags & ~allowed) !== 0) throw new RangeError(`${what} flags 0x${flags.toString(16)} has unknown bits`);
  return flags;
}

/** The bytes of one frame (length, type, payload). Throws RangeError for values the layout cannot carry. */
export function encodeFrame(frame: Frame): Uint8Array {
  const w = new Writer();
  switch (frame.type) {
    case 'HELLO':
      w.u32(frame.minVersion, 'minVersion').u32(frame.maxVersion, 'maxVersion').string(frame.client);
      break;
    case 'HELLO_ACK':
      w.u32(frame.version, 'version').u32(frame.maxFrame, 'maxFrame').u32(frame.stdinWindow, 'stdinWindow').string(frame.agent);
      break;
    case 'EXEC':
      if (frame.argv.length === 0) throw new RangeError('EXEC needs at least one argument (the program)');
      w.u32(flagBits(frame.flags, ExecFlags.STDIN | ExecFlags.REPLACE_ENV, 'EXEC'), 'flags').string(frame.cwd).u32(frame.argv.length, 'argc');
      for (const arg of frame.argv) w.string(arg);
      w.u32(frame.env.length, 'envc');
      for (const entry of frame.env) w.string(entry);
      break;
    case 'STDIN':
    case 'STDOUT':
    case 'STDERR':
    case 'FILE_DATA':
      w.bytes(frame.data);
      break;
    case 'STDIN_EOF':
    case 'FILE_END':
      break;
    case 'KILL':
      if (!Number.isInteger(frame.signal) || frame.signal < 1 || frame.signal > 64) throw new RangeError(`KILL signal must be in 1..64, got ${frame.signal}`);
      w.u32(frame.signal, 'signal').u32(flagBits(frame.flags, KillFlags.GROUP, 'KILL'), 'flags');
      break;
    case 'STARTED':
      w.u32(frame.pid, 'pid');
      break;
    case 'STDIN_ACK':
      w.u32(frame.bytes, 'bytes');
      break;
    case 'EXIT':
      w.u8(frame.kind === 'signaled' ? 1 : 0)
        .u8(frame.coreDumped ? 1 : 0)
        .u32(frame.value, 'value');
      break;
    case 'WRITE_FILE':
      if (!Number.isInteger(frame.mode) || frame.mode < 0 || frame.mode > 0o7777) throw new RangeError(`mode must be in 0..0o7777, got ${frame.mode}`);
      w.u32(frame.mode, 'mode').u32(flagBits(frame.flags, WriteFileFlags.MKDIRS, 'WRITE_FILE'), 'flags').string(frame.path);
      break;
    case 'WRITE_DONE':
      w.u64(frame.bytes, 'bytes');
      break;
    case 'READ_FILE':
      w.u64(frame.maxBytes, 'maxBytes').string(frame.path);
      break;
    case 'FILE_INFO':
      w.u32(frame.mode, 'mode').u64(frame.size, 'size');
      break;
    case 'ERROR':
      w.u32(frame.errno, 'errno').string(frame.code).string(frame.op).string(frame.message);
      break;
    default:
      throw new RangeError(`unknown frame type ${(frame as { type: unknown }).type}`);
  }
  return w.frame(FrameType[frame.type]);
}

// ---- decoding ----------------------------------------------------------------------------------------

function malformed(message: string): AgentError {
  return new AgentError('protocol', message);
}

class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number, field: string): void {
    if (this.bytes.length - this.offset < n) throw malformed(`${this.what}: payload of ${this.bytes.length} bytes ends inside ${field}`);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.offset++];
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  u64(field: string): number {
    const hi = this.u32(field);
    const lo = this.u32(field);
    if (hi > 0x1fffff) throw malformed(`${this.what}: ${field} is beyond 2^53`);
    return hi * 0x100000000 + lo;
  }

  string(field: string): string {
    const n = this.u32(`${field}'s length`);
    this.need(n, field);
    const s = fromUtf8.decode(this.bytes.subarray(this.offset, this.offset + n));
    this.offset += n;
    return s;
  }

  rest(): Uint8Array {
    // A copy, as a plain Uint8Array (a Node Buffer's slice() would be a view).
    const out = new Uint8Array(this.bytes.subarray(this.offset));
    this.offset = this.bytes.length;
    return out;
  }

  done(): void {
    if (this.offset !== this.bytes.length) throw malformed(`${this.what}: ${this.bytes.length - this.offset} bytes after the last field`);
  }
}

/** Decodes one frame's type and payload. Throws AgentError (`protocol`) for an unknown type or a malformed payload. */
export function decodeFrame(type: number, payload: Uint8Array): Frame {
  const name = TYPE_NAMES.get(type);
  if (name === undefined) throw malformed(`unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
  const r = new Reader(payload, name);
  let frame: Frame;
  switch (name) {
    case 'HELLO':
      frame = { type: name, minVersion: r.u32('minVersion'), maxVersion: r.u32('maxVersion'), client: r.string('client') };
      break;
    case 'HELLO_ACK':
      frame = { type: name, version: r.u32('version'), maxFrame: r.u32('maxFrame'), stdinWindow: r.u32('stdinWindow'), agent: r.string('agent') };
      break;
    case 'EXEC': {
      const flags = r.u32('flags');
      const cwd = r.string('cwd');
      const argc = r.u32('argc');
      if (argc > payload.length / 4) throw malformed(`EXEC: ${argc} arguments do not fit the payload`);
      const argv: string[] = [];
      for (let i = 0; i < argc; i++) argv.push(r.string(`argv[${i}]`));
      const envc = r.u32('envc');
      if (envc > payload.length / 4) throw malformed(`EXEC: ${envc} environment entries do not fit the payload`);
      const env: string[] = [];
      for (let i = 0; i < envc; i++) env.push(r.string(`env[${i}]`));
      frame = { type: name, flags, cwd, argv, env };
      break;
    }
    case 'STDIN':
    case 'STDOUT':
    case 'STDERR':
    case 'FILE_DATA':
      frame = { type: name, data: r.rest() };
      break;
    case 'STDIN_EOF':
    case 'FILE_END':
      frame = { type: name };
      break;
    case 'KILL':
      frame = { type: name, signal: r.u32('signal'), flags: r.u32('flags') };
      break;
    case 'STARTED':
      frame = { type: name, pid: r.u32('pid') };
      break;
    case 'STDIN_ACK':
      frame = { type: name, bytes: r.u32('bytes') };
      break;
    case 'EXIT': {
      const kind = r.u8('kind');
      const core = r.u8('core_dumped');
      if (kind > 1) throw malformed(`EXIT: kind ${kind} is neither 0 (exited) nor 1 (signaled)`);
      if (core > 1) throw malformed(`EXIT: core_dumped is ${core}`);
      const value = r.u32('value');
      if (kind === 0 && value > 255) throw malformed(`EXIT: exit status ${value} is above 255`);
      if (kind === 1 && (value < 1 || value > 64)) throw malformed(`EXIT: signal ${value} is outside 1..64`);
      frame = { type: name, kind: kind === 1 ? 'signaled' : 'exited', coreDumped: core === 1, value };
      break;
    }
    case 'WRITE_FILE':
      frame = { type: name, mode: r.u32('mode'), flags: r.u32('flags'), path: r.string('path') };
      break;
    case 'WRITE_DONE':
      frame = { type: name, bytes: r.u64('bytes') };
      break;
    case 'READ_FILE':
      frame = { type: name, maxBytes: r.u64('maxBytes'), path: r.string('path') };
      break;
    case 'FILE_INFO':
      frame = { type: name, mode: r.u32('mode'), size: r.u64('size') };
      break;
    case 'ERROR':
      frame = { type: name, errno: r.u32('errno'), code: r.string('code'), op: r.string('op'), message: r.string('message') };
      break;
  }
  r.done();
  return frame;
}

/**
 * Incremental decoder over a byte stream cut anywhere: `push(chunk)` returns the frames completed by it.
 * Holds at most one incomplete frame (≤ 4 + `maxFrameLength` bytes). A length outside 1..maxFrameLength,
 * an unknown type or a malformed payload throws AgentError (`protocol`), and every later `push` throws
 * too: the stream cannot be resynchronized, the connection has to go.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** The whole size (4 + length) of the frame at the front, once its length is known. */
  private need = -1;
  private failure: AgentError | undefined;

  constructor(private readonly maxFrameLength = MAX_FRAME_LENGTH) {}

  /** Bytes held of a frame not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.failure) throw this.failure;
    const frames: Frame[] = [];
    if (chunk.length === 0) return frames;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      for (;;) {
        if (this.need < 0) {
          if (this.buffered < 4) break;
          const header = this.peek(4);
          const length = ((header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3]) >>> 0;
          if (length === 0 || length > this.maxFrameLength) throw malformed(`frame length ${length} is outside 1..${this.maxFrameLength}`);
          this.need = 4 + length;
        }
        if (this.buffered < this.need) break;
        const bytes = this.take(this.need);
        this.need = -1;
        frames.push(decodeFrame(bytes[4], bytes.subarray(FRAME_HEADER_SIZE)));
      }
    } catch (error) {
      this.failure = error instanceof AgentError ? error : malformed(String(error));
      this.chunks = [];
      this.buffered = 0;
      throw this.failure;
    }
    return frames;
  }

  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const out = new Uint8Array(n);
    let filled = 0;
    for (const c of this.chunks) {
      const part = c.subarray(0, n - filled);
      out.set(part, filled);
      filled += part.length;
      if (filled === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const part = c.subarray(0, n - filled);
      out.set(part, filled);
      filled += part.length;
      if (part.length === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(part.length);
    }
    return out;
  }
}

/** The name of a frame type byte, for messages. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}
