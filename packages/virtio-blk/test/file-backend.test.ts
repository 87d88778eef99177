import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlkRequestType as T, BlkStatus as S, FileBackend, type FileHandleLike, VirtioBlkDevice } from '../src/index.js';
import { openDiskBackend, openFileBackend } from '../node/index.js';
import { bytesEqual, headerBytes } from './helpers.js';
import { VirtioTestDriver } from '@hype/virtio/testing';

const dir = mkdtempSync(join(tmpdir(), 'hype-blk-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function imageFile(bytes: Uint8Array): string {
  const p = join(dir, `disk-${n++}.img`);
  writeFileSync(p, bytes);
  return p;
}

function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (i * 7 + seed + (i >> 9) * 3) & 0xff;
  return out;
}

describe('file backend (node:fs)', () => {
  it('reads into and writes from several views at a position', async () => {
    const p = imageFile(pattern(64 * 1024, 1));
    const b = await openFileBackend(p);
    expect(b.size).toBe(64 * 1024);
    expect(b.readOnly).toBe(false);
    const v1 = new Uint8Array(100);
    const v2 = new Uint8Array(412);
    await b.read(4096, [v1, v2]);
    expect(new Uint8Array([...v1, ...v2])).toEqual(pattern(64 * 1024, 1).slice(4096, 4608));
    const w = pattern(1536, 9);
    await b.write(8192, [w.subarray(0, 1000), w.subarray(1000)]);
    await b.flush();
    await b.close();
    expect(new Uint8Array(readFileSync(p)).slice(8192, 8192 + 1536)).toEqual(w);
  });

  it('read-only: opened O_RDONLY, writes refused, the file unchanged', async () => {
    const p = imageFile(pattern(8192, 2));
    const b = await openFileBackend(p, { readOnly: true });
    expect(b.readOnly).toBe(true);
    await expect(b.write(0, [new Uint8Array(512)])).rejects.toThrow(/read-only/);
    await b.flush(); // fdatasync on a read-only descriptor is fine
    await b.close();
    expect(bytesEqual(new Uint8Array(readFileSync(p)), pattern(8192, 2))).toBe(true);
  });

  it('writeZeroes writes real zeroes across chunk boundaries', async () => {
    const p = imageFile(pattern(3 << 20, 3));
    const b = await openFileBackend(p);
    await b.writeZeroes(512, (2 << 20) + 512);
    await b.close();
    const got = new Uint8Array(readFileSync(p));
    expect(got.slice(512, 512 + (2 << 20) + 512).every((x) => x === 0)).toBe(true);
    expect(got.slice(0, 512)).toEqual(pattern(3 << 20, 3).slice(0, 512));
    expect(bytesEqual(got.slice((2 << 20) + 1024), pattern(3 << 20, 3).slice((2 << 20) + 1024))).toBe(true);
  });

  it('refuses ranges outside the file and calls after close', async () => {
    const b = await openFileBackend(imageFile(new Uint8Array(4096)));
    await expect(b.read(4096 - 256, [new Uint8Array(512)])).rejects.toThrow(/outside a 4096-byte disk/);
    await b.close();
    await expect(b.read(0, [new Uint8Array(512)])).rejects.toThrow(/after close/);
  });

  it('one-line errors for a missing file, a directory, and no write permission', async () => {
    await expect(openFileBackend(join(dir, 'nope.img'))).rejects.toThrow(/disk .*nope\.img: no such file/);
    await expect(openFileBackend(dir)).rejects.toThrow(/is a directory|not a regular file/);
    if (process.getuid?.() !== 0) {
      const p = imageFile(new Uint8Array(512));
      (await import('node:fs')).chmodSync(p, 0o444);
      await expect(openFileBackend(p)).rejects.toThrow(/permission denied for writing .*read-only/);
    }
  });

  it('loops over short reads/writes and reports EOF (a file that shrank) as an error', async () => {
    const data = pattern(2048, 4);
    const stored = new Uint8Array(2048);
    const calls: number[] = [];
    const handle: FileHandleLike = {
      async readv(bufs, pos) {
        // At most 100 bytes per call, and nothing past 1536 (pretend the file is shorter than its size).
        let n = 0;
        for (const b of bufs) {
          const k = Math.min(b.length, 100 - n, Math.max(0, 1536 - pos - n));
          b.set(data.subarray(pos + n, pos + n + k));
          n += k;
          if (k < b.length) break;
        }
        calls.push(n);
        return { bytesRead: n };
      },
      async writev(bufs, pos) {
        const b = bufs[0];
        const k = Math.min(b.length, 300);
        stored.set(b.subarray(0, k), pos);
        return { bytesWritten: k };
      },
      async datasync() {},
      async close() {},
    };
    const fb = new FileBackend(handle, { size: 2048, readOnly: false, path: 'fake' });
    const a = new Uint8Array(250);
    const b = new Uint8Array(262);
    await fb.read(512, [a, b]);
    expect(new Uint8Array([...a, ...b])).toEqual(data.slice(512, 1024));
    expect(calls.length).toBe(6);
    await expect(fb.read(1024, [new Uint8Array(1024)])).rejects.toThrow(/unexpected end of file at byte 1536/);
    await fb.write(0, [data.subarray(0, 700), data.subarray(700, 1024)]);
    expect(stored.slice(0, 1024)).toEqual(data.slice(0, 1024));
  });

  it('openDiskBackend: file (rw and ro) and memory specs', async () => {
    const p = imageFile(new Uint8Array(4096));
    const f = await openDiskBackend({ kind: 'file', path: p, readOnly: true });
    expect([f.size, f.readOnly]).toEqual([4096, true]);
    await f.close();
    const m = await openDiskBackend({ kind: 'memory', sizeBytes: 1 << 20 });
    expect([m.size, m.readOnly]).toEqual([1 << 20, false]);
  });

  it('guest write + FLUSH through the device land in the host file', async () => {
    const p = imageFile(new Uint8Array(1 << 20));
    const backend = await openFileBackend(p);
    const dev = new VirtioBlkDevice({ backend, serial: 'file-disk' });
    const drv = new VirtioTestDriver(dev);
    drv.init();
    const data = pattern(64 * 1024, 7);
    const hdr = drv.alloc(16, headerBytes(T.OUT, 256));
    const buf = drv.alloc(data.length, data);
    const st = drv.alloc(1, 0xff);
    drv.submit([
      { addr: hdr, len: 16, writable: false },
      { addr: buf, len: data.length, writable: false },
      { addr: st, len: 1, writable: true },
    ]);
    await drv.waitUsed(1);
    expect(drv.ram[st]).toBe(S.OK);
    const fh = drv.alloc(16, headerBytes(T.FLUSH, 0));
    const fst = drv.alloc(1, 0xff);
    drv.submit([
      { addr: fh, len: 16, writable: false },
      { addr: fst, len: 1, writable: true },
    ]);
    await drv.waitUsed(1);
    expect(drv.ram[fst]).toBe(S.OK);
    await dev.close();
    expect(bytesEqual(new Uint8Array(readFileSync(p)).slice(256 * 512, 256 * 512 + data.length), data)).toBe(true);
    expect(statSync(p).size).toBe(1 << 20);
  });
});

describe('openDiskDevice', () => {
  it('builds the device for a disk list entry with the default serial, or the given one', async () => {
    const { openDiskDevice } = await import('../node/index.js');
    const p = imageFile(new Uint8Array(8192));
    const d0 = await openDiskDevice({ kind: 'file', path: p, readOnly: true }, 0);
    expect([d0.serial, d0.backend.readOnly, d0.capacity]).toEqual(['hype-disk-0', true, 16n]);
    await d0.close();
    const d1 = await openDiskDevice({ kind: 'memory', sizeBytes: 4096, serial: 'scratch' }, 1);
    expect(d1.serial).toBe('scratch');
    await expect(openDiskDevice({ kind: 'file', path: p, serial: 'x'.repeat(30) }, 2)).rejects.toThrow(/serial/);
  });
});
