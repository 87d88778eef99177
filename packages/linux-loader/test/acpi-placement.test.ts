import { describe, expect, it } from 'vitest';
import { LAYOUT, LoaderError, bootparam, flatMemory, loadLinux, readE820 } from '@hype/linux-loader';
import { smallVmlinux } from './fixtures.js';

const MiB = 2 ** 20;

describe('ACPI tables placement', () => {
  it('writes the tables at LAYOUT.acpiTables, in a reserved e820 range, and points boot_params at the RSDP', () => {
    const ram = new Uint8Array(64 * MiB);
    const tables = new Uint8Array(300).map((_, i) => (i * 13 + 1) & 0xff);
    const setup = loadLinux(flatMemory(ram), { kernel: smallVmlinux(), memBytes: ram.length, acpi: { bytes: tables, rsdpAddr: LAYOUT.acpiTables } });
    expect(ram.subarray(LAYOUT.acpiTables, LAYOUT.acpiTables + tables.length)).toEqual(tables);
    const zeroPage = new DataView(ram.buffer, LAYOUT.zeroPage, 4096);
    expect(bootparam.readField(zeroPage, bootparam.BOOT_PARAMS.acpi_rsdp_addr)).toBe(LAYOUT.acpiTables);
    const covering = readE820(ram.subarray(LAYOUT.zeroPage, LAYOUT.zeroPage + 4096)).find(
      (e) => e.addr <= LAYOUT.acpiTables && LAYOUT.acpiTables + tables.length <= e.addr + e.size,
    );
    expect(covering?.type).toBe(bootparam.E820_RESERVED);
    expect(setup.mpTable.cpus).toBe(1); // the MP table stays, for kernels without ACPI
  });

  it('leaves acpi_rsdp_addr 0 without tables, and refuses tables that do not fit the area', () => {
    const ram = new Uint8Array(64 * MiB);
    loadLinux(flatMemory(ram), { kernel: smallVmlinux(), memBytes: ram.length });
    expect(bootparam.readField(new DataView(ram.buffer, LAYOUT.zeroPage, 4096), bootparam.BOOT_PARAMS.acpi_rsdp_addr)).toBe(0);
    const tooBig = new Uint8Array(LAYOUT.acpiTablesEnd - LAYOUT.acpiTables + 1);
    expect(() => loadLinux(flatMemory(new Uint8Array(64 * MiB)), { kernel: smallVmlinux(), memBytes: 64 * MiB, acpi: { bytes: tooBig, rsdpAddr: LAYOUT.acpiTables } })).toThrow(LoaderError);
  });
});
