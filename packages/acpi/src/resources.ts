/**
 * Resource data (ACPI 6.5 §6.4): the descriptors of a `ResourceTemplate () { ... }`, as iasl encodes them.
 * A template is a Buffer of descriptors closed by an End Tag whose checksum byte is 0 ("treat as summing
 * to zero"), which is what iasl emits.
 */
import { type AmlTerm, buffer } from './aml.js';
import { assertUint, concat, dataView } from './bytes.js';

/** First byte of each descriptor: small ones carry their length in bits 2-0, large ones are followed by a u16 length. */
export const ResourceTag = {
  Io: 0x47,
  FixedIo: 0x4b,
  EndTag: 0x79,
  Memory32Fixed: 0x86,
  DWordAddressSpace: 0x87,
  ExtendedInterrupt: 0x89,
  QWordAddressSpace: 0x8a,
} as const;

export function resourceTemplate(descriptors: readonly Uint8Array[]): AmlTerm {
  return buffer(concat([...descriptors, Uint8Array.of(ResourceTag.EndTag, 0)]));
}

function large(tag: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + body.length);
  out[0] = tag;
  dataView(out).setUint16(1, body.length, true);
  out.set(body, 3);
  return out;
}

export interface IoOptions {
  min: number;
  /** Defaults to `min`: a fixed range. */
  max?: number;
  alignment?: number;
  length: number;
  /** Decode16 (all 16 address bits) unless false (Decode10). */
  decode16?: boolean;
}

/** IO (Decode16, min, max, alignment, length): I/O port descriptor (§6.4.2.5). */
export function io({ min, max = min, alignment = 1, length, decode16 = true }: IoOptions): Uint8Array {
  assertUint(min, 16, 'IO minimum');
  assertUint(max, 16, 'IO maximum');
  assertUint(alignment, 8, 'IO alignment');
  assertUint(length, 8, 'IO length');
  const out = Uint8Array.of(ResourceTag.Io, decode16 ? 1 : 0, 0, 0, 0, 0, alignment, length);
  const dv = dataView(out);
  dv.setUint16(2, min, true);
  dv.setUint16(4, max, true);
  return out;
}

/** FixedIO (base, length): fixed-location I/O port descriptor (§6.4.2.6), 10-bit decode. */
export function fixedIo(base: number, length: number): Uint8Array {
  if (!Number.isInteger(base) || base < 0 || base > 0x3ff) throw new RangeError(`FixedIO base ${base} is not a 10-bit port`);
  assertUint(length, 8, 'FixedIO length');
  return Uint8Array.of(ResourceTag.FixedIo, base & 0xff, base >> 8, length);
}

/** Memory32Fixed (ReadWrite|ReadOnly, base, length) (§6.4.3.4). */
export function memory32Fixed(base: number, length: number, writable = true): Uint8Array {
  assertUint(base, 32, 'Memory32Fixed base');
  assertUint(length, 32, 'Memory32Fixed length');
  const body = new Uint8Array(9);
  const dv = dataView(body);
  body[0] = writable ? 1 : 0;
  dv.setUint32(1, base, true);
  dv.setUint32(5, length, true);
  return large(ResourceTag.Memory32Fixed, body);
}

export type MemoryCacheability = 'noncacheable' | 'cacheable' | 'writecombining' | 'prefetchable';
const CACHEABILITY: Record<MemoryCacheability, number> = { noncacheable: 0, cacheable: 1, writecombining: 2, prefetchable: 3 };

export interface AddressSpaceMemoryOptions {
  min: number;
  length: number;
  /** Defaults to min + length - 1. */
  max?: number;
  granularity?: number;
  translation?: number;
  writable?: boolean;
  cacheable?: MemoryCacheability;
  /** ResourceConsumer (default) or ResourceProducer. */
  consumer?: boolean;
}

/** General flags: consumer (bit 0), positive decode (bit 1 clear), MinFixed (bit 2), MaxFixed (bit 3). */
const generalFlags = (consumer: boolean) => (consumer ? 0x01 : 0) | 0x04 | 0x08;
/** Memory type-specific flags: _RW (bit 0), _MEM (bits 2-1), AddressRangeMemory. */
const memoryFlags = (writable: boolean, cacheable: MemoryCacheability) => (writable ? 1 : 0) | (CACHEABILITY[cacheable] << 1);

function addressSpaceFields(o: AddressSpaceMemoryOptions) {
  const { min, length, max = min + length - 1, granularity = 0, translation = 0 } = o;
  return [granularity, min, max, translation, length];
}

/** DWordMemory (consumer, PosDecode, MinFixed, MaxFixed, ...) (§6.4.3.5.2). */
export function dwordMemory(o: AddressSpaceMemoryOptions): Uint8Array {
  const fields = addressSpaceFields(o);
  const body = new Uint8Array(3 + 5 * 4);
  body[0] = 0; // memory range
  body[1] = generalFlags(o.consumer ?? true);
  body[2] = memoryFlags(o.writable ?? true, o.cacheable ?? 'noncacheable');
  const dv = dataView(body);
  fields.forEach((v, k) => {
    assertUint(v, 32, 'DWordMemory field');
    dv.setUint32(3 + 4 * k, v, true);
  });
  return large(ResourceTag.DWordAddressSpace, body);
}

/** QWordMemory (consumer, PosDecode, MinFixed, MaxFixed, ...) (§6.4.3.5.1), for ranges above 4 GiB. */
export function qwordMemory(o: AddressSpaceMemoryOptions): Uint8Array {
  const fields = addressSpaceFields(o);
  const body = new Uint8Array(3 + 5 * 8);
  body[0] = 0;
  body[1] = generalFlags(o.consumer ?? true);
  body[2] = memoryFlags(o.writable ?? true, o.cacheable ?? 'noncacheable');
  const dv = dataView(body);
  fields.forEach((v, k) => {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`QWordMemory field ${v} is not a valid address`);
    dv.setBigUint64(3 + 8 * k, BigInt(v), true);
  });
  return large(ResourceTag.QWordAddressSpace, body);
}

export interface InterruptOptions {
  /** One or more GSIs. */
  irqs: readonly number[];
  trigger: 'edge' | 'level';
  polarity: 'high' | 'low';
  shared?: boolean;
  wakeCapable?: boolean;
  /** ResourceConsumer (default) or ResourceProducer. */
  consumer?: boolean;
}

/** Interrupt (consumer, Edge|Level, ActiveHigh|ActiveLow, Exclusive|Shared) { irqs }: extended interrupt descriptor (§6.4.3.6). */
export function interrupt(o: InterruptOptions): Uint8Array {
  const { irqs, trigger, polarity, shared = false, wakeCapable = false, consumer = true } = o;
  if (irqs.length < 1 || irqs.length > 255) throw new RangeError('an Interrupt descriptor lists 1 to 255 interrupts');
  const body = new Uint8Array(2 + 4 * irqs.length);
  body[0] =
    (consumer ? 0x01 : 0) | (trigger === 'edge' ? 0x02 : 0) | (polarity === 'low' ? 0x04 : 0) | (shared ? 0x08 : 0) | (wakeCapable ? 0x10 : 0);
  body[1] = irqs.length;
  const dv = dataView(body);
  irqs.forEach((irq, k) => {
    assertUint(irq, 32, 'interrupt number');
    dv.setUint32(2 + 4 * k, irq, true);
  });
  return large(ResourceTag.ExtendedInterrupt, body);
}
