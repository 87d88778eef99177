import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { flatMemory, loadLinux, type Decompressor } from '@hype/linux-loader';
import { gunzipBounded, loadLinuxFiles, openInitrdFile } from '@hype/linux-loader/node';
import { makeBzImage } from './fixtures.js';

const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'hype-loader-keep-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** gunzip that counts its calls. */
function countingGzip(): { gzip: Decompressor; calls: () => number } {
  let calls = 0;
  return {
    gzip: (data, size) => {
      calls++;
      return gunzipBounded(data, size);
    },
    calls: () => calls,
  };
}

describe('keepUnpacked: a dry run and the load after it unpack the payload once', () => {
  it('the next load of the same kernel array takes the kept payload, once', () => {
    const kernel = makeBzImage();
    const counter = countingGzip();
    const decompressors = { gzip: counter.gzip };
    const dry = loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel, memBytes: 64 * MiB, decompressors, keepUnpacked: true });
    expect(counter.calls()).toBe(1);
    const ram = new Uint8Array(64 * MiB);
    const real = loadLinux(flatMemory(ram), { kernel, memBytes: 64 * MiB, decompressors });
    expect(counter.calls()).toBe(1);
    expect(real.kernel).toEqual(dry.kernel);
    expect(real.kernel.mode).toBe('bzimage-unpacked');
    // Taken and forgotten: a third load unpacks again.
    loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel, memBytes: 64 * MiB, decompressors });
    expect(counter.calls()).toBe(2);
  });

  it('another kernel array, or a load without the dry run asking, unpacks for itself', () => {
    const counter = countingGzip();
    const decompressors = { gzip: counter.gzip };
    loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel: makeBzImage(), memBytes: 64 * MiB, decompressors });
    loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel: makeBzImage(), memBytes: 64 * MiB, decompressors, keepUnpacked: true });
    loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel: makeBzImage(), memBytes: 64 * MiB, decompressors });
    expect(counter.calls()).toBe(3);
  });

  it('a kept payload that does not fit the next load\'s memory is not used: that load fails as it would have', () => {
    const kernel = makeBzImage();
    loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel, memBytes: 64 * MiB, keepUnpacked: true });
    expect(() => loadLinux(flatMemory(new Uint8Array(MiB)), { kernel, memBytes: MiB })).toThrow(/too small|more than/);
  });
});

describe('initrd from a file straight into guest memory', () => {
  it('an InitrdSource: its size places it, read() fills guest memory at that place', () => {
    const ram = new Uint8Array(64 * MiB);
    let asked = 0;
    const setup = loadLinux(flatMemory(ram), {
      kernel: makeBzImage(),
      memBytes: ram.length,
      initrd: { size: 10_000, read: (into) => ((asked = into.length), into.fill(7)) },
    });
    expect(asked).toBe(10_000);
    expect(setup.initrd!.size).toBe(10_000);
    expect(ram[setup.initrd!.addr]).toBe(7);
    expect(ram[setup.initrd!.addr + 9_999]).toBe(7);
    expect(() => loadLinux(flatMemory(ram), { kernel: makeBzImage(), memBytes: ram.length, initrd: { size: 0, read: () => {} } })).toThrow('empty file');
  });

  it('openInitrdFile: size from the file, bytes read into the view; a file that shrank is an error', () => {
    const path = join(dir, 'initrd');
    writeFileSync(path, new Uint8Array(3 * 4096 + 5).fill(9));
    const file = openInitrdFile(path);
    try {
      const source = file.source as { size: number; read(into: Uint8Array): void };
      expect(source.size).toBe(3 * 4096 + 5);
      const into = new Uint8Array(source.size);
      source.read(into);
      expect(into.every((b) => b === 9)).toBe(true);
      writeFileSync(path, new Uint8Array(100));
      expect(() => source.read(new Uint8Array(3 * 4096 + 5))).toThrow(`initrd ${path}: 100 bytes read, 12293 expected (did the file change?)`);
    } finally {
      file.close();
    }
    expect(() => openInitrdFile(join(dir, 'missing'))).toThrow(`initrd ${join(dir, 'missing')}: no such file`);
    expect(() => openInitrdFile(dir)).toThrow(`initrd ${dir}: is a directory`);
  });

  it('loadLinuxFiles reads the initrd into guest memory', () => {
    writeFileSync(join(dir, 'bz'), makeBzImage());
    writeFileSync(join(dir, 'rd'), new Uint8Array(5000).fill(3));
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinuxFiles(flatMemory(ram), { kernelPath: join(dir, 'bz'), initrdPath: join(dir, 'rd'), memBytes: ram.length });
    expect(setup.initrd).toEqual({ addr: setup.initrd!.addr, size: 5000 });
    expect(ram.subarray(setup.initrd!.addr, setup.initrd!.addr + 5000).every((b) => b === 3)).toBe(true);
  });
});

describe('gunzipBounded', () => {
  it('decompresses into one buffer of the expected size (plus the byte that tells "more"), not 16 KiB pieces joined', () => {
    const data = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
    const out = gunzipBounded(gzipSync(data), data.length);
    expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
    expect(out.buffer.byteLength).toBe(data.length + 1);
    expect(() => gunzipBounded(gzipSync(data), data.length - 1)).toThrow('more than the 199999 bytes');
  });
});
