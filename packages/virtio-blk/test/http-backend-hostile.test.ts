// The HTTP range backend against a hostile or broken server (node:http on 127.0.0.1): an answer larger
// than the range asked for is cut off with bounded host memory, and a body cut short or stalled mid-way
// fails with the backend's own `http disk <url>: ...` message.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpBackend } from '../src/index.js';

const SIZE = 1 << 20;
const HUGE = 256 << 20;
const MiB = 1 << 20;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * The largest growth of RSS and of ArrayBuffer backing stores (where a buffered body lives) while `run`
 * is in progress, sampled every few milliseconds against a baseline taken after a full GC.
 */
async function peakGrowth(run: () => Promise<unknown>): Promise<{ rss: number; arrayBuffers: number }> {
  gc();
  const base = process.memoryUsage();
  const peak = { rss: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss - base.rss);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers - base.arrayBuffers);
  };
  const timer = setInterval(sample, 2);
  try {
    await run();
  } finally {
    clearInterval(timer);
    sample();
  }
  return peak;
}

type Behaviour = (req: IncomingMessage, res: ServerResponse, range: { start: number; end: number }) => void;

const behaviours = new Map<string, Behaviour>();
/** Bytes of body each path's last answer got onto the wire before the client hung up (or it ended). */
const sent = new Map<string, number>();
const stalled: ServerResponse[] = [];
let server: Server;
let base = '';

/** A correct 206 for the range (bytes are all 0x5a). */
const honest: Behaviour = (_req, res, { start, end }) => {
  const last = Math.min(end, SIZE - 1);
  res.writeHead(206, { 'Content-Range': `bytes ${start}-${last}/${SIZE}`, 'Content-Length': String(last - start + 1) });
  res.end(Buffer.alloc(last - start + 1, 0x5a));
};

/** Writes `total` bytes in 64 KiB chunks, honouring backpressure and stopping when the client goes away. */
function stream(path: string, res: ServerResponse, total: number, then: 'end' | 'destroy' | 'stall'): void {
  const chunk = Buffer.alloc(64 * 1024, 0xa5);
  let done = 0;
  sent.set(path, 0);
  res.flushHeaders();
  const pump = () => {
    while (done < total && !res.destroyed) {
      const n = Math.min(chunk.length, total - done);
      done += n;
      sent.set(path, done);
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    if (res.destroyed) return;
    if (then === 'end') res.end();
    else if (then === 'destroy') res.socket?.destroy();
    else stalled.push(res);
  };
  pump();
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '/';
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  const range = m ? { start: Number(m[1]), end: Number(m[2]) } : { start: 0, end: SIZE - 1 };
  const isProbe = range.start === 0 && range.end === 0;
  const behaviour = behaviours.get(`${path}${isProbe ? ' probe' : ''}`) ?? honest;
  behaviour(req, res, range);
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('HTTP backend: an answer larger than the range asked for', () => {
  it('a 206 for bytes=0-0 with a 256 MiB body (no Content-Length) is cut off with bounded memory', async () => {
    behaviours.set('/huge-probe.img probe', (_req, res) => {
      res.writeHead(206, { 'Content-Range': `bytes 0-0/${SIZE}` }); // chunked: nothing to check up front
      stream('/huge-probe.img', res, HUGE, 'end');
    });
    const growth = await peakGrowth(() =>
      expect(HttpBackend.open(`${base}/huge-probe.img`)).rejects.toThrow(
        /^http disk http:\/\/127\.0\.0\.1:\d+\/huge-probe\.img: GET bytes=0-0 \(size probe\): the body is longer than the 1 bytes asked for$/,
      ),
    );
    expect(growth.arrayBuffers).toBeLessThan(64 * MiB);
    expect(growth.rss).toBeLessThan(64 * MiB);
    // The client hung up early: the server never got near the end of the body.
    await new Promise((r) => setTimeout(r, 50));
    expect(sent.get('/huge-probe.img')).toBeLessThan(64 * MiB);
  });

  it('a Content-Length larger than the range is refused before any of the body is read', async () => {
    behaviours.set('/cl-probe.img probe', (_req, res) => {
      res.writeHead(206, { 'Content-Range': `bytes 0-0/${SIZE}`, 'Content-Length': String(HUGE) });
      stream('/cl-probe.img', res, HUGE, 'end');
    });
    await expect(HttpBackend.open(`${base}/cl-probe.img`)).rejects.toThrow(/cl-probe\.img: GET bytes=0-0 \(size probe\): Content-Length 268435456 for 1 bytes asked for$/);
  });

  it('a read answered with the right Content-Range but a 256 MiB body is cut off with bounded memory', async () => {
    const b = await HttpBackend.open(`${base}/huge-read.img`, { cacheBlocks: 0 });
    behaviours.set('/huge-read.img', (_req, res, { start, end }) => {
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${SIZE}` });
      stream('/huge-read.img', res, HUGE, 'end');
    });
    const growth = await peakGrowth(() =>
      expect(b.read(4096, [new Uint8Array(512)])).rejects.toThrow(/huge-read\.img: GET bytes=4096-4607: the body is longer than the 512 bytes asked for$/),
    );
    expect(growth.arrayBuffers).toBeLessThan(64 * MiB);
    expect(growth.rss).toBeLessThan(64 * MiB);
    await new Promise((r) => setTimeout(r, 50));
    expect(sent.get('/huge-read.img')).toBeLessThan(64 * MiB);
    // The failure is not cached: an honest answer afterwards is read normally.
    behaviours.delete('/huge-read.img');
    const v = new Uint8Array(512);
    await b.read(4096, [v]);
    expect(v.every((x) => x === 0x5a)).toBe(true);
  });
});

describe('HTTP backend: a body that does not arrive whole', () => {
  it('a connection cut mid-body is an http disk error, not a bare "terminated"', async () => {
    const b = await HttpBackend.open(`${base}/cut.img`, { cacheBlocks: 0 });
    behaviours.set('/cut.img', (_req, res, { start, end }) => {
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${SIZE}`, 'Content-Length': String(end - start + 1) });
      stream('/cut.img', res, (end - start + 1) / 2, 'destroy');
    });
    const err = (await b.read(0, [new Uint8Array(256 * 1024)]).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/^http disk http:\/\/127\.0\.0\.1:\d+\/cut\.img: GET bytes=0-262143: reading the body failed: /);
  });

  it('a body that ends early (chunked, no Content-Length) names how many bytes came', async () => {
    const b = await HttpBackend.open(`${base}/short.img`, { cacheBlocks: 0 });
    behaviours.set('/short.img', (_req, res, { start, end }) => {
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${SIZE}` });
      stream('/short.img', res, 1000, 'end');
    });
    await expect(b.read(0, [new Uint8Array(4096)])).rejects.toThrow(/short\.img: GET bytes=0-4095: returned 1000 bytes instead of 4096$/);
  });

  it('a server that stalls mid-body times out with an http disk message', async () => {
    const b = await HttpBackend.open(`${base}/stall.img`, { cacheBlocks: 0, timeoutMs: 300 });
    behaviours.set('/stall.img', (_req, res, { start, end }) => {
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${SIZE}`, 'Content-Length': String(end - start + 1) });
      stream('/stall.img', res, 100, 'stall');
    });
    const t0 = Date.now();
    await expect(b.read(0, [new Uint8Array(4096)])).rejects.toThrow(/^http disk http:\/\/127\.0\.0\.1:\d+\/stall\.img: GET bytes=0-4095: reading the body failed: timed out after 300 ms$/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('the size probe stalling mid-body times out the same way', async () => {
    behaviours.set('/stall-probe.img probe', (_req, res) => {
      res.writeHead(206, { 'Content-Range': `bytes 0-0/${SIZE}` });
      stream('/stall-probe.img', res, 0, 'stall');
    });
    await expect(HttpBackend.open(`${base}/stall-probe.img`, { timeoutMs: 300 })).rejects.toThrow(
      /stall-probe\.img: GET bytes=0-0 \(size probe\): reading the body failed: timed out after 300 ms$/,
    );
  });

  it('a server that never answers times out before the headers', async () => {
    behaviours.set('/silent.img probe', (_req, res) => {
      stalled.push(res);
    });
    await expect(HttpBackend.open(`${base}/silent.img`, { timeoutMs: 300 })).rejects.toThrow(/silent\.img: cannot reach the server: timed out after 300 ms$/);
  });
});
