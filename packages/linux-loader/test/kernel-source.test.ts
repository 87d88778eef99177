import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type KernelSource, LoaderError, checkLinux, flatMemory, loadElf, loadLinux, parseElf, parseElfImage } from '@hype/linux-loader';
import { kernelFile, loadLinuxFiles, nodeDecompressors } from '@hype/linux-loader/node';
import { makeBzImage, makeElf, smallVmlinux } from './fixtures.js';

const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'hype-kernel-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A source over bytes that records every read. */
function recordingSource(bytes: Uint8Array): KernelSource & { reads: Array<[position: number, length: number]> } {
  const reads: Array<[number, number]> = [];
  return {
    size: bytes.length,
    reads,
    readAt(into, position) {
      reads.push([position, into.length]);
      if (position + into.length > bytes.length) throw new LoaderError('format', 'read past the end');
      into.set(bytes.subarray(position, position + into.length));
    },
  };
}

describe('KernelSource', () => {
  it('an ELF from a source loads exactly as from its bytes, reading only headers, segments and notes', () => {
    const elf = smallVmlinux();
    // Bytes past the segments (a vmlinux's symbols and debug sections) must never be read.
    const padded = new Uint8Array(elf.length + 64 * 1024);
    padded.set(elf);
    const fromBytes = new Uint8Array(32 * MiB);
    const fromSource = new Uint8Array(32 * MiB);
    const a = loadLinux(flatMemory(fromBytes), { kernel: padded, memBytes: fromBytes.length, cmdline: 'x' });
    const source = recordingSource(padded);
    const b = loadLinux(flatMemory(fromSource), { kernel: source, memBytes: fromSource.length, cmdline: 'x' });
    expect(b).toEqual(a);
    expect(Buffer.compare(fromSource, fromBytes)).toBe(0);
    const image = parseElf(elf, 'k');
    const read = source.reads.reduce((sum, [, length]) => sum + length, 0);
    const segments = image.loads.reduce((sum, s) => sum + s.filesz, 0);
    expect(read).toBeLessThan(segments + 4096);
    expect(source.reads.every(([position, length]) => position + length <= elf.length)).toBe(true);
    for (const s of image.loads) expect(source.reads).toContainEqual([s.offset, s.filesz]);
  });

  it('checkLinux reads an ELF source\'s headers only and throws what loadLinux would', () => {
    const source = recordingSource(smallVmlinux());
    checkLinux({ kernel: source, memBytes: 32 * MiB });
    expect(Math.max(...source.reads.map(([, length]) => length))).toBeLessThan(4096);
    expect(() => checkLinux({ kernel: recordingSource(smallVmlinux()), memBytes: 16 * MiB })).toThrow(/too small .*use --mem/);
    expect(() => loadLinux(flatMemory(new Uint8Array(16 * MiB)), { kernel: recordingSource(smallVmlinux()), memBytes: 16 * MiB })).toThrow(/too small .*use --mem/);
  });

  it('a bzImage source is read whole and unpacked once for a check and the load that follows (keepUnpacked)', () => {
    const source = recordingSource(makeBzImage());
    let unpacked = 0;
    const decompressors = { gzip: (data: Uint8Array, size: number) => ((unpacked += 1), nodeDecompressors.gzip!(data, size)) };
    checkLinux({ kernel: source, memBytes: 64 * MiB, keepUnpacked: true, decompressors });
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinux(flatMemory(ram), { kernel: source, memBytes: ram.length, decompressors });
    expect(setup.kernel.mode).toBe('bzimage-unpacked');
    expect(unpacked).toBe(1);
    expect(source.reads).toEqual([
      [0, 4],
      [0, source.size],
      [0, 4],
      [0, source.size],
    ]);
  });

  it('truncated headers and segments are format errors naming the kernel, from a source as from bytes', () => {
    const elf = smallVmlinux();
    for (const cut of [3, 40, 64, 100, elf.length - 1]) {
      const bytes = elf.slice(0, cut);
      let fromBytes: unknown;
      try {
        parseElf(bytes, '/v');
      } catch (e) {
        fromBytes = e;
      }
      const run = () => (cut >= 4 ? loadElf(flatMemory(new Uint8Array(32 * MiB)), recordingSource(bytes), '/v') : parseElfImage(recordingSource(bytes), '/v'));
      if (fromBytes === undefined) {
        expect(run).not.toThrow(); // only bytes nothing loads were cut
        continue;
      }
      expect(run).toThrow((fromBytes as Error).message);
    }
    // Program headers claimed far beyond the file: not read (no giant allocation), refused.
    const hostile = makeElf({ entry: 0x1000000n, segments: [{ vaddr: 0x1000000n, paddr: 0x1000000, data: new Uint8Array(16) }] });
    new DataView(hostile.buffer).setBigUint64(32, 1n << 50n, true);
    const source = recordingSource(hostile);
    expect(() => parseElfImage(source, '/v')).toThrow(/kernel \/v: truncated \(program headers at/);
    expect(Math.max(...source.reads.map(([, length]) => length))).toBeLessThanOrEqual(64);
    // A wrong program header size or none at all: refused from the first 64 bytes too.
    for (const [at, value, error] of [[54, 32, /program header size 32/], [56, 0, /no program headers/]] as const) {
      const bytes = smallVmlinux();
      new DataView(bytes.buffer).setUint16(at, value, true);
      const wrong = recordingSource(bytes);
      expect(() => parseElfImage(wrong, '/v')).toThrow(error);
      expect(Math.max(...wrong.reads.map(([, length]) => length))).toBeLessThanOrEqual(64);
    }
  });
});

describe('kernelFile', () => {
  it('an ELF file is a source; a bzImage and a non-regular file are read whole', () => {
    const vmlinux = join(dir, 'vmlinux');
    writeFileSync(vmlinux, smallVmlinux());
    const elf = kernelFile(vmlinux);
    expect(ArrayBuffer.isView(elf)).toBe(false);
    expect((elf as KernelSource).size).toBe(smallVmlinux().length);
    const bz = join(dir, 'bzImage');
    writeFileSync(bz, makeBzImage());
    expect(ArrayBuffer.isView(kernelFile(bz))).toBe(true);
    expect(() => kernelFile(join(dir, 'missing'))).toThrow(`kernel ${join(dir, 'missing')}: no such file`);
    expect(() => kernelFile(dir)).toThrow(`kernel ${dir}: is a directory`);
  });

  it('a pipe is read whole through the one descriptor it opened (a second open would wait for a writer forever)', async () => {
    const fifo = join(dir, 'kernel-fifo');
    execFileSync('mkfifo', [fifo]);
    const bz = makeBzImage();
    const src = join(dir, 'bz-for-fifo');
    writeFileSync(src, bz);
    const writer = spawn('sh', ['-c', 'cat "$0" > "$1"', src, fifo], { stdio: 'ignore' });
    const image = kernelFile(fifo);
    expect(ArrayBuffer.isView(image)).toBe(true);
    expect(Buffer.compare(image as Uint8Array, bz)).toBe(0);
    await once(writer, 'exit');
  });

  it('loadLinuxFiles loads an ELF file through it, as from the bytes', () => {
    const vmlinux = join(dir, 'vmlinux-load');
    writeFileSync(vmlinux, smallVmlinux());
    const a = new Uint8Array(32 * MiB);
    const b = new Uint8Array(32 * MiB);
    loadLinuxFiles(flatMemory(a), { kernelPath: vmlinux, memBytes: a.length });
    loadLinux(flatMemory(b), { kernel: smallVmlinux(), kernelName: vmlinux, memBytes: b.length });
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it('reads inside a batch share one open file; errors of the batch\'s work pass through unchanged', () => {
    const vmlinux = join(dir, 'vmlinux-batch');
    const bytes = smallVmlinux();
    writeFileSync(vmlinux, bytes);
    const source = kernelFile(vmlinux) as KernelSource;
    const head = new Uint8Array(64);
    source.batch!(() => {
      rmSync(vmlinux); // gone by name: only the descriptor the batch holds can still read it
      source.readAt(head, 0);
      source.batch!(() => source.readAt(head, 0)); // nested: the same descriptor
    });
    expect(Buffer.compare(head, bytes.subarray(0, 64))).toBe(0);
    expect(() => source.readAt(head, 0)).toThrow(`kernel ${vmlinux}: no such file`); // the batch closed it
    writeFileSync(vmlinux, bytes);
    const again = kernelFile(vmlinux) as KernelSource;
    expect(() => again.batch!(() => { throw new RangeError('not the kernel\'s fault'); })).toThrow(/^not the kernel's fault$/);
    expect(() => again.batch!(() => again.readAt(new Uint8Array(16), bytes.length - 8))).toThrow(`kernel ${vmlinux}: the file ends before byte ${bytes.length + 8} (did it change?)`);
  });

  it('a file replaced or changed after it was opened fails with a one-line error instead of loading a mix', () => {
    const vmlinux = join(dir, 'vmlinux-changing');
    writeFileSync(vmlinux, smallVmlinux());
    const source = kernelFile(vmlinux);
    checkLinux({ kernel: source, kernelName: vmlinux, memBytes: 32 * MiB });
    writeFileSync(vmlinux, smallVmlinux().fill(0x90, 0x2000, 0x2100)); // same size, new contents
    utimesSync(vmlinux, new Date(), new Date(Date.now() + 5000));
    expect(() => loadLinux(flatMemory(new Uint8Array(32 * MiB)), { kernel: source, kernelName: vmlinux, memBytes: 32 * MiB })).toThrow(
      `kernel ${vmlinux}: the file changed while it was being loaded; start again`,
    );
    rmSync(vmlinux);
    expect(() => loadLinux(flatMemory(new Uint8Array(32 * MiB)), { kernel: source, kernelName: vmlinux, memBytes: 32 * MiB })).toThrow(
      `kernel ${vmlinux}: no such file`,
    );
  });
});
