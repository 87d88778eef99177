import { describe, expect, it } from 'vitest';
import { bootparam } from '@hype/linux-loader';
import { cProgram } from '../../../scripts/test/c-values.js';

const {
  BOOT_PARAMS,
  BOOT_PARAMS_E820_TABLE,
  BOOT_PARAMS_HDR,
  BOOT_PARAMS_SIZE,
  E820_ENTRY,
  E820_ENTRY_SIZE,
  SETUP_HEADER,
  SETUP_HEADER_KNOWN_END,
} = bootparam;

describe('boot_params offsets (bootparam.h comments and boot.rst tables)', () => {
  it('places the fields a loader writes where the header says', () => {
    expect(BOOT_PARAMS.acpi_rsdp_addr.offset).toBe(0x070);
    expect(BOOT_PARAMS.ext_ramdisk_image.offset).toBe(0x0c0);
    expect(BOOT_PARAMS.ext_ramdisk_size.offset).toBe(0x0c4);
    expect(BOOT_PARAMS.ext_cmd_line_ptr.offset).toBe(0x0c8);
    expect(BOOT_PARAMS.alt_mem_k.offset).toBe(0x1e0);
    expect(BOOT_PARAMS.e820_entries.offset).toBe(0x1e8);
    expect(BOOT_PARAMS.sentinel.offset).toBe(0x1ef);
    expect(BOOT_PARAMS_HDR).toBe(0x1f1);
    expect(BOOT_PARAMS_E820_TABLE).toBe(0x2d0);
    expect(BOOT_PARAMS_SIZE).toBe(0x1000);
    expect(E820_ENTRY_SIZE).toBe(20);
  });

  it('has the setup header fields at the boot.rst offsets, contiguous and packed', () => {
    expect(SETUP_HEADER.setup_sects.offset).toBe(0x1f1);
    expect(SETUP_HEADER.boot_flag.offset).toBe(0x1fe);
    expect(SETUP_HEADER.header.offset).toBe(0x202);
    expect(SETUP_HEADER.version.offset).toBe(0x206);
    expect(SETUP_HEADER.type_of_loader.offset).toBe(0x210);
    expect(SETUP_HEADER.loadflags.offset).toBe(0x211);
    expect(SETUP_HEADER.code32_start.offset).toBe(0x214);
    expect(SETUP_HEADER.ramdisk_image.offset).toBe(0x218);
    expect(SETUP_HEADER.heap_end_ptr.offset).toBe(0x224);
    expect(SETUP_HEADER.cmd_line_ptr.offset).toBe(0x228);
    expect(SETUP_HEADER.initrd_addr_max.offset).toBe(0x22c);
    expect(SETUP_HEADER.kernel_alignment.offset).toBe(0x230);
    expect(SETUP_HEADER.xloadflags.offset).toBe(0x236);
    expect(SETUP_HEADER.cmdline_size.offset).toBe(0x238);
    expect(SETUP_HEADER.payload_offset.offset).toBe(0x248);
    expect(SETUP_HEADER.pref_address.offset).toBe(0x258);
    expect(SETUP_HEADER.init_size.offset).toBe(0x260);
    expect(SETUP_HEADER.kernel_info_offset.offset).toBe(0x268);
    // Packed: each field starts where the previous one ends, and the last one ends at 0x26c.
    const fields = Object.values(SETUP_HEADER).sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < fields.length; i++) expect(fields[i].offset).toBe(fields[i - 1].offset + fields[i - 1].size);
    const last = fields[fields.length - 1];
    expect(last.offset + last.size).toBe(SETUP_HEADER_KNOWN_END);
  });
});

// The strongest check: compile offsetof()/sizeof() against the system's own uapi bootparam.h.
const bootparamH = cProgram({ check: 'the offsetof() comparison in bootparam.test.ts', includes: ['asm/bootparam.h'] });

describe.skipIf(!bootparamH.canCompile)('against the kernel uapi header, compiled', () => {
  it('matches offsetof and sizeof for every named field', () => {
    const exprs: Record<string, string> = {};
    const P = (n: string, o: string, s: string) => {
      exprs[`${n}:offset`] = o;
      exprs[`${n}:size`] = s;
    };
    for (const name of Object.keys(SETUP_HEADER)) {
      P(`hdr.${name}`, `offsetof(struct boot_params, hdr.${name})`, `sizeof(((struct boot_params*)0)->hdr.${name})`);
    }
    for (const name of Object.keys(BOOT_PARAMS)) {
      P(name, `offsetof(struct boot_params, ${name})`, `sizeof(((struct boot_params*)0)->${name})`);
    }
    for (const name of Object.keys(E820_ENTRY)) {
      P(`e820.${name}`, `offsetof(struct boot_e820_entry, ${name})`, `sizeof(((struct boot_e820_entry*)0)->${name})`);
    }
    P('hdr', 'offsetof(struct boot_params, hdr)', 'sizeof(struct setup_header)');
    P('e820_table', 'offsetof(struct boot_params, e820_table)', 'sizeof(struct boot_e820_entry)');
    P('boot_params', '0', 'sizeof(struct boot_params)');
    const c = bootparamH.values(exprs);
    const got = (n: string) => ({ offset: c[`${n}:offset`], size: c[`${n}:size`] });
    for (const [name, f] of Object.entries(SETUP_HEADER)) expect(got(`hdr.${name}`), name).toEqual({ offset: f.offset, size: f.size });
    for (const [name, f] of Object.entries(BOOT_PARAMS)) expect(got(name), name).toEqual({ offset: f.offset, size: f.size });
    for (const [name, f] of Object.entries(E820_ENTRY)) expect(got(`e820.${name}`), name).toEqual({ offset: f.offset, size: f.size });
    expect(got('hdr')).toEqual({ offset: BOOT_PARAMS_HDR, size: SETUP_HEADER_KNOWN_END - BOOT_PARAMS_HDR });
    expect(got('e820_table')).toEqual({ offset: BOOT_PARAMS_E820_TABLE, size: E820_ENTRY_SIZE });
    expect(got('boot_params').size).toBe(BOOT_PARAMS_SIZE);
  });
});

describe('readField / writeField', () => {
  it('round-trips every width, little endian', () => {
    const dv = new DataView(new ArrayBuffer(16));
    bootparam.writeField(dv, { offset: 0, size: 8 }, 0x1_2345_6789);
    expect(new Uint8Array(dv.buffer, 0, 8)).toEqual(new Uint8Array([0x89, 0x67, 0x45, 0x23, 1, 0, 0, 0]));
    expect(bootparam.readField(dv, { offset: 0, size: 8 })).toBe(0x1_2345_6789);
    bootparam.writeField(dv, { offset: 8, size: 2 }, 0xaa55);
    expect([dv.getUint8(8), dv.getUint8(9)]).toEqual([0x55, 0xaa]);
  });

  it('refuses values that do not fit', () => {
    const dv = new DataView(new ArrayBuffer(8));
    expect(() => bootparam.writeField(dv, { offset: 0, size: 1 }, 256)).toThrow(/does not fit/);
    expect(() => bootparam.writeField(dv, { offset: 0, size: 4 }, 2 ** 32)).toThrow(/does not fit/);
    expect(() => bootparam.writeField(dv, { offset: 0, size: 4 }, -1)).toThrow(/does not fit/);
  });
});
