import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoaderError, flatMemory } from '@hype/linux-loader';
import { loadLinuxFiles, readBootFile } from '@hype/linux-loader/node';
import { makeBzImage } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'hype-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1 << 20;

describe('loadLinuxFiles', () => {
  it('reads kernel and initrd and unpacks a gzip bzImage with the Node decompressors', () => {
    writeFileSync(join(dir, 'bzImage'), makeBzImage());
    writeFileSync(join(dir, 'initrd'), new Uint8Array(4096).fill(5));
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinuxFiles(flatMemory(ram), {
      kernelPath: join(dir, 'bzImage'),
      initrdPath: join(dir, 'initrd'),
      memBytes: ram.length,
      cmdline: 'quiet',
    });
    expect(setup.kernel.mode).toBe('bzimage-unpacked');
    expect(setup.kernel.payloadFormat).toBe('gzip');
    expect(ram[setup.initrd!.addr]).toBe(5);
  });

  it('takes the kernel bytes a caller already read instead of reading the file (errors still name the path)', () => {
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinuxFiles(flatMemory(ram), { kernelPath: '/not/read/bzImage', kernelImage: makeBzImage(), memBytes: ram.length });
    expect(setup.kernel.mode).toBe('bzimage-unpacked');
    const corrupt = makeBzImage().fill(0, 0x1f0, 0x210);
    expect(() => loadLinuxFiles(flatMemory(ram), { kernelPath: '/not/read/bzImage', kernelImage: corrupt, memBytes: ram.length })).toThrow(
      'kernel /not/read/bzImage: not a bzImage',
    );
  });

  it('names a missing or unreadable file in a one-line error', () => {
    const mem = flatMemory(new Uint8Array(MiB));
    expect(() => loadLinuxFiles(mem, { kernelPath: join(dir, 'nope'), memBytes: MiB })).toThrow(`kernel ${join(dir, 'nope')}: no such file`);
    writeFileSync(join(dir, 'k2'), makeBzImage());
    expect(() => loadLinuxFiles(mem, { kernelPath: join(dir, 'k2'), initrdPath: '/nonexistent/initrd.cpio', memBytes: MiB })).toThrow(
      'initrd /nonexistent/initrd.cpio: no such file',
    );
    mkdirSync(join(dir, 'adir'));
    expect(() => readBootFile(join(dir, 'adir'), 'kernel')).toThrow(LoaderError);
    expect(() => readBootFile(join(dir, 'adir'), 'kernel')).toThrow(/is a directory$/);
  });

  it('reports a corrupted kernel file as such', () => {
    const image = makeBzImage();
    image.fill(0, 0x1f0, 0x210);
    writeFileSync(join(dir, 'corrupt'), image);
    expect(() => loadLinuxFiles(flatMemory(new Uint8Array(MiB)), { kernelPath: join(dir, 'corrupt'), memBytes: MiB })).toThrow(
      `kernel ${join(dir, 'corrupt')}: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux`,
    );
  });
});
