// The HTTP(S) range backend against a local node:http server on 127.0.0.1 (loopback only).
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureMask as featureMaskOf } from '@hype/virtio';
import { BlkFeature, BlkRequestType as T, BlkStatus as S, HttpBackend, VirtioBlkDevice } from '../src/index.js';
import { headerBytes } from './helpers.js';
import { VirtioTestDriver } from '@hype/virtio/testing';

const IMAGE_SIZE = 1 << 20;
const image = new Uint8Array(IMAGE_SIZE);
for (let i = 0; i < IMAGE_SIZE; i++) image[i] = (i * 11 + (i >> 9)) & 0xff;

interface Mode {
  ignoreRanges?: boolean;
  status?: number;
  etag?: string;
  contentRange?: (start: number, end: number) => string;
  size?: number;
}

const modes = new Map<string, Mode>();
const requests: Array<{ path: string; range?: string }> = [];
let server: Server;
let base = '';

function handle(req: IncomingMessage, res: ServerResponse) {
  const path = req.url ?? '/';
  const mode = modes.get(path) ?? {};
  requests.push({ path, range: req.headers.range });
  const body = mode.size !== undefined ? image.subarray(0, mode.size) : image;
  if (mode.status) {
    res.writeHead(mode.status).end('nope');
    return;
  }
  const headers: Record<string, string> = { 'Accept-Ranges': 'bytes', ETag: mode.etag ?? '"v1"' };
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!range || mode.ignoreRanges) {
    res.writeHead(200, { ...headers, 'Content-Length': String(body.length) }).end(body);
    return;
  }
  const start = Number(range[1]);
  const end = Math.min(Number(range[2]), body.length - 1);
  if (start >= body.length) {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${body.length}` }).end();
    return;
  }
  const cr = mode.contentRange ? mode.contentRange(start, end) : `bytes ${start}-${end}/${body.length}`;
  res.writeHead(206, { ...headers, 'Content-Range': cr, 'Content-Length': String(end - start + 1) }).end(body.subarray(start, end + 1));
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('HTTP range backend', () => {
  it('learns the size from Content-Range and reads arbitrary ranges into several views', async () => {
    const b = await HttpBackend.open(`${base}/disk.img`);
    expect(b.size).toBe(IMAGE_SIZE);
    expect(b.readOnly).toBe(true);
    const v1 = new Uint8Array(1000);
    const v2 = new Uint8Array(200_000); // spans several 64 KiB cache blocks
    await b.read(70_000, [v1, v2]);
    expect(v1).toEqual(image.slice(70_000, 71_000));
    expect(v2).toEqual(image.slice(71_000, 271_000));
    await b.close();
  });

  it('caches blocks: a second read of the same range makes no request; one request per run of missing blocks', async () => {
    const b = await HttpBackend.open(`${base}/cache.img`, { cacheBlockSize: 4096, cacheBlocks: 8 });
    requests.length = 0;
    const v = new Uint8Array(512);
    await b.read(8192, [v]);
    await b.read(8192 + 512, [v]);
    expect(requests).toEqual([{ path: '/cache.img', range: 'bytes=8192-12287' }]);
    requests.length = 0;
    await b.read(4096, [new Uint8Array(4096 * 3)]); // block 1 and 3 missing, 2 cached
    // Two concurrent fetches: the server may see them in either order.
    expect(requests.map((r) => r.range).sort()).toEqual(['bytes=12288-16383', 'bytes=4096-8191']);
    requests.length = 0;
    // Evicted once more than 8 blocks were touched.
    await b.read(65536, [new Uint8Array(4096 * 8)]);
    await b.read(8192, [v]);
    expect(requests.map((r) => r.range)).toEqual(['bytes=65536-98303', 'bytes=8192-12287']);
    await b.close();
  });

  it('without a cache, each read is exactly one range request', async () => {
    const b = await HttpBackend.open(`${base}/nocache.img`, { cacheBlocks: 0 });
    requests.length = 0;
    const v = new Uint8Array(1024);
    await b.read(512, [v]);
    expect(v).toEqual(image.slice(512, 1536));
    expect(requests.map((r) => r.range)).toEqual(['bytes=512-1535']);
  });

  it('a last block shorter than the cache block (size not a block multiple)', async () => {
    modes.set('/odd.img', { size: 100_000 });
    const b = await HttpBackend.open(`${base}/odd.img`);
    expect(b.size).toBe(100_000);
    const v = new Uint8Array(99_840 - 65_536);
    await b.read(65_536, [v]);
    expect(v).toEqual(image.slice(65_536, 99_840));
  });

  it('an empty image (416 with bytes */0) has size 0', async () => {
    modes.set('/empty.img', { size: 0 });
    expect((await HttpBackend.open(`${base}/empty.img`)).size).toBe(0);
  });

  it('clear errors: server ignoring ranges, HTTP error, unreachable server, bad Content-Range', async () => {
    modes.set('/noranges.img', { ignoreRanges: true });
    await expect(HttpBackend.open(`${base}/noranges.img`)).rejects.toThrow(/ignores Range requests \(200 instead of 206/);
    modes.set('/missing.img', { status: 404 });
    await expect(HttpBackend.open(`${base}/missing.img`)).rejects.toThrow(/HTTP 404 for the size probe/);
    await expect(HttpBackend.open('http://127.0.0.1:1/x.img')).rejects.toThrow(/cannot reach the server/);
    modes.set('/badcr.img', { contentRange: () => 'bytes 0-0/*' });
    await expect(HttpBackend.open(`${base}/badcr.img`)).rejects.toThrow(/without a usable Content-Range/);
  });

  it('a read whose answer is not the range asked for fails (and is retried next time)', async () => {
    const b = await HttpBackend.open(`${base}/shift.img`, { cacheBlocks: 4, cacheBlockSize: 4096 });
    modes.set('/shift.img', { contentRange: (s, e) => `bytes ${s + 1}-${e + 1}/${IMAGE_SIZE}` });
    await expect(b.read(0, [new Uint8Array(512)])).rejects.toThrow(/answered Content-Range/);
    modes.delete('/shift.img');
    const v = new Uint8Array(512);
    await b.read(0, [v]);
    expect(v).toEqual(image.slice(0, 512));
  });

  it('an image that changed on the server (new ETag) is an error, not mixed data', async () => {
    const b = await HttpBackend.open(`${base}/changing.img`, { cacheBlocks: 0 });
    modes.set('/changing.img', { etag: '"v2"' });
    await expect(b.read(0, [new Uint8Array(512)])).rejects.toThrow(/changed on the server/);
  });

  it('serves a read-only virtio disk: IN works, OUT is IOERR, RO offered', async () => {
    const backend = await HttpBackend.open(`${base}/vm.img`);
    const drv = new VirtioTestDriver(new VirtioBlkDevice({ backend, serial: 'http-disk' }));
    expect((drv.offeredFeatures() & featureMaskOf(BlkFeature.RO)) !== 0n).toBe(true);
    drv.init();
    const hdr = drv.alloc(16, headerBytes(T.IN, 10));
    const data = drv.alloc(4096);
    const st = drv.alloc(1, 0xff);
    drv.submit([
      { addr: hdr, len: 16, writable: false },
      { addr: data, len: 4096, writable: true },
      { addr: st, len: 1, writable: true },
    ]);
    expect((await drv.waitUsed(1))[0].len).toBe(4097);
    expect(drv.ram[st]).toBe(S.OK);
    expect(drv.bytes(data, 4096)).toEqual(image.slice(5120, 5120 + 4096));
    const whdr = drv.alloc(16, headerBytes(T.OUT, 0));
    const wst = drv.alloc(1, 0xff);
    drv.submit([
      { addr: whdr, len: 16, writable: false },
      { addr: data, len: 512, writable: false },
      { addr: wst, len: 1, writable: true },
    ]);
    expect((await drv.waitUsed(1))[0].len).toBe(1);
    expect(drv.ram[wst]).toBe(S.IOERR);
  });
});

describe('HTTP range backend: bounded host memory', () => {
  it('splits a read larger than 8 MiB into windows (one request each without a cache)', async () => {
    const big = new Uint8Array(20 << 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i >> 12) & 0xff;
    const ranges: string[] = [];
    const fetch = async (_url: string, init: { headers: Record<string, string> }) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(init.headers.Range) as RegExpExecArray;
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]), big.length - 1);
      ranges.push(init.headers.Range);
      const body = big.slice(start, end + 1);
      return {
        status: 206,
        headers: { get: (h: string) => (h.toLowerCase() === 'content-range' ? `bytes ${start}-${end}/${big.length}` : null) },
        arrayBuffer: async () => body.buffer,
      };
    };
    const b = await HttpBackend.open('http://example.invalid/big.img', { fetch, cacheBlocks: 0 });
    ranges.length = 0;
    const dest = [new Uint8Array(10 << 20), new Uint8Array(8 << 20)];
    await b.read(1 << 20, dest);
    expect(ranges).toEqual([`bytes=${1 << 20}-${(9 << 20) - 1}`, `bytes=${9 << 20}-${(17 << 20) - 1}`, `bytes=${17 << 20}-${(19 << 20) - 1}`]);
    expect(Buffer.from(dest[0]).equals(Buffer.from(big.subarray(1 << 20, 11 << 20)))).toBe(true);
    expect(Buffer.from(dest[1]).equals(Buffer.from(big.subarray(11 << 20, 19 << 20)))).toBe(true);
  });
});
