// Expected bytes are iasl's (ACPICA 20200925, default optimizations) for the ASL in each case's title.
import { describe, expect, it } from 'vitest';
import {
  ONES,
  arg,
  buffer,
  device,
  eisaId,
  eisaIdValue,
  integer,
  method,
  name,
  nameSeg,
  nameString,
  pkg,
  pkgLength,
  ret,
  scope,
  string,
} from '../src/aml.js';
import { dsdtAml } from '../src/dsdt.js';
import { dwordMemory, fixedIo, interrupt, io, memory32Fixed, qwordMemory, resourceTemplate } from '../src/resources.js';
import { hex, unhex } from './helpers.js';

const same = (actual: Uint8Array, iaslHex: string) => expect(hex(actual)).toBe(hex(unhex(iaslHex)));

describe('AML integers and data (iasl)', () => {
  it.each([
    ['Name (INT0, 0x12)', 'INT0', 0x12, '08494e5430 0a12'],
    ['Name (INT1, 0x1234)', 'INT1', 0x1234, '08494e5431 0b3412'],
    ['Name (INT2, 0x12345678)', 'INT2', 0x12345678, '08494e5432 0c78563412'],
    ['Name (INT3, 0x123456789ABCDEF0)', 'INT3', 0x1234_5678_9abc_def0n, '08494e5433 0ef0debc9a78563412'],
    ['Name (INT4, 0xFFFFFFFFFFFFFFFF)', 'INT4', 0xffff_ffff_ffff_ffffn, '08494e5434 ff'],
    ['Name (INT6, 0xFF)', 'INT6', 0xff, '08494e5436 0aff'],
    ['Name (INT7, 0x100)', 'INT7', 0x100, '08494e5437 0b0001'],
    ['Name (STA0, 0x0F)', 'STA0', 0x0f, '0853544130 0a0f'],
  ] as const)('%s', (_asl, seg, value, expected) => {
    same(name(seg, value), expected);
  });

  it('Zero, One and Ones are single opcodes', () => {
    expect(hex(integer(0))).toBe('00');
    expect(hex(integer(1))).toBe('01');
    same(name('INT5', ONES), '08494e5435 ff');
    expect(() => integer(-1)).toThrow(RangeError);
    expect(() => integer(2n ** 64n)).toThrow(RangeError);
    expect(() => integer(2 ** 53)).toThrow(RangeError);
  });

  it('Name (STR0, "hello") and Name (STR1, "")', () => {
    same(name('STR0', 'hello'), '0853545230 0d68656c6c6f00');
    same(name('STR1', string('')), '0853545231 0d00');
  });

  it('Name (BUF0, Buffer () { 1, 2, 3 }), Buffer () { 7 } and Buffer () {}', () => {
    same(name('BUF0', buffer([1, 2, 3])), '0842554630 11060a03010203');
    same(name('BUF1', buffer([7])), '0842554631 11030107');
    same(name('BUF0', buffer([])), '0842554630 110200');
  });

  it('Name (PKG0, Package () { One, "a", Package () { Zero } }) and Package () {}', () => {
    same(name('PKG0', pkg([1, 'a', pkg([0])])), '08504b4730 120a03 01 0d6100 12030100');
    same(name('PKG0', pkg([])), '08504b4730 120200');
  });

  it('Name (_S5, Package () { 5, 5, 0, 0 })', () => {
    same(name('_S5_', pkg([5, 5, 0, 0])), '085f53355f 1208040a050a050000');
  });

  it('EisaId ("PNP0501") and EisaId ("PNP0303")', () => {
    same(eisaId('PNP0501'), '0c41d00501');
    same(eisaId('PNP0303'), '0c41d00303');
    expect(eisaIdValue('PNP0501')).toBe(0x0105d041);
    expect(() => eisaId('pnp0501')).toThrow(RangeError);
  });
});

describe('AML names (iasl)', () => {
  it('pads NameSegs with "_" and rejects invalid ones', () => {
    expect(hex(nameSeg('PS2'))).toBe(hex(nameSeg('PS2_')));
    expect(hex(nameSeg('_SB'))).toBe('5f53425f');
    for (const bad of ['', 'ABCDE', '1ABC', 'ab', 'A.B']) expect(() => nameSeg(bad), bad).toThrow(RangeError);
  });

  it('Name (\\_SB.ABCD, 1): root prefix and DualNamePrefix', () => {
    same(name('\\_SB_.ABCD', 1), '08 5c2e5f53425f41424344 01');
  });

  it('Name (\\_SB.PCI0.ABCD, 1): MultiNamePrefix', () => {
    same(name('\\_SB.PCI0.ABCD', 1), '08 5c2f035f53425f5043493041424344 01');
  });

  it('Scope (\\) { Name (ROOT, 2) }: the root alone is RootChar + NullName', () => {
    same(scope('\\', [name('ROOT', 2)]), '100a5c00 08524f4f54 0a02');
  });

  it('Scope (\\_SB) { Device (PCI0) { Scope (^^_SB.PCI0) { Name (XYZ, 1) } } }: parent prefixes', () => {
    expect(hex(nameString('^^_SB.PCI0'))).toBe('5e5e2e5f53425f50434930');
    same(
      scope('\\_SB', [device('PCI0', [scope('^^_SB.PCI0', [name('XYZ', 1)])])]),
      '10205c5f53425f 5b8218 50434930 1012 5e5e2e5f53425f50434930 08 58595a5f 01',
    );
  });
});

describe('AML methods (iasl)', () => {
  it('Method (_STA, 0, NotSerialized) { Return (0x0F) }', () => {
    same(method('_STA', {}, [ret(0x0f)]), '14095f535441 00 a40a0f');
  });

  it('Method (MTH0, 2, Serialized) { Return (Arg0) }', () => {
    same(method('MTH0', { args: 2, serialized: true }, [ret(arg(0))]), '14084d544830 0a a468');
  });

  it('Method (MTH1, 7, NotSerialized) { Return (One) }', () => {
    same(method('MTH1', { args: 7 }, [ret(1)]), '14084d544831 07 a401');
    expect(() => method('MTH2', { args: 8 }, [])).toThrow(RangeError);
  });
});

describe('PkgLength (iasl)', () => {
  const zeros = (n: number) => '00'.repeat(n);
  it('one byte up to 63 in all, then two and three', () => {
    same(buffer(new Uint8Array(60)), `11 3f 0a3c ${zeros(60)}`);
    same(buffer(new Uint8Array(61)), `11 4104 0a3d ${zeros(61)}`);
    same(buffer(new Uint8Array(0x1000)), `11 860001 0b0010 ${zeros(0x1000)}`);
  });

  it('four bytes past 2^20 - 1, up to 2^28 - 1 (§20.2.4)', () => {
    expect(hex(pkgLength(0xffd))).toBe('4fff'); // 0xfff in all: the largest two-byte length
    expect(hex(pkgLength(0xffe))).toBe('810001'); // 0x1001: three bytes
    expect(hex(pkgLength(0xffffc))).toBe('8fffff'); // 0xfffff: the largest three-byte length
    expect(hex(pkgLength(0xffffd))).toBe('c1000001'); // 0x100001: four bytes
    expect(hex(pkgLength(0xffffffb))).toBe('cfffffff');
    expect(() => pkgLength(0xffffffc)).toThrow(RangeError);
  });
});

describe('resource templates (iasl)', () => {
  it('DWordMemory, QWordMemory, FixedIO and two Interrupt forms, with the EndTag', () => {
    const template = resourceTemplate([
      dwordMemory({ min: 0xd000_0000, length: 0x1000, cacheable: 'cacheable' }),
      qwordMemory({ min: 0x1_0000_0000, length: 0x1_0000_0000 }),
      fixedIo(0x3c0, 1),
      interrupt({ irqs: [20], trigger: 'level', polarity: 'low', shared: true }),
      interrupt({ irqs: [5, 6], trigger: 'level', polarity: 'high' }),
    ]);
    same(
      name('RES0', template),
      `0852455330 1148060a64
       871700 000d03 00000000 000000d0 ff0f00d0 00000000 00100000
       8a2b00 000d01 0000000000000000 0000000001000000 ffffffff01000000 0000000000000000 0000000001000000
       4bc00301
       8906000d0114000000
       890a0001020500000006000000
       7900`,
    );
  });

  it('IO (Decode16, 0x3F8, 0x3F8, 1, 8), Memory32Fixed (ReadWrite, 0xD0000000, 0x1000), Interrupt (..., Edge, ActiveHigh, Exclusive) { 4 }', () => {
    same(io({ min: 0x3f8, length: 8 }), '4701f803f8030108');
    same(memory32Fixed(0xd000_0000, 0x1000), '8609000100 0000d0 00100000');
    same(interrupt({ irqs: [4], trigger: 'edge', polarity: 'high' }), '890600030104000000');
  });
});

describe('the DSDT body (iasl)', () => {
  // DefinitionBlock ("", "DSDT", 2, "HYPE  ", "HYPEDSDT", 1) {
  //   Name (_S5, Package () { 5, 5, 0, 0 })
  //   Scope (_SB) {
  //     Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, Zero) Name (_CRS, ResourceTemplate () {
  //       IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08) Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 } }) }
  //     Device (PS2) { Name (_HID, EisaId ("PNP0303")) Name (_UID, Zero) Name (_CRS, ResourceTemplate () {
  //       IO (Decode16, 0x0060, 0x0060, 0x01, 0x01) IO (Decode16, 0x0064, 0x0064, 0x01, 0x01)
  //       Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 1 } }) }
  //     Device (VR00) { Name (_HID, "LNRO0005") Name (_UID, 0) Name (_CRS, ResourceTemplate () {
  //       Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000) Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 5 } }) }
  //     Device (VR01) { ... 0xD0001000 ... { 6 } }
  //     Device (VR02) { Name (_HID, "LNRO0005") Name (_UID, 2) Name (_CRS, ResourceTemplate () {
  //       QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, 0x100000000, 0x100000FFF, 0, 0x1000)
  //       Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 7 } }) }
  //   }
  // }
  const IASL = `085f53355f1208040a050a050000104c145f53425f5b8231434f4d31085f4849440c41d00501085f55494400085f43525311160a134701f803f8030108
    89060003010400000079005b82395053325f085f4849440c41d00303085f55494400085f435253111e0a1b470160006000010147016400640001018906
    0003010100000079005b823a56523030085f4849440d4c4e524f3030303500085f55494400085f435253111a0a1786090001000000d000100000890600
    03010500000079005b823a56523031085f4849440d4c4e524f3030303500085f55494401085f435253111a0a1786090001001000d00010000089060003
    010600000079005b824e0556523032085f4849440d4c4e524f3030303500085f5549440a02085f435253113c0a398a2b00000d01000000000000000000
    00000001000000ff0f000001000000000000000000000000100000000000008906000301070000007900`;

  it('matches iasl for COM1, the i8042 and three virtio-mmio devices (one above 4 GiB)', () => {
    const aml = dsdtAml({
      serial: { port: 0x3f8, irq: 4 },
      i8042: true,
      virtioMmio: [
        { base: 0xd000_0000, size: 0x1000, irq: 5 },
        { base: 0xd000_1000, size: 0x1000, irq: 6 },
        { base: 0x1_0000_0000, size: 0x1000, irq: 7 },
      ],
    });
    same(aml, IASL);
  });
});
