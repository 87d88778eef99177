import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  LAYOUT,
  bootparam,
  detectPayloadFormat,
  findSymbol,
  flatMemory,
  loadLinux,
  parseElf,
  parseSetupHeader,
  physicalEntry,
  unpackPayload,
} from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { findDistroKernel, findGuestKernel } from './kernels.js';

const MiB = 1 << 20;
const guest = findGuestKernel();
const distro = findDistroKernel();
if (!guest) {
  console.warn(
    '[hype] no guest kernel in ~/.cache/hype/kernel-* (or HYPE_TEST_KERNEL): skipping the guest-kernel tests in real-kernel.test.ts; build it with the guest/ kernel build',
  );
}
if (!distro) {
  console.warn(
    '[hype] no distribution bzImage (HYPE_TEST_DISTRO_KERNEL, the nested rig\'s Debian kernel in ~/.cache/hype/kvm-in-qemu, /boot/vmlinuz-*): skipping those tests in real-kernel.test.ts',
  );
}

/** Checks that hold for any x86-64 bzImage built by Linux's own build. */
function checkBzImage(path: string) {
  const image = readFileSync(path);
  const header = parseSetupHeader(image, path);
  expect(header.version).toBeGreaterThanOrEqual(0x020c);
  expect(header.xloadflags & bootparam.XLF_KERNEL_64).not.toBe(0);
  expect(header.protectedModeOffset + header.protectedModeSize).toBeLessThanOrEqual(image.length);
  const pm = image.subarray(header.protectedModeOffset, header.protectedModeOffset + header.protectedModeSize);
  const payload = pm.subarray(header.payloadOffset, header.payloadOffset + header.payloadLength);
  return { image, header, payload };
}

/** Loads the unpacked payload and checks what lands in memory against the decompressed ELF. */
function checkUnpackedBoot(path: string, expectFormat: string) {
  const { image, header, payload } = checkBzImage(path);
  expect(detectPayloadFormat(payload)).toBe(expectFormat);
  const unpacked = unpackPayload(payload, nodeDecompressors, path);
  if (!unpacked.ok) throw new Error(unpacked.reason);
  const elf = parseElf(unpacked.elf, 'payload');
  // The decompressed kernel is linked to run at LOAD_PHYSICAL_ADDR, which the header reports as pref_address.
  expect(Math.min(...elf.loads.map((s) => s.paddr))).toBe(header.prefAddress);
  expect(physicalEntry(elf)).toBe(header.prefAddress); // startup_64 is the first thing in .text
  const end = Math.max(...elf.loads.map((s) => s.paddr + s.memsz));
  expect(end).toBeLessThanOrEqual(header.prefAddress + header.initSize);

  const memBytes = 256 * MiB;
  const ram = new Uint8Array(memBytes);
  const setup = loadLinux(flatMemory(ram), {
    kernel: image,
    kernelName: path,
    memBytes,
    cmdline: 'console=ttyS0',
    initrd: new Uint8Array(4096).fill(7),
    decompressors: nodeDecompressors,
  });
  expect(setup.kernel.mode).toBe('bzimage-unpacked');
  expect(setup.kernel.payloadFormat).toBe(expectFormat);
  expect(setup.cpu.regs.rip).toBe(header.prefAddress);
  for (const s of elf.loads) {
    // Spot-check each segment: its first file bytes and its zeroed BSS tail.
    const n = Math.min(s.filesz, 4096);
    expect(Buffer.from(ram.subarray(s.paddr, s.paddr + n)).equals(Buffer.from(unpacked.elf.subarray(s.offset, s.offset + n)))).toBe(true);
    if (s.memsz > s.filesz) expect(ram[s.paddr + s.memsz - 1]).toBe(0);
  }
  // The zero page carries the image's own setup header.
  const hdrEnd = 0x202 + image[0x201];
  const zp = ram.subarray(LAYOUT.zeroPage, LAYOUT.zeroPage + 4096);
  expect(Buffer.from(zp.subarray(0x202, 0x210)).equals(Buffer.from(image.subarray(0x202, 0x210)))).toBe(true);
  expect(Buffer.from(zp.subarray(0x230, hdrEnd)).equals(Buffer.from(image.subarray(0x230, hdrEnd)))).toBe(true);
  expect(setup.initrd!.addr).toBeGreaterThanOrEqual(end);
  return { setup, elf, unpacked: unpacked.elf };
}

describe.skipIf(!distro)('a distribution bzImage', () => {
  it('parses, unpacks on the host and loads the kernel proper at pref_address', () => {
    const { image } = checkBzImage(distro!);
    const format = detectPayloadFormat(checkBzImage(distro!).payload)!;
    if (format in nodeDecompressors) {
      const { setup } = checkUnpackedBoot(distro!, format);
      expect(setup.kernel.version).toMatch(/^\d+\.\d+/);
    } else {
      const ram = new Uint8Array(128 * MiB);
      const setup = loadLinux(flatMemory(ram), { kernel: image, kernelName: distro, memBytes: ram.length, decompressors: nodeDecompressors });
      expect(setup.kernel.mode).toBe('bzimage');
      expect(setup.kernel.notUnpackedBecause).toContain(format);
    }
  });

  it('boots the bzImage itself when unpacking is off: 64-bit entry at 1 MiB + 0x200', () => {
    const { image, header } = checkBzImage(distro!);
    const memBytes = 128 * MiB;
    const ram = new Uint8Array(memBytes);
    const setup = loadLinux(flatMemory(ram), { kernel: image, kernelName: distro, memBytes, unpack: false });
    expect(setup.kernel.mode).toBe('bzimage');
    expect(setup.cpu.regs.rip).toBe(0x100200);
    const pm = image.subarray(header.protectedModeOffset, header.protectedModeOffset + header.protectedModeSize);
    expect(Buffer.from(ram.subarray(0x100000, 0x100000 + pm.length)).equals(Buffer.from(pm))).toBe(true);
    expect(setup.kernel.reservedEnd).toBe(Math.max(header.prefAddress, 0x200000) + header.initSize);
  });
});

describe.skipIf(!guest?.bzImage)('the guest kernel bzImage', () => {
  it('unpacks its gzip payload on the host and loads the ELF inside', () => {
    checkUnpackedBoot(guest!.bzImage!, 'gzip');
  });
});

describe.skipIf(!guest?.vmlinux)('the guest kernel vmlinux', () => {
  it('loads directly and enters startup_64', () => {
    const vmlinux = readFileSync(guest!.vmlinux!);
    const ram = new Uint8Array(128 * MiB);
    const setup = loadLinux(flatMemory(ram), { kernel: vmlinux, kernelName: guest!.vmlinux, memBytes: ram.length });
    expect(setup.kernel.mode).toBe('elf');
    const startup = findSymbol(vmlinux, 'startup_64');
    expect(startup?.paddr).toBe(setup.cpu.regs.rip);
  });

  it('has asm_exc_page_fault in its symbol table, inside the kernel text', () => {
    const vmlinux = readFileSync(guest!.vmlinux!);
    const sym = findSymbol(vmlinux, 'asm_exc_page_fault');
    expect(sym).toBeDefined();
    expect(sym!.value >> 32n).toBe(0xffffffffn);
    const elf = parseElf(vmlinux, 'vmlinux');
    const text = elf.loads.find((s) => sym!.value >= s.vaddr && sym!.value < s.vaddr + BigInt(s.memsz))!;
    expect(sym!.paddr).toBe(text.paddr + Number(sym!.value - text.vaddr));
  });

  it.skipIf(!guest?.bzImage)('matches the ELF inside its bzImage', () => {
    const vmlinux = parseElf(readFileSync(guest!.vmlinux!), 'vmlinux');
    const { unpacked } = checkUnpackedBoot(guest!.bzImage!, 'gzip');
    const inner = parseElf(unpacked, 'payload');
    expect(inner.entry).toBe(vmlinux.entry);
    expect(inner.loads.map((s) => [s.paddr, s.memsz])).toEqual(vmlinux.loads.map((s) => [s.paddr, s.memsz]));
  });
});
