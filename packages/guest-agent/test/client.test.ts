// AgentClient against a scripted agent over an in-memory stream: the error kinds, the stdin window,
// pausing unread output, cutting writes, and that a vsock connection is an AgentStream.
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { VsockConnection, VsockDevice } from '@hype/virtio-vsock';
import { AgentClient, encodeFrame, FrameDecoder, type AgentConnector, type AgentStream, type Frame } from '../src/index.js';
import { rejection } from './helpers.js';

type Listener<T extends unknown[]> = (...args: T) => void;

/** The client's end of a connection; the test plays the agent through `agent`. */
class FakeStream implements AgentStream {
  readonly frames: Frame[] = [];
  readonly writes: number[] = [];
  private readonly decoder = new FrameDecoder();
  private readonly data = new Set<Listener<[Uint8Array]>>();
  private readonly ends = new Set<Listener<[]>>();
  private readonly drains = new Set<Listener<[]>>();
  private readonly closes = new Set<Listener<[Error?]>>();
  /** write() returns false once this many bytes were written since the last drain. */
  writeLimit = Infinity;
  private sinceDrain = 0;
  pauses = 0;
  resumes = 0;
  ended = false;
  destroyed = false;

  constructor(private readonly agent: (frame: Frame, stream: FakeStream) => void = () => {}) {}

  write(bytes: Uint8Array): boolean {
    this.writes.push(bytes.length);
    this.sinceDrain += bytes.length;
    for (const frame of this.decoder.push(bytes)) {
      this.frames.push(frame);
      queueMicrotask(() => this.agent(frame, this));
    }
    return this.sinceDrain < this.writeLimit;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  pause(): void {
    this.pauses++;
  }
  resume(): void {
    this.resumes++;
  }
  onData(cb: Listener<[Uint8Array]>) {
    this.data.add(cb);
  }
  onEnd(cb: Listener<[]>) {
    this.ends.add(cb);
  }
  onDrain(cb: Listener<[]>) {
    this.drains.add(cb);
  }
  onClose(cb: Listener<[Error?]>) {
    this.closes.add(cb);
  }

  // ---- the agent's side ----
  send(...frames: Frame[]): void {
    for (const frame of frames) this.bytes(encodeFrame(frame));
  }
  bytes(bytes: Uint8Array): void {
    for (const cb of this.data) cb(bytes);
  }
  endFromAgent(): void {
    for (const cb of this.ends) cb();
  }
  closeFromAgent(error?: Error): void {
    for (const cb of this.closes) cb(error);
  }
  drain(): void {
    this.sinceDrain = 0;
    for (const cb of this.drains) cb();
  }
}

const ACK: Frame = { type: 'HELLO_ACK', version: 1, maxFrame: 1 << 20, stdinWindow: 256 * 1024, agent: 'fake' };
const connector = (stream: FakeStream): AgentConnector => () => Promise.resolve(stream);

describe('AgentClient error kinds', () => {
  it('no-agent: the connector rejects', async () => {
    const client = new AgentClient({ connect: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) });
    const error = await rejection(client.exec(['true']));
    expect(error.kind).toBe('no-agent');
    expect(error.message).toMatch(/cannot connect: connect ECONNREFUSED/);
    expect(await rejection(client.readFile('/x'))).toMatchObject({ kind: 'no-agent', code: 'ECONNREFUSED' });
    const throwing = new AgentClient({
      connect: () => {
        throw new Error('no vsock device');
      },
    });
    expect(await rejection(throwing.hello())).toMatchObject({ kind: 'no-agent' });
    expect(await rejection(throwing.spawn(['true']).exited)).toMatchObject({ kind: 'no-agent' });
  });

  it('timeout: no HELLO_ACK in time; the connection is dropped', async () => {
    const stream = new FakeStream();
    const client = new AgentClient({ connect: connector(stream), helloTimeoutMs: 30 });
    expect(await rejection(client.hello())).toMatchObject({ kind: 'timeout' });
    expect(stream.destroyed).toBe(true);
  });

  it('timeout: a request that runs too long', async () => {
    const stream = new FakeStream((frame, s) => frame.type === 'HELLO' && s.send(ACK));
    const client = new AgentClient({ connect: connector(stream) });
    const error = await rejection(client.readFile('/slow', { timeoutMs: 30 }));
    expect(error).toMatchObject({ kind: 'timeout' });
    expect(error.message).toMatch(/readFile \/slow timed out after 30 ms/);
  });

  it('connection-reset: the agent goes away before the final frame', async () => {
    const ended = new FakeStream((frame, s) => {
      if (frame.type === 'HELLO') s.send(ACK);
      if (frame.type === 'EXEC') {
        s.send({ type: 'STARTED', pid: 7 }, { type: 'STDOUT', data: new Uint8Array([65]) });
        s.endFromAgent();
      }
    });
    const error = await rejection(new AgentClient({ connect: connector(ended) }).exec(['x']));
    expect(error).toMatchObject({ kind: 'connection-reset' });
    expect(error.message).toMatch(/the agent closed the connection before the request finished/);
    expect(error.partial?.stdout).toEqual(new Uint8Array([65]));

    const reset = new FakeStream((frame, s) => frame.type === 'HELLO' && s.closeFromAgent(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })));
    expect(await rejection(new AgentClient({ connect: connector(reset) }).hello())).toMatchObject({ kind: 'connection-reset' });
  });

  it('protocol: garbage, frames out of order, acknowledgements of bytes never sent', async () => {
    const script = (answer: (s: FakeStream) => void) => new FakeStream((frame, s) => (frame.type === 'HELLO' ? s.send(ACK) : frame.type === 'EXEC' ? answer(s) : undefined));
    const cases: [(s: FakeStream) => void, RegExp][] = [
      [(s) => s.bytes(new Uint8Array([0, 0, 0, 0])), /frame length 0/],
      [(s) => s.bytes(new Uint8Array([0xff, 0xff, 0xff, 0xff])), /frame length 4294967295 is outside/],
      [(s) => s.send({ type: 'STDOUT', data: new Uint8Array(1) }), /STDOUT before STARTED/],
      [(s) => s.send({ type: 'EXIT', kind: 'exited', value: 0, coreDumped: false }), /EXIT before STARTED/],
      [(s) => s.send({ type: 'STARTED', pid: 1 }, { type: 'STARTED', pid: 1 }), /a second STARTED/],
      [(s) => s.send({ type: 'STARTED', pid: 1 }, { type: 'STDIN_ACK', bytes: 1 }), /STDIN_ACK of 1 bytes, but only 0 were sent/],
      [(s) => s.send({ type: 'EXEC', flags: 0, cwd: '', argv: ['x'], env: [] }), /EXEC, a frame only the host sends/],
      [(s) => s.send(ACK), /a second HELLO_ACK/],
      [(s) => s.send({ type: 'WRITE_DONE', bytes: 0 }), /WRITE_DONE is not part of EXEC/],
    ];
    for (const [answer, message] of cases) {
      const stream = script(answer);
      const error = await rejection(new AgentClient({ connect: connector(stream) }).exec(['x']));
      expect(error.kind, String(message)).toBe('protocol');
      expect(error.message).toMatch(message);
      expect(stream.destroyed).toBe(true);
    }
    const wrongVersion = new FakeStream((frame, s) => frame.type === 'HELLO' && s.send({ ...ACK, version: 2 } as Frame));
    expect(await rejection(new AgentClient({ connect: connector(wrongVersion) }).hello())).toMatchObject({ kind: 'protocol' });
    const agentProtocolError = new FakeStream((frame, s) => frame.type === 'HELLO' && s.send({ type: 'ERROR', errno: 71, code: 'EPROTO', op: 'protocol', message: 'HELLO is malformed' }));
    expect(await rejection(new AgentClient({ connect: connector(agentProtocolError) }).hello())).toMatchObject({ kind: 'protocol', code: 'EPROTO', errno: 71 });
  });

  it('remote: an ERROR frame, with errno, code and op; the connection closes gracefully', async () => {
    const stream = new FakeStream((frame, s) => {
      if (frame.type === 'HELLO') s.send(ACK);
      if (frame.type === 'READ_FILE') s.send({ type: 'ERROR', errno: 13, code: 'EACCES', op: 'open', message: 'cannot open /root/x: Permission denied' });
    });
    const error = await rejection(new AgentClient({ connect: connector(stream) }).readFile('/root/x'));
    expect(error).toMatchObject({ kind: 'remote', errno: 13, code: 'EACCES', op: 'open' });
    expect(error.message).toBe('hype-agent: cannot open /root/x: Permission denied (EACCES)');
    expect(stream.ended).toBe(true);
    expect(stream.destroyed).toBe(false);
  });
});

describe('AgentClient.ready', () => {
  it('retries while the agent is not up yet (refused, then reset), then resolves with HELLO_ACK', async () => {
    let attempts = 0;
    const client = new AgentClient({
      connect: () => {
        attempts++;
        if (attempts === 1) return Promise.reject(Object.assign(new Error('guest driver not started'), { code: 'ENOTCONN' }));
        if (attempts === 2) return Promise.resolve(new FakeStream((frame, s) => frame.type === 'HELLO' && s.closeFromAgent(new Error('reset'))));
        return Promise.resolve(new FakeStream((frame, s) => frame.type === 'HELLO' && s.send(ACK)));
      },
    });
    expect(await client.ready({ timeoutMs: 5000 })).toMatchObject({ version: 1, agent: 'fake' });
    expect(attempts).toBe(3);
  });

  it('waits out an agent too slow to answer HELLO in time (a loaded guest)', async () => {
    let attempts = 0;
    const client = new AgentClient({
      helloTimeoutMs: 30,
      connect: () => {
        attempts++;
        return Promise.resolve(new FakeStream((frame, s) => frame.type === 'HELLO' && attempts > 1 && s.send(ACK)));
      },
    });
    expect(await client.ready({ timeoutMs: 5000 })).toMatchObject({ agent: 'fake' });
    expect(attempts).toBe(2);
  });

  it('times out with the last attempt as the cause', async () => {
    const client = new AgentClient({ connect: () => Promise.reject(new Error('connection refused by the guest')) });
    const error = await rejection(client.ready({ timeoutMs: 120 }));
    expect(error.kind).toBe('timeout');
    expect(error.message).toMatch(/did not answer within 120 ms: hype-agent: cannot connect: connection refused by the guest/);
    expect(error.cause).toMatchObject({ kind: 'no-agent' });
  });

  it('stops at once when its signal aborts (the VM ended)', async () => {
    const client = new AgentClient({ connect: () => Promise.reject(new Error('refused')) });
    const controller = new AbortController();
    const waiting = rejection(client.ready({ timeoutMs: 60_000, signal: controller.signal }));
    setTimeout(() => controller.abort(new Error('the VM powered off')), 50);
    const started = Date.now();
    const error = await waiting;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error).toMatchObject({ kind: 'no-agent' });
    expect(error.message).toMatch(/not reachable: the VM powered off/);
  });

  it('does not retry a protocol mismatch', async () => {
    let attempts = 0;
    const client = new AgentClient({
      connect: () => {
        attempts++;
        return Promise.resolve(new FakeStream((frame, s) => frame.type === 'HELLO' && s.bytes(new Uint8Array(12).fill(0xff))));
      },
    });
    expect(await rejection(client.ready({ timeoutMs: 5000 }))).toMatchObject({ kind: 'protocol' });
    expect(attempts).toBe(1);
  });
});

describe('AgentClient flow control', () => {
  it('sends HELLO and the request together, and stdin within the window as acknowledged', async () => {
    const window = 1000;
    let unacked = 0;
    let maxUnacked = 0;
    const received: number[] = [];
    const stream = new FakeStream((frame, s) => {
      if (frame.type === 'HELLO') s.send({ ...ACK, stdinWindow: window });
      if (frame.type === 'EXEC') s.send({ type: 'STARTED', pid: 1 });
      if (frame.type === 'STDIN') {
        unacked += frame.data.length;
        maxUnacked = Math.max(maxUnacked, unacked);
        received.push(frame.data.length);
        // Acknowledge later, as a command reading slowly.
        setTimeout(() => {
          unacked -= frame.data.length;
          s.send({ type: 'STDIN_ACK', bytes: frame.data.length });
        }, 1);
      }
      if (frame.type === 'STDIN_EOF') s.send({ type: 'EXIT', kind: 'exited', value: 0, coreDumped: false });
    });
    const client = new AgentClient({ connect: connector(stream) });
    const result = await client.exec(['cat'], { stdin: new Uint8Array(10_000) });
    expect(result.exitCode).toBe(0);
    expect(stream.frames.slice(0, 2).map((f) => f.type)).toEqual(['HELLO', 'EXEC']);
    expect(received.reduce((a, b) => a + b, 0)).toBe(10_000);
    expect(maxUnacked).toBeLessThanOrEqual(window);
    expect(stream.frames.at(-1)?.type).toBe('STDIN_EOF');
  });

  it('pauses the stream while nobody reads the output, and resumes when it is read', async () => {
    let agent: FakeStream | undefined;
    const stream = new FakeStream((frame, s) => {
      agent = s;
      if (frame.type === 'HELLO') s.send(ACK);
      if (frame.type === 'EXEC') s.send({ type: 'STARTED', pid: 1 });
    });
    const child = new AgentClient({ connect: connector(stream) }).spawn(['yes'], { stdin: 'ignore', readableHighWaterMark: 1000 });
    await child.started;
    agent!.send({ type: 'STDOUT', data: new Uint8Array(600) });
    expect(stream.pauses).toBe(0);
    agent!.send({ type: 'STDERR', data: new Uint8Array(500) });
    expect(stream.pauses).toBe(1);
    expect(child.stdout.readableLength + child.stderr.readableLength).toBe(1100);
    const seen: number[] = [];
    child.stdout.onData((b) => seen.push(b.length));
    expect(seen).toEqual([600]);
    expect(stream.resumes).toBe(1); // 500 held: at half the mark
    agent!.send({ type: 'EXIT', kind: 'signaled', value: 9, coreDumped: false });
    expect(await child.exited).toEqual({ exitCode: null, signal: 'SIGKILL', coreDumped: false });
    const rest: Uint8Array[] = [];
    for await (const chunk of child.stderr) rest.push(chunk);
    expect(rest.map((c) => c.length)).toEqual([500]);
  });

  it('cuts writes into 64 KiB pieces and waits for drain', async () => {
    const stream = new FakeStream((frame, s) => {
      if (frame.type === 'HELLO') s.send(ACK);
      if (frame.type === 'FILE_END') s.send({ type: 'WRITE_DONE', bytes: 1_000_000 });
    });
    stream.writeLimit = 100_000;
    const client = new AgentClient({ connect: connector(stream) });
    const done = client.writeFile('/f', new Uint8Array(1_000_000));
    for (let i = 0; i < 50 && stream.frames.at(-1)?.type !== 'FILE_END'; i++) {
      await new Promise((r) => setTimeout(r, 1));
      stream.drain();
    }
    await done;
    expect(Math.max(...stream.writes)).toBeLessThanOrEqual(64 * 1024 + 5);
    const data = stream.frames.filter((f): f is Extract<Frame, { type: 'FILE_DATA' }> => f.type === 'FILE_DATA');
    expect(data.reduce((n, f) => n + f.data.length, 0)).toBe(1_000_000);
  });

  it('stops sending a file once the agent reports an error', async () => {
    const stream = new FakeStream((frame, s) => {
      if (frame.type === 'HELLO') s.send(ACK);
      if (frame.type === 'FILE_DATA') s.send({ type: 'ERROR', errno: 28, code: 'ENOSPC', op: 'write', message: 'cannot write /f: No space left on device' });
    });
    stream.writeLimit = 64 * 1024;
    const done = new AgentClient({ connect: connector(stream) }).writeFile('/f', new Uint8Array(10_000_000));
    setTimeout(() => stream.drain(), 5);
    expect(await rejection(done)).toMatchObject({ kind: 'remote', code: 'ENOSPC' });
    expect(stream.frames.filter((f) => f.type === 'FILE_DATA').length).toBeLessThan(5);
  });
});

describe('AgentStream', () => {
  it('is what @hype/virtio-vsock gives: a VM can pass () => vsock.connect(1024)', () => {
    expectTypeOf<VsockConnection>().toMatchTypeOf<AgentStream>();
    const fromVm = (vsock: VsockDevice): AgentConnector => () => vsock.connect(1024);
    expect(typeof fromVm).toBe('function');
  });
});
