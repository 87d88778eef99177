// Hostile kernels through the CLI's boot check (the real loader): each is a one-line error and exit 2,
// never an internal error with a stack (exit 5), and a decompression bomb is capped by --mem.
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { loaderCheckBoot } from '../src/boot-check.js';
import { runCli } from '../src/run-cli.js';
import { bootProblem } from '../src/validate.js';
import { harness } from './fakes.js';
import { elfKernel, MiB, workdir } from './helpers.js';

/** A minimal bzImage (boot protocol 2.15, 64-bit, relocatable) around `payload`. */
function bzImage(payload: Uint8Array, prefAddress = 0x1000000n): Uint8Array {
  const setupSize = 5 * 512;
  const pmSize = Math.ceil((payload.length + 16) / 16) * 16;
  const out = new Uint8Array(setupSize + pmSize);
  const dv = new DataView(out.buffer);
  out[0x1f1] = 4; // setup_sects
  dv.setUint32(0x1f4, pmSize / 16, true); // syssize
  dv.setUint16(0x1fe, 0xaa55, true);
  out.set([0xeb, 0x6a], 0x200); // jump: header ends at 0x26c
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, 0x020f, true);
  out[0x211] = 1; // LOADED_HIGH
  dv.setUint32(0x22c, 0x7fffffff, true); // initrd_addr_max
  dv.setUint32(0x230, 0x200000, true); // kernel_alignment
  out[0x234] = 1; // relocatable
  dv.setUint16(0x236, 1, true); // XLF_KERNEL_64
  dv.setUint32(0x238, 2047, true); // cmdline_size
  dv.setUint32(0x248, 0, true); // payload_offset
  dv.setUint32(0x24c, payload.length, true);
  dv.setBigUint64(0x258, prefAddress, true);
  dv.setUint32(0x260, 0x800000, true); // init_size
  out.set(payload, setupSize);
  return out;
}

const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

/** 64 gzip members of 16 MiB of zeros: 1 GiB of output from about 1 MiB. */
let gzipBomb: Uint8Array;
beforeAll(() => {
  const member = gzipSync(new Uint8Array(16 * MiB));
  gzipBomb = new Uint8Array(member.length * 64);
  for (let i = 0; i < 64; i++) gzipBomb.set(member, i * member.length);
  // Its trailer says 1 GiB, as a single gzip stream of it would.
  gzipBomb.set(u32le(1024 * MiB), gzipBomb.length - 4);
});

/** How much `f` grew the process (RSS or ArrayBuffer memory, whichever grew more), in bytes. */
async function growth(f: () => Promise<void>): Promise<number> {
  const before = process.memoryUsage();
  await f();
  const after = process.memoryUsage();
  return Math.max(after.rss - before.rss, after.arrayBuffers - before.arrayBuffers);
}

async function run(kernelBytes: Uint8Array, mem = '64M'): Promise<{ code: number; stderr: string; path: string }> {
  const w = workdir();
  const path = w.file('bzImage', kernelBytes);
  const h = harness({ kvmDevice: '/nonexistent/kvm' });
  const code = await runCli(['run', '--kernel', path, '--mem', mem], h.io);
  expect(h.vms).toHaveLength(0);
  return { code, stderr: h.stderr.text, path };
}

describe('hostile kernels: exit 2 with one line naming the kernel', () => {
  for (const length of [0x206, 0x207]) {
    it(`a ${length}-byte file with the HdrS magic`, async () => {
      const bytes = new Uint8Array(length);
      bytes.set([0x55, 0xaa, 0xeb, 0x6a, 0x48, 0x64, 0x72, 0x53], 0x1fe);
      const r = await run(bytes);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`hype: kernel ${r.path}: truncated (${length} bytes, the setup header alone needs 620)\n`);
    });
  }

  it('pref_address beyond 2^53', async () => {
    const r = await run(bzImage(gzipSync(elfKernel()), 2n ** 64n - 1n));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `hype: kernel ${r.path}: corrupt setup header (pref_address 0xffffffffffffffff is beyond the 52-bit physical address space)\n`,
    );
  });

  it('a gzip bomb (1 GiB in a 1 MiB bzImage) with --mem 64M: no more than 64 MiB allocated, and what to do', async () => {
    let r!: Awaited<ReturnType<typeof run>>;
    expect(await growth(async () => void (r = await run(bzImage(gzipBomb))))).toBeLessThan(64 * MiB);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `hype: kernel ${r.path}: the gzip payload unpacks to 1024 MiB, more than the 64 MiB of guest RAM: ` +
        'use --mem 1056 or more, or a smaller kernel\n',
    );
  });

  it('a gzip stream holding more than its trailer says: stopped at that size', async () => {
    const lying = gzipBomb.slice();
    lying.set(u32le(16 * MiB), lying.length - 4);
    let r!: Awaited<ReturnType<typeof run>>;
    expect(await growth(async () => void (r = await run(bzImage(lying))))).toBeLessThan(64 * MiB);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hype: kernel \S+: gzip payload does not decompress: it holds more than the 16777216 bytes its size trailer says\n$/);
  });

  it('an lz4 payload whose trailer claims 4 GiB', async () => {
    const payload = new Uint8Array([...u32le(0x184c2102), ...u32le(6), 0x50, ...[0x68, 0x65, 0x6c, 0x6c, 0x6f], ...u32le(0xffff_ffff)]);
    let r!: Awaited<ReturnType<typeof run>>;
    expect(await growth(async () => void (r = await run(bzImage(payload))))).toBeLessThan(64 * MiB);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hype: kernel \S+: the lz4 payload unpacks to 4096\.0 MiB, .*use a smaller kernel\n$/);
  });
});

describe('the boot check passes --mem through as the unpacking cap', () => {
  const check = (kernel: Uint8Array, memMiB: number) =>
    bootProblem(loaderCheckBoot, { kernel, kernelName: 'bzImage', initrdBytes: 0, memMiB, cpus: 1 });

  it('the same gzip kernel unpacks with enough memory and is refused, as a memory problem, with too little', () => {
    const kernel = bzImage(gzipSync(elfKernel({ memsz: 4 * MiB })));
    expect(check(kernel, 64)).toBeUndefined();
    const elfAnd40MiB = new Uint8Array(40 * MiB);
    elfAnd40MiB.set(elfKernel());
    const padded = bzImage(gzipSync(elfAnd40MiB));
    expect(check(padded, 256)).toBeUndefined();
    expect(check(padded, 32)).toEqual({
      kind: 'memory',
      message: 'kernel bzImage: the gzip payload unpacks to 40 MiB, more than the 32 MiB of guest RAM: use --mem 80 or more, or a smaller kernel',
    });
  });

  it('an ELF note of 200,000 bytes is no problem', () => {
    const kernel = elfKernel();
    // Turn the (empty) first 0x1000 bytes after the headers into a PT_NOTE holding one 200,000-byte name.
    const note = new Uint8Array(12 + 200_000 + 4);
    note.set([...u32le(200_000), ...u32le(4), ...u32le(18)]);
    note.fill(0x41, 12, 12 + 200_000);
    const bytes = new Uint8Array(kernel.length + note.length);
    bytes.set(kernel);
    bytes.set(note, kernel.length);
    const dv = new DataView(bytes.buffer);
    dv.setUint16(56, 2, true); // e_phnum
    const ph = 64 + 56;
    // Program headers end at 176, inside the zero bytes before the code at 0x1000.
    dv.setUint32(ph, 4, true); // PT_NOTE
    dv.setBigUint64(ph + 8, BigInt(kernel.length), true);
    dv.setBigUint64(ph + 32, BigInt(note.length), true);
    dv.setBigUint64(ph + 40, BigInt(note.length), true);
    dv.setBigUint64(ph + 48, 4n, true);
    expect(check(bytes, 64)).toBeUndefined();
  });
});
