// Test-side "driver": guest RAM over a Uint8Array and builders for virtio-blk request chains.
import type { BlockBackend, BlkRequestLimits, ChainBuffer, GuestMemory } from '../src/index.js';
import { DISCARD_SEGMENT, REQUEST_HEADER, defaultLimits, parseRequest, requestLimitsFor, serveChain, writeStatus } from '../src/index.js';

export class TestRam implements GuestMemory {
  readonly bytes: Uint8Array;
  private next: number;

  constructor(
    size = 1 << 20,
    readonly base = 0,
  ) {
    this.bytes = new Uint8Array(size);
    this.next = base + 0x1000;
  }

  view(gpa: number, length: number): Uint8Array | undefined {
    const start = gpa - this.base;
    if (!Number.isSafeInteger(start) || start < 0 || length < 0 || start + length > this.bytes.length) return undefined;
    return this.bytes.subarray(start, start + length);
  }

  /** A fresh guest-physical range of `len` bytes (16-byte aligned). */
  alloc(len: number): number {
    const addr = this.next;
    this.next += Math.max(16, (len + 15) & ~15);
    if (this.next > this.base + this.bytes.length) throw new Error('TestRam exhausted');
    return addr;
  }

  /** A readable or writable buffer holding `content` (or `len` bytes of `fill`). */
  buffer(content: Uint8Array | number, writable: boolean, fill = 0): ChainBuffer {
    const len = typeof content === 'number' ? content : content.length;
    const addr = this.alloc(len);
    const v = this.view(addr, len) as Uint8Array;
    if (typeof content === 'number') v.fill(fill);
    else v.set(content);
    return { addr, len, writable };
  }

  read(b: ChainBuffer): Uint8Array {
    return (this.view(b.addr, b.len) as Uint8Array).slice();
  }
}

export function headerBytes(type: number, sector: bigint | number = 0n, ioprio = 0): Uint8Array {
  const h = new Uint8Array(REQUEST_HEADER.SIZE);
  const dv = new DataView(h.buffer);
  dv.setUint32(REQUEST_HEADER.type, type, true);
  dv.setUint32(REQUEST_HEADER.ioprio, ioprio, true);
  dv.setBigUint64(REQUEST_HEADER.sector, BigInt(sector), true);
  return h;
}

export interface Segment {
  sector: bigint | number;
  numSectors: number;
  flags?: number;
}

export function segmentBytes(segs: Segment[]): Uint8Array {
  const out = new Uint8Array(segs.length * DISCARD_SEGMENT.SIZE);
  const dv = new DataView(out.buffer);
  segs.forEach((s, i) => {
    const b = i * DISCARD_SEGMENT.SIZE;
    dv.setBigUint64(b + DISCARD_SEGMENT.sector, BigInt(s.sector), true);
    dv.setUint32(b + DISCARD_SEGMENT.numSectors, s.numSectors, true);
    dv.setUint32(b + DISCARD_SEGMENT.flags, s.flags ?? 0, true);
  });
  return out;
}

/** The usual Linux framing: header (readable), data (readable for OUT, writable for IN), status (writable). */
export function linuxChain(ram: TestRam, type: number, sector: bigint | number, data?: { bytes: Uint8Array | number; writable: boolean }) {
  const header = ram.buffer(headerBytes(type, sector), false);
  const dataBuf = data ? ram.buffer(data.bytes, data.writable, 0xee) : undefined;
  const status = ram.buffer(1, true, 0xff);
  return { header, data: dataBuf, status, chain: dataBuf ? [header, dataBuf, status] : [header, status] };
}

export interface RunResult {
  /** The byte at the status location afterwards (0xff: never written). */
  status: number;
  usedLen: number;
  problem?: string;
}

export function limitsOf(backend: BlockBackend, overrides: Partial<ReturnType<typeof defaultLimits>> = {}): BlkRequestLimits {
  return requestLimitsFor(backend, { ...defaultLimits(256), ...overrides });
}

export function serialBytes(s: string): Uint8Array {
  const out = new Uint8Array(20);
  out.set(new TextEncoder().encode(s));
  return out;
}

/** Parse + serve + write status, like the device does for one chain. */
export async function run(
  ram: TestRam,
  chain: ChainBuffer[],
  backend: BlockBackend,
  opts: { limits?: BlkRequestLimits; id?: Uint8Array; statusAt?: ChainBuffer } = {},
): Promise<RunResult> {
  const parsed = parseRequest(chain, ram, opts.limits ?? limitsOf(backend));
  const served = await serveChain(parsed, backend, opts.id ?? serialBytes('test-serial'));
  const usedLen = writeStatus(served);
  const st = opts.statusAt ?? chain[chain.length - 1];
  const v = st && st.len > 0 ? ram.view(st.addr + st.len - 1, 1) : undefined;
  return { status: v ? v[0] : -1, usedLen, problem: served.problem };
}

/** Fast byte equality (vitest's deep equality walks big typed arrays element by element). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
