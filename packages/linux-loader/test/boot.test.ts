import { describe, expect, it } from 'vitest';
import {
  LAYOUT,
  LoaderError,
  bootparam,
  buildE820,
  flatMemory,
  loadLinux,
  parseMpTable,
  readE820,
  regionMemory,
} from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { makeBzImage, smallVmlinux } from './fixtures.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const { SETUP_HEADER: H, BOOT_PARAMS: BP } = bootparam;

const zeroPageOf = (ram: Uint8Array) => new DataView(ram.buffer, LAYOUT.zeroPage, 4096);
const read = (dv: DataView, f: bootparam.Field) => bootparam.readField(dv, f);
const cstring = (ram: Uint8Array, at: number) => {
  let end = at;
  while (ram[end] !== 0) end++;
  return new TextDecoder().decode(ram.subarray(at, end));
};
function errorOf(f: () => unknown): LoaderError {
  try {
    f();
  } catch (e) {
    if (e instanceof LoaderError) return e;
    throw e;
  }
  throw new Error('expected a LoaderError');
}
/** An LZ4 legacy frame holding `data` as literal-only blocks, plus the size the kernel build appends. */
function lz4Literal(data: Uint8Array): Uint8Array {
  const parts: number[] = [0x02, 0x21, 0x4c, 0x18];
  const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
  const ext = (n: number) => {
    const out: number[] = [];
    for (n -= 15; n >= 255; n -= 255) out.push(255);
    return [...out, n];
  };
  const block = [0xf0, ...ext(data.length), ...data];
  return new Uint8Array([...parts, ...u32(block.length), ...block, ...u32(data.length)]);
}

describe('loadLinux with an ELF vmlinux', () => {
  const memBytes = 64 * MiB;
  const ram = new Uint8Array(memBytes);
  const initrd = new Uint8Array(3 * 4096 + 100).map((_, i) => i & 0xff);
  const setup = loadLinux(flatMemory(ram), {
    kernel: smallVmlinux(),
    kernelName: '/k/vmlinux',
    initrd,
    cmdline: 'console=ttyS0 panic=-1',
    memBytes,
    cpus: 2,
  });

  it('loads the kernel and enters startup_64 in long mode with rsi = zero page', () => {
    expect(setup.kernel).toMatchObject({ mode: 'elf', entry: 0x1000000, start: 0x1000000, end: 0x1205000, pvhEntry: 0x1000100 });
    expect(setup.cpu.regs).toEqual({
      rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0x7000, rdi: 0, rsp: 0x8ff0, rbp: 0x8ff0,
      r8: 0, r9: 0, r10: 0, r11: 0, r12: 0, r13: 0, r14: 0, r15: 0,
      rip: 0x1000000, rflags: 2,
    });
    const s = setup.cpu.sregs;
    expect(s.cr0).toBe(0x80000011);
    expect(s.cr3).toBe(0x9000);
    expect(s.cr4).toBe(0x20);
    expect(s.efer).toBe(0x500);
    expect(s.cs.selector).toBe(0x10);
    expect(s.cs.l).toBe(1);
    for (const r of [s.ds, s.es, s.fs, s.gs, s.ss]) expect(r).toEqual(s.ds);
    expect(s.ds.selector).toBe(0x18);
    expect(s.tr.selector).toBe(0x20);
    expect(s.gdt).toEqual({ base: 0x500, limit: 47 });
  });

  it('places the initrd page-aligned at the top of RAM', () => {
    const addr = Math.floor((memBytes - initrd.length) / 4096) * 4096;
    expect(setup.initrd).toEqual({ addr, size: initrd.length });
    expect(Buffer.from(ram.subarray(addr, addr + initrd.length)).equals(Buffer.from(initrd))).toBe(true);
  });

  it('fills a synthesized 2.12 setup header in the zero page', () => {
    const zp = zeroPageOf(ram);
    expect(read(zp, H.boot_flag)).toBe(0xaa55);
    expect(read(zp, H.header)).toBe(0x53726448);
    expect(read(zp, H.version)).toBe(0x020c);
    expect(read(zp, H.type_of_loader)).toBe(0xff);
    expect(read(zp, H.loadflags)).toBe(bootparam.LOADED_HIGH | bootparam.CAN_USE_HEAP);
    expect(read(zp, H.heap_end_ptr)).toBe(0xfe00);
    expect(read(zp, H.cmd_line_ptr)).toBe(0x20000);
    expect(read(zp, BP.ext_cmd_line_ptr)).toBe(0);
    expect(cstring(ram, 0x20000)).toBe('console=ttyS0 panic=-1');
    expect(setup.cmdline).toEqual({ addr: 0x20000, length: 22, text: 'console=ttyS0 panic=-1' });
    expect(read(zp, H.ramdisk_image)).toBe(setup.initrd!.addr);
    expect(read(zp, H.ramdisk_size)).toBe(initrd.length);
    expect(read(zp, BP.ext_ramdisk_image)).toBe(0);
    expect(read(zp, BP.sentinel)).toBe(0);
    expect(readE820(ram.subarray(LAYOUT.zeroPage, LAYOUT.zeroPage + 4096))).toEqual(buildE820(memBytes));
    expect(setup.e820).toEqual(buildE820(memBytes));
  });

  it('writes the MP table for the vCPUs', () => {
    const t = parseMpTable(flatMemory(ram));
    expect(t.cpus).toHaveLength(2);
    expect(t.tableChecksumOk && t.floatingChecksumOk).toBe(true);
    expect(setup.mpTable).toMatchObject({ start: 0x9fc00, cpus: 2 });
  });
});

describe('loadLinux with a bzImage', () => {
  it('unpacks a gzip payload on the host and copies the image setup header into the zero page', () => {
    const image = makeBzImage({ initSize: 0x900000, kernelVersion: '6.1.0-test' });
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinux(flatMemory(ram), { kernel: image, kernelName: 'bz', memBytes: ram.length, decompressors: nodeDecompressors });
    expect(setup.kernel).toMatchObject({
      mode: 'bzimage-unpacked',
      payloadFormat: 'gzip',
      entry: 0x1000000,
      protocol: '2.15',
      version: '6.1.0-test',
      reservedEnd: 0x1205000,
    });
    expect(setup.cpu.regs.rip).toBe(0x1000000);
    expect(ram[0x1000001]).toBe(8);
    const zp = zeroPageOf(ram);
    for (const f of [H.version, H.xloadflags, H.init_size, H.pref_address, H.kernel_alignment, H.cmdline_size, H.syssize, H.vid_mode, H.payload_offset]) {
      expect(read(zp, f)).toBe(read(new DataView(image.buffer), f));
    }
    expect(read(zp, H.type_of_loader)).toBe(0xff);
    expect(read(zp, H.loadflags)).toBe(0x81);
    expect(ram[LAYOUT.zeroPage + 0x26c]).toBe(0); // nothing copied past the header end
  });

  it('unpacks an lz4 payload with the built-in decoder alone', () => {
    const image = makeBzImage({ payload: lz4Literal(smallVmlinux()) });
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinux(flatMemory(ram), { kernel: image, memBytes: ram.length });
    expect(setup.kernel).toMatchObject({ mode: 'bzimage-unpacked', payloadFormat: 'lz4', entry: 0x1000000 });
    expect(ram[0x1200000]).toBe(0xdd);
  });

  it('falls back to the guest decompressor without a host decompressor: 1 MiB load, 64-bit entry at +0x200', () => {
    const image = makeBzImage({ initSize: 0x2000000 });
    const h = new DataView(image.buffer);
    const ram = new Uint8Array(128 * MiB);
    const setup = loadLinux(flatMemory(ram), { kernel: image, kernelName: 'bz', memBytes: ram.length, initrd: new Uint8Array(10) });
    expect(setup.kernel).toMatchObject({
      mode: 'bzimage',
      payloadFormat: 'gzip',
      notUnpackedBecause: 'no host decompressor for gzip',
      entry: 0x100200,
      start: 0x100000,
    });
    // The decompressor moves to max(align_up(1 MiB, 2 MiB), pref_address = 16 MiB) and needs init_size there.
    expect(setup.kernel.reservedEnd).toBe(0x1000000 + 0x2000000);
    expect(setup.initrd!.addr).toBeGreaterThanOrEqual(setup.kernel.reservedEnd);
    const pmOffset = (4 + 1) * 512;
    expect(Buffer.from(ram.subarray(0x100000, 0x100000 + image.length - pmOffset)).equals(Buffer.from(image.subarray(pmOffset)))).toBe(true);
    expect(read(zeroPageOf(ram), H.code32_start)).toBe(0x100000);
    expect(read(zeroPageOf(ram), H.init_size)).toBe(read(h, H.init_size));
  });

  it('boots the bzImage itself when unpacking is off', () => {
    const ram = new Uint8Array(64 * MiB);
    const setup = loadLinux(flatMemory(ram), { kernel: makeBzImage(), memBytes: ram.length, unpack: false, decompressors: nodeDecompressors });
    expect(setup.kernel).toMatchObject({ mode: 'bzimage', notUnpackedBecause: 'unpacking disabled', entry: 0x100200 });
  });

  it('honours a non-relocatable kernel at pref_address', () => {
    const ram = new Uint8Array(128 * MiB);
    const setup = loadLinux(flatMemory(ram), {
      kernel: makeBzImage({ relocatable: false, prefAddress: 0x2000000, initSize: 0x1000000 }),
      memBytes: ram.length,
      unpack: false,
    });
    expect(setup.kernel.reservedEnd).toBe(0x3000000);
  });
});

describe('loadLinux placement with RAM above the PCI hole', () => {
  it('keeps the initrd below initrd_addr_max and writes nowhere else unexpected', () => {
    const low = new Uint8Array(64 * MiB);
    const window = new Uint8Array(MiB);
    // Only the low 64 MiB and the MiB below 2 GiB exist: any other write would throw.
    const mem = regionMemory([
      { gpa: 0, bytes: low },
      { gpa: 2 * GiB - MiB, bytes: window },
    ]);
    const initrd = new Uint8Array(5000).fill(9);
    const setup = loadLinux(mem, { kernel: makeBzImage(), memBytes: 6 * GiB, initrd, decompressors: nodeDecompressors });
    expect(setup.initrd).toEqual({ addr: 2 * GiB - 8192, size: 5000 });
    expect(window[MiB - 8192]).toBe(9);
    expect(setup.e820.at(-1)).toEqual({ addr: 4 * GiB, size: 3 * GiB, type: 1 });
    expect(setup.ram).toEqual([
      { gpa: 0, size: 3 * GiB },
      { gpa: 4 * GiB, size: 3 * GiB },
    ]);
  });
});

describe('loadLinux errors (one line, nothing written)', () => {
  /** Guest memory that counts the views taken: a failed load must take none (write nothing). */
  const spied = (ram: Uint8Array) => {
    const inner = flatMemory(ram);
    const spy = { views: 0, view: (gpa: number, len: number) => (spy.views++, inner.view(gpa, len)) };
    return spy;
  };
  const untouched = (mem: { views: number }) => mem.views === 0;

  it('memory too small for kernel + initrd, with a size that does work', () => {
    const image = makeBzImage({ initSize: 0x2000000 });
    const initrd = new Uint8Array(3 * MiB);
    const ram = new Uint8Array(16 * MiB);
    const mem = spied(ram);
    const e = errorOf(() => loadLinux(mem, { kernel: image, kernelName: '/k/bz', initrd, memBytes: ram.length, unpack: false }));
    expect(e.kind).toBe('memory');
    expect(e.message).toBe(
      'memory 16 MiB too small for kernel (up to 48 MiB with init_size 32 MiB) + initrd (3 MiB): use --mem 80 or more',
    );
    expect(e.neededMiB).toBe(80);
    expect(untouched(mem)).toBe(true);
    const enough = new Uint8Array(80 * MiB);
    expect(() => loadLinux(flatMemory(enough), { kernel: image, initrd, memBytes: enough.length, unpack: false })).not.toThrow();
  });

  it('memory that holds the kernel but not the initrd above it', () => {
    const ram = new Uint8Array(50 * MiB);
    const mem = spied(ram);
    const e = errorOf(() =>
      loadLinux(mem, { kernel: makeBzImage({ initSize: 0x2000000 }), initrd: new Uint8Array(3 * MiB), memBytes: ram.length, unpack: false }),
    );
    expect(e.message).toMatch(/^memory 50 MiB too small for kernel .* \+ initrd \(3 MiB\): use --mem 80 or more$/);
    expect(untouched(mem)).toBe(true);
  });

  it('an initrd that does not fit under initrd_addr_max', () => {
    const ram = new Uint8Array(64 * MiB);
    const mem = spied(ram);
    const e = errorOf(() =>
      loadLinux(mem, {
        kernel: makeBzImage({ initrdAddrMax: 0x17fffff, initSize: 0x800000 }),
        initrd: new Uint8Array(MiB),
        initrdName: '/i.cpio',
        memBytes: ram.length,
        unpack: false,
      }),
    );
    expect(e.message).toMatch(/^initrd \/i\.cpio \(1 MiB\) does not fit between the kernel \(up to 24 MiB\) and the kernel's initrd limit 0x17fffff/);
    expect(untouched(mem)).toBe(true);
  });

  it('a command line longer than the kernel accepts, or with a NUL', () => {
    const ram = new Uint8Array(64 * MiB);
    const mem = spied(ram);
    const kernel = makeBzImage({ cmdlineSize: 16 });
    const e = errorOf(() => loadLinux(mem, { kernel, kernelName: '/k', memBytes: ram.length, cmdline: 'x'.repeat(17) }));
    expect(e.message).toBe('kernel command line is 17 bytes, kernel /k accepts at most 16: shorten it');
    expect(() => loadLinux(mem, { kernel, memBytes: ram.length, cmdline: 'a\0b' })).toThrow(/NUL/);
    expect(untouched(mem)).toBe(true);
    expect(() => loadLinux(mem, { kernel, memBytes: ram.length, cmdline: 'x'.repeat(16) })).not.toThrow();
  });

  it('a file that is neither a bzImage nor an ELF, an empty initrd, bad vCPU counts', () => {
    const ram = new Uint8Array(32 * MiB);
    const mem = spied(ram);
    expect(errorOf(() => loadLinux(mem, { kernel: new Uint8Array(8192).fill(1), kernelName: '/x', memBytes: ram.length })).message).toBe(
      'kernel /x: not a bzImage (no HdrS magic at 0x202) nor an ELF vmlinux',
    );
    expect(errorOf(() => loadLinux(mem, { kernel: smallVmlinux(), initrd: new Uint8Array(0), initrdName: '/e', memBytes: ram.length })).message).toBe(
      'initrd /e: empty file',
    );
    expect(errorOf(() => loadLinux(mem, { kernel: smallVmlinux(), memBytes: 1000 })).kind).toBe('memory');
    expect(() => loadLinux(mem, { kernel: smallVmlinux(), memBytes: ram.length, cpus: 0 })).toThrow(/1 to 254/);
    expect(() => loadLinux(mem, { kernel: smallVmlinux(), memBytes: ram.length, cpus: 255 })).toThrow(/1 to 254/);
    expect(untouched(mem)).toBe(true);
  });
});
