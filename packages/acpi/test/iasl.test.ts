// ACPICA's own tools as the reference: `iasl -d` must decode every table without complaint, and iasl
// recompiling that disassembly must give back our bytes (all but the checksum and the compiler ID and
// revision, which iasl writes as its own). The RSDP has no table header, so iasl cannot disassemble it;
// its data-table compiler builds one from the field values instead, checksums included, to compare.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type AcpiTables, buildAcpiTables } from '../src/layout.js';
import { SDT_HEADER } from '../src/sdt.js';
import { MINIMAL, TYPICAL } from './fixtures.js';
import { hex, sum8 } from './helpers.js';

const probe = spawnSync('iasl', ['-v'], { encoding: 'utf8' });
const hasIasl = probe.error === undefined && probe.status === 0;
if (!hasIasl) console.warn('iasl not installed (Debian package acpica-tools): skipping the ACPICA cross-checks');

const dir = hasIasl ? mkdtempSync(join(tmpdir(), 'hype-acpi-')) : '';
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function iasl(args: string[]) {
  const r = spawnSync('iasl', args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const tableBytes = (t: AcpiTables, name: string) => {
  const x = t.tables.find((x) => x.name === name)!;
  return t.bytes.subarray(x.offset, x.offset + x.length);
};

/** Disassembles one table; returns the .dsl text. */
function disassemble(file: string, bytes: Uint8Array): string {
  writeFileSync(join(dir, `${file}.dat`), bytes);
  const r = iasl(['-d', `${file}.dat`]);
  expect(r.status, r.output).toBe(0);
  expect(r.output).not.toMatch(/error|warning/i);
  const dsl = readFileSync(join(dir, `${file}.dsl`), 'utf8');
  expect(dsl).not.toMatch(/error|warning|\*\*\*\*/i);
  return dsl;
}

/** Recompiles a disassembly and compares with the original bytes, header checksum and creator fields aside. */
function recompilesTo(file: string, original: Uint8Array): void {
  const r = iasl(['-p', `${file}-rt`, `${file}.dsl`]);
  expect(r.status, r.output).toBe(0);
  expect(r.output).toMatch(/0 Errors, 0 Warnings/);
  const rebuilt = new Uint8Array(readFileSync(join(dir, `${file}-rt.aml`)));
  expect(sum8(rebuilt)).toBe(0);
  const masked = (b: Uint8Array) => {
    const c = Uint8Array.from(b);
    c[SDT_HEADER.checksum] = 0;
    c.fill(0, SDT_HEADER.creatorId, SDT_HEADER.creatorRevision + 4);
    return hex(c);
  };
  expect(masked(rebuilt)).toBe(masked(original));
}

describe.skipIf(!hasIasl)('iasl (ACPICA) decodes the tables', () => {
  for (const [label, options] of [
    ['typical', TYPICAL],
    ['minimal', MINIMAL],
  ] as const) {
    const t = buildAcpiTables(options);
    const file = (name: string) => `${label}-${name.toLowerCase()}`;

    it(`${label}: XSDT`, () => {
      const dsl = disassemble(file('XSDT'), tableBytes(t, 'XSDT'));
      expect(dsl).toContain('Signature : "XSDT"');
      ['FACP', 'APIC'].forEach((name, k) => {
        const address = t.tables.find((x) => x.name === name)!.address;
        expect(dsl).toMatch(new RegExp(`ACPI Table Address +${k} : ${address.toString(16).toUpperCase().padStart(16, '0')}`));
      });
      recompilesTo(file('XSDT'), tableBytes(t, 'XSDT'));
    });

    it(`${label}: FADT`, () => {
      const dsl = disassemble(file('FACP'), tableBytes(t, 'FACP'));
      expect(dsl).toContain('Table Length : 00000114');
      expect(dsl).toMatch(/Hardware Reduced \(V5\) : 1/);
      expect(dsl).toMatch(/FADT Minor Revision : 05/);
      const dsdt = t.tables.find((x) => x.name === 'DSDT')!.address;
      expect(dsl).toContain(`DSDT Address : ${dsdt.toString(16).toUpperCase().padStart(16, '0')}`);
      const port = options.sleepControlPort.toString(16).toUpperCase().padStart(16, '0');
      expect(dsl).toMatch(new RegExp(`Sleep Control Register : \\[Generic Address Structure\\][^]*?Space ID : 01 \\[SystemIO\\][^]*?Bit Width : 08[^]*?Address : ${port}`));
      expect(dsl).toMatch(/CMOS RTC Not Present \(V5\) : 1/);
      expect(dsl).toMatch(new RegExp(`8042 Present on ports 60/64 \\(V2\\) : ${options.i8042 ? 1 : 0}`));
      expect(dsl).toMatch(new RegExp(`Reset Register Supported \\(V2\\) : ${options.reset ? 1 : 0}`));
      recompilesTo(file('FACP'), tableBytes(t, 'FACP'));
    });

    it(`${label}: MADT`, () => {
      const dsl = disassemble(file('APIC'), tableBytes(t, 'APIC'));
      expect(dsl).toContain('Local Apic Address : FEE00000');
      expect(dsl).toMatch(/PC-AT Compatibility : 0/);
      expect(dsl.match(/Subtable Type : 00 \[Processor Local APIC\]/g)).toHaveLength(options.cpus);
      expect(dsl.match(/Subtable Type : 01 \[I\/O APIC\]/g)).toHaveLength(1);
      expect(dsl).toMatch(/Subtable Type : 02 \[Interrupt Source Override\][^]*?Source : 00[^]*?Interrupt : 00000002/);
      recompilesTo(file('APIC'), tableBytes(t, 'APIC'));
    });

    it(`${label}: DSDT`, () => {
      const dsl = disassemble(file('DSDT'), tableBytes(t, 'DSDT'));
      const devices = options.virtioMmio ?? [];
      expect(dsl.match(/Name \(_HID, "LNRO0005"\)/g) ?? []).toHaveLength(devices.length);
      for (const d of devices) {
        expect(dsl).toContain(`0x${d.base.toString(16).toUpperCase()},         // Address Base`);
        expect(dsl).toMatch(new RegExp(`Interrupt \\(ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, \\)\\s*\\{\\s*0x${d.irq.toString(16).toUpperCase().padStart(8, '0')},`));
      }
      expect(dsl.includes('EisaId ("PNP0501")')).toBe(options.serial !== undefined);
      expect(dsl.includes('EisaId ("PNP0303")')).toBe(options.i8042 === true);
      expect(dsl).toMatch(/Name \(_S5, Package \(0x04\)\s*\/\/ _S5_: S5 System State\s*\{\s*0x05,\s*0x05,\s*Zero,\s*Zero\s*\}\)/);
      recompilesTo(file('DSDT'), tableBytes(t, 'DSDT'));
    });

    it(`${label}: RSDP, as iasl's data-table compiler builds it from the same fields`, () => {
      const xsdt = t.tables.find((x) => x.name === 'XSDT')!.address;
      const source = [
        '[0008]                          Signature : "RSD PTR "',
        '[0001]                           Checksum : 00',
        '[0006]                             Oem ID : "HYPE  "',
        '[0001]                           Revision : 02',
        '[0004]                       RSDT Address : 00000000',
        '[0004]                             Length : 00000024',
        `[0008]                       XSDT Address : ${xsdt.toString(16).toUpperCase().padStart(16, '0')}`,
        '[0001]                  Extended Checksum : 00',
        '[0003]                           Reserved : 000000',
        '',
      ].join('\n');
      writeFileSync(join(dir, `${file('RSDP')}.asl`), source);
      const r = iasl([`${file('RSDP')}.asl`]);
      expect(r.status, r.output).toBe(0);
      expect(r.output).toMatch(/0 Errors, 0 Warnings/);
      const rebuilt = new Uint8Array(readFileSync(join(dir, `${file('RSDP')}.aml`)));
      expect(hex(rebuilt)).toBe(hex(tableBytes(t, 'RSDP')));
    });
  }
});
