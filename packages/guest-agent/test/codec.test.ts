// The frame codec (guest/agent/PROTOCOL.md): every frame type round trip, the byte layout of the
// document's example, the length bounds, frames cut anywhere, and garbage.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AGENT_FRAMES,
  AgentError,
  decodeFrame,
  encodeFrame,
  FrameDecoder,
  FrameType,
  HOST_FRAMES,
  MAX_FRAME_LENGTH,
  signalName,
  signalNumber,
  type Frame,
  type FrameTypeName,
} from '../src/index.js';

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** One frame of every type, with fields that exercise the layout (multi-byte UTF-8, u64 above 2^32). */
const SAMPLES: Frame[] = [
  { type: 'HELLO', minVersion: 1, maxVersion: 3, client: '@hype/guest-agent' },
  { type: 'HELLO_ACK', version: 1, maxFrame: MAX_FRAME_LENGTH, stdinWindow: 262144, agent: 'hype-agent (protocol 1; Linux 6.1.0 x86_64)' },
  { type: 'EXEC', flags: 3, cwd: '/tmp/ü', argv: ['sh', '-c', 'echo "$X" ✓', ''], env: ['X=1', 'EMPTY='] },
  { type: 'STDIN', data: bytes(0, 1, 2, 255) },
  { type: 'STDIN_EOF' },
  { type: 'KILL', signal: 15, flags: 1 },
  { type: 'STARTED', pid: 4_000_000 },
  { type: 'STDOUT', data: text('out\n') },
  { type: 'STDERR', data: new Uint8Array(0) },
  { type: 'STDIN_ACK', bytes: 65536 },
  { type: 'EXIT', kind: 'exited', value: 255, coreDumped: false },
  { type: 'WRITE_FILE', mode: 0o4755, flags: 1, path: '/etc/hype/x' },
  { type: 'FILE_DATA', data: bytes(9, 8, 7) },
  { type: 'FILE_END' },
  { type: 'WRITE_DONE', bytes: 2 ** 40 + 5 },
  { type: 'READ_FILE', maxBytes: Number.MAX_SAFE_INTEGER, path: 'relative/path' },
  { type: 'FILE_INFO', mode: 0o100644, size: 2 ** 33 },
  { type: 'ERROR', errno: 2, code: 'ENOENT', op: 'exec', message: 'cannot execute nosuch: No such file or directory' },
];

describe('frame codec', () => {
  it('has a sample of every type, and every type belongs to a side', () => {
    expect(new Set(SAMPLES.map((f) => f.type))).toEqual(new Set(Object.keys(FrameType)));
    for (const name of Object.keys(FrameType) as FrameTypeName[]) expect(HOST_FRAMES.has(name) || AGENT_FRAMES.has(name), name).toBe(true);
    expect([...HOST_FRAMES].filter((t) => AGENT_FRAMES.has(t)).sort()).toEqual(['FILE_DATA', 'FILE_END']);
  });

  it.each(SAMPLES.map((f) => [f.type, f] as const))('round-trips %s', (_, frame) => {
    const encoded = encodeFrame(frame);
    const length = new DataView(encoded.buffer).getUint32(0);
    expect(length).toBe(encoded.length - 4);
    expect(encoded[4]).toBe(FrameType[frame.type]);
    expect(decodeFrame(encoded[4], encoded.subarray(5))).toEqual(frame);
    expect(new FrameDecoder().push(encoded)).toEqual([frame]);
  });

  it('round-trips a signaled EXIT with a core dump', () => {
    const frame: Frame = { type: 'EXIT', kind: 'signaled', value: 11, coreDumped: true };
    expect(hex(encodeFrame(frame))).toBe('0000000718' + '01' + '01' + '0000000b');
    expect(new FrameDecoder().push(encodeFrame(frame))).toEqual([frame]);
  });

  it("writes the bytes of PROTOCOL.md's example", () => {
    expect(hex(encodeFrame({ type: 'HELLO', minVersion: 1, maxVersion: 1, client: '@hype/guest-agent' }))).toBe(
      '0000001e01' + '00000001' + '00000001' + '00000011' + hex(text('@hype/guest-agent')),
    );
    expect(hex(encodeFrame({ type: 'EXEC', flags: 0, cwd: '', argv: ['sh', '-c', 'echo hi'], env: [] }))).toBe(
      '0000002810' + '00000000' + '00000000' + '00000003' + '00000002' + hex(text('sh')) + '00000002' + hex(text('-c')) + '00000007' + hex(text('echo hi')) + '00000000',
    );
    expect(hex(encodeFrame({ type: 'STARTED', pid: 1234 }))).toBe('0000000514000004d2');
    expect(hex(encodeFrame({ type: 'STDOUT', data: text('hi\n') }))).toBe('0000000415' + hex(text('hi\n')));
    expect(hex(encodeFrame({ type: 'EXIT', kind: 'exited', value: 0, coreDumped: false }))).toBe('00000007180000' + '00000000');
    expect(hex(encodeFrame({ type: 'ERROR', errno: 71, code: 'EPROTO', op: 'protocol', message: 'x' }))).toBe(
      '000000207f' + '00000047' + '00000006' + hex(text('EPROTO')) + '00000008' + hex(text('protocol')) + '00000001' + hex(text('x')),
    );
  });

  it('takes a frame of exactly the maximum length and refuses to encode a larger one', () => {
    const max = encodeFrame({ type: 'FILE_DATA', data: new Uint8Array(MAX_FRAME_LENGTH - 1) });
    expect(max.length).toBe(4 + MAX_FRAME_LENGTH);
    const [frame] = new FrameDecoder().push(max);
    expect(frame.type === 'FILE_DATA' && frame.data.length).toBe(MAX_FRAME_LENGTH - 1);
    expect(() => encodeFrame({ type: 'FILE_DATA', data: new Uint8Array(MAX_FRAME_LENGTH) })).toThrow(RangeError);
    expect(() => encodeFrame({ type: 'EXEC', flags: 0, cwd: '', argv: ['x'.repeat(MAX_FRAME_LENGTH)], env: [] })).toThrow(/exceeds the limit/);
  });

  it('refuses values the layout cannot carry', () => {
    expect(() => encodeFrame({ type: 'EXEC', flags: 0, cwd: '', argv: [], env: [] })).toThrow(/at least one argument/);
    expect(() => encodeFrame({ type: 'EXEC', flags: 4, cwd: '', argv: ['x'], env: [] })).toThrow(/unknown bits/);
    expect(() => encodeFrame({ type: 'KILL', signal: 0, flags: 0 })).toThrow(/1\.\.64/);
    expect(() => encodeFrame({ type: 'KILL', signal: 9, flags: 2 })).toThrow(/unknown bits/);
    expect(() => encodeFrame({ type: 'WRITE_FILE', mode: 0o10000, flags: 0, path: 'x' })).toThrow(/mode/);
    expect(() => encodeFrame({ type: 'READ_FILE', maxBytes: -1, path: 'x' })).toThrow(/non-negative/);
    expect(() => encodeFrame({ type: 'STARTED', pid: 2 ** 32 })).toThrow(/0\.\.2\^32-1/);
  });
});

describe('FrameDecoder', () => {
  const stream = () => {
    const frames = SAMPLES;
    const parts = frames.map(encodeFrame);
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      all.set(p, offset);
      offset += p.length;
    }
    return { frames, all };
  };

  it('decodes a stream fed one byte at a time, holding only the incomplete frame', () => {
    const { frames, all } = stream();
    const decoder = new FrameDecoder();
    const out: Frame[] = [];
    for (let i = 0; i < all.length; i++) {
      out.push(...decoder.push(all.subarray(i, i + 1)));
      expect(decoder.pendingBytes).toBeLessThanOrEqual(4 + MAX_FRAME_LENGTH);
    }
    expect(out).toEqual(frames);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('decodes the same frames however the stream is cut (property)', () => {
    const { frames, all } = stream();
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: all.length - 1 }), { maxLength: 40 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), all.length];
        const decoder = new FrameDecoder();
        const out: Frame[] = [];
        for (let i = 1; i < points.length; i++) out.push(...decoder.push(all.subarray(points[i - 1], points[i])));
        expect(out).toEqual(frames);
      }),
      { numRuns: Number(process.env.HYPE_FUZZ_RUNS ?? 200) },
    );
  });

  it('does not alias the input: data payloads are copies', () => {
    const encoded = encodeFrame({ type: 'STDOUT', data: bytes(1, 2, 3) });
    const [frame] = new FrameDecoder().push(encoded);
    encoded.fill(0);
    expect(frame).toEqual({ type: 'STDOUT', data: bytes(1, 2, 3) });
  });

  it('refuses a length of 0 or above 1 MiB from the header alone, and stays failed', () => {
    for (const header of [bytes(0, 0, 0, 0), bytes(0, 0x10, 0, 1), bytes(0xff, 0xff, 0xff, 0xff)]) {
      const decoder = new FrameDecoder();
      expect(() => decoder.push(header)).toThrow(AgentError);
      expect(() => decoder.push(encodeFrame({ type: 'STDIN_EOF' }))).toThrow(/frame length/);
    }
    const decoder = new FrameDecoder(16);
    expect(() => decoder.push(encodeFrame({ type: 'STDOUT', data: new Uint8Array(16) }).subarray(0, 4))).toThrow(/outside 1\.\.16/);
  });

  it('refuses unknown types, malformed payloads and trailing bytes', () => {
    const frame = (type: number, ...payload: number[]) => {
      const out = new Uint8Array(5 + payload.length);
      new DataView(out.buffer).setUint32(0, 1 + payload.length);
      out[4] = type;
      out.set(payload, 5);
      return out;
    };
    const cases: [Uint8Array, RegExp][] = [
      [frame(0x00), /unknown frame type 0x00/],
      [frame(0x42, 1, 2), /unknown frame type 0x42/],
      [frame(FrameType.STARTED, 0, 0, 1), /ends inside pid/],
      [frame(FrameType.STARTED, 0, 0, 0, 1, 9), /1 bytes after the last field/],
      [frame(FrameType.STDIN_EOF, 0), /1 bytes after/],
      [frame(FrameType.HELLO, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 65), /ends inside client/],
      [frame(FrameType.EXIT, 2, 0, 0, 0, 0, 0), /kind 2/],
      [frame(FrameType.EXIT, 0, 0, 0, 0, 1, 0), /exit status 256/],
      [frame(FrameType.EXIT, 1, 0, 0, 0, 0, 0), /signal 0/],
      [frame(FrameType.EXIT, 0, 2, 0, 0, 0, 0), /core_dumped is 2/],
      [frame(FrameType.WRITE_DONE, 0, 0x20, 0, 0, 0, 0, 0, 0), /beyond 2\^53/],
      [frame(FrameType.EXEC, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff), /do not fit/],
    ];
    for (const [input, message] of cases) {
      const decoder = new FrameDecoder();
      let error: unknown;
      try {
        decoder.push(input);
      } catch (e) {
        error = e;
      }
      expect(error, `${hex(input)}`).toBeInstanceOf(AgentError);
      expect((error as AgentError).kind).toBe('protocol');
      expect((error as AgentError).message).toMatch(message);
    }
  });

  it('throws only AgentError(protocol) on random bytes, and holds at most one frame (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const decoder = new FrameDecoder(4096);
        for (const chunk of chunks) {
          try {
            decoder.push(chunk);
          } catch (error) {
            expect(error).toBeInstanceOf(AgentError);
            expect((error as AgentError).kind).toBe('protocol');
            return;
          }
          expect(decoder.pendingBytes).toBeLessThanOrEqual(4 + 4096);
        }
      }),
      { numRuns: Number(process.env.HYPE_FUZZ_RUNS ?? 300) },
    );
  });
});

describe('signals', () => {
  it('names Linux x86-64 signals and reads names back', () => {
    expect(signalName(15)).toBe('SIGTERM');
    expect(signalName(9)).toBe('SIGKILL');
    expect(signalName(34)).toBe('SIGRTMIN+0');
    expect(signalName(64)).toBe('SIGRTMIN+30');
    expect(signalNumber('SIGTERM')).toBe(15);
    expect(signalNumber('term')).toBe(15);
    expect(signalNumber('SIGIOT')).toBe(6);
    expect(signalNumber('SIGRTMIN+2')).toBe(36);
    expect(signalNumber('SIGRTMAX')).toBe(64);
    expect(signalNumber(10)).toBe(10);
    for (let n = 1; n <= 64; n++) expect(signalNumber(signalName(n))).toBe(n);
    expect(() => signalNumber('SIGNOPE')).toThrow(TypeError);
    expect(() => signalNumber(65)).toThrow(TypeError);
    expect(() => signalNumber('SIGRTMIN+31')).toThrow(TypeError);
  });
});
