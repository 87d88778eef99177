#!/usr/bin/env node
// Boot a kernel from the loader's output in the Unicorn CPU emulator: a check of the whole boot setup
// (entry state, page tables, GDT, zero page, e820, MP table, initrd) on machines without /dev/kvm.
// Unicorn has no devices: the kernel runs until it waits for a timer, printing through the 8250 at 0x3f8
// with `earlyprintk=serial`, which is enough to see Linux parse the e820 map, the MP table and the initrd.
//
// Needs: `pnpm --filter @hype/linux-loader build`, and Python 3 with Unicorn 2 (`pip install unicorn`).
// Usage: node tools/emulate-boot.mjs KERNEL [--initrd FILE] [--mem MIB] [--cpus N] [--cmdline "..."]
//          [--no-unpack] [--insns N] [--python PATH]
// xz payloads are unpacked with the `xz` command here (a test-only injected decompressor).

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('.', import.meta.url));
const { flatMemory } = await import(join(here, '../dist/index.js'));
const { loadLinuxFiles } = await import(join(here, '../dist/node.js'));

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    initrd: { type: 'string' },
    mem: { type: 'string', default: '256' },
    cpus: { type: 'string', default: '2' },
    cmdline: { type: 'string', default: 'earlyprintk=serial,ttyS0,115200 console=ttyS0 lpj=5000000 apic=verbose' },
    'no-unpack': { type: 'boolean', default: false },
    insns: { type: 'string', default: '3000000000' },
    python: { type: 'string', default: 'python3' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node tools/emulate-boot.mjs KERNEL [--initrd FILE] [--mem MIB] [--cpus N] [--cmdline "..."]');
  process.exit(2);
}
const memBytes = Number(values.mem) * 2 ** 20;
const ram = new Uint8Array(memBytes);
const setup = loadLinuxFiles(flatMemory(ram), {
  kernelPath: positionals[0],
  initrdPath: values.initrd,
  memBytes,
  cpus: Number(values.cpus),
  cmdline: values.cmdline,
  unpack: !values['no-unpack'],
  decompressors: { xz: (data) => execFileSync('xz', ['-dc'], { input: data, maxBuffer: 2 ** 30 }) },
});
console.error('[emulate-boot] kernel', setup.kernel);
console.error('[emulate-boot] initrd', setup.initrd ?? 'none');

const dir = mkdtempSync(join(tmpdir(), 'hype-emulate-'));
try {
  writeFileSync(join(dir, 'ram.bin'), ram);
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ cpu: setup.cpu }));
  const run = spawnSync(values.python, [join(here, 'emulate-boot.py'), join(dir, 'ram.bin'), join(dir, 'state.json'), values.insns], {
    stdio: 'inherit',
  });
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
