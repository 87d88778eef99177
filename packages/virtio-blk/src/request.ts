// Turns one descriptor chain (already walked and bounds-checked by the virtqueue) into a validated
// block request, or into the status the guest gets for a malformed one. Everything read here comes from
// the guest: nothing may throw, and every field is copied out of guest memory before it is checked.
//
// Framing (virtio 1.2 §2.6.4, any layout): the device-readable bytes are the 16-byte header followed by
// OUT data or DISCARD/WRITE_ZEROES segments; the device-writable bytes are IN/GET_ID data followed by the
// status byte, which is the last byte of the chain's last descriptor. Descriptor boundaries are free:
// a header split over two descriptors or data sharing a descriptor with the status byte are accepted.

import { type GuestMemory, guestView } from '@hype/guest-memory';
import { type ChainBuffer, ChainReader, ChainWriter } from '@hype/virtio';
import {
  BLK_ID_BYTES,
  BlkRequestType,
  BlkStatus,
  DISCARD_SEGMENT,
  REQUEST_HEADER,
  SECTOR_SIZE,
  STATUS_SIZE,
  WRITE_ZEROES_FLAG_UNMAP,
} from './layout.js';

/** What request validation needs to know about the device. */
export interface BlkRequestLimits {
  /** Disk capacity in 512-byte sectors. */
  capacitySectors: bigint;
  readOnly: boolean;
  /** VIRTIO_BLK_F_DISCARD offered. */
  discard: boolean;
  /** VIRTIO_BLK_F_WRITE_ZEROES offered. */
  writeZeroes: boolean;
  maxDiscardSectors: number;
  maxDiscardSeg: number;
  maxWriteZeroesSectors: number;
  maxWriteZeroesSeg: number;
  /** Most descriptors in one request: seg_max data segments plus the header and the status. */
  maxDescriptors: number;
}

/** A byte range of the disk, already checked against the capacity. */
export interface DiskRange {
  offset: number;
  length: number;
}

export type BlkRequest =
  | { kind: 'in'; offset: number; length: number; data: Uint8Array[]; status: Uint8Array }
  | { kind: 'out'; offset: number; length: number; data: Uint8Array[]; status: Uint8Array }
  | { kind: 'flush'; status: Uint8Array }
  | { kind: 'get-id'; data: Uint8Array[]; status: Uint8Array }
  | { kind: 'discard'; ranges: DiskRange[]; status: Uint8Array }
  | { kind: 'write-zeroes'; ranges: DiskRange[]; unmap: boolean; status: Uint8Array };

/** A request refused before any I/O: the status byte to write and why (for the log). */
export interface RejectedRequest {
  kind: 'rejected';
  code: typeof BlkStatus.IOERR | typeof BlkStatus.UNSUPP;
  reason: string;
  status: Uint8Array;
}

/** A chain with no usable status byte: nothing can be written back; complete it with used length 0. */
export interface UnanswerableRequest {
  kind: 'unanswerable';
  reason: string;
}

/** What one descriptor chain is, as a block request: valid, refused with a status, or unanswerable. */
export type ParsedRequest = BlkRequest | RejectedRequest | UnanswerableRequest;

const EMPTY = new Uint8Array(0);

/** Validates one chain whose buffers are given as guest addresses (views are taken from `mem`). */
export function parseRequest(chain: readonly ChainBuffer[], mem: GuestMemory, limits: BlkRequestLimits): ParsedRequest {
  const views = chain.map((b) => (b.len === 0 ? EMPTY : guestView(mem, b.addr, b.len)));
  return parseRequestViews(chain, views, limits);
}

/**
 * Validates one chain given its buffers and a live view of each (`undefined` for a buffer outside guest
 * memory), as a virtqueue that already mapped the chain provides them.
 */
export function parseRequestViews(chain: readonly ChainBuffer[], views: readonly (Uint8Array | undefined)[], limits: BlkRequestLimits): ParsedRequest {
  // The status byte: last byte of the last descriptor, which must be device-writable and non-empty.
  const lastIndex = chain.length - 1;
  const last = chain[lastIndex];
  if (last === undefined) return { kind: 'unanswerable', reason: 'empty descriptor chain' };
  if (!last.writable) return { kind: 'unanswerable', reason: 'last descriptor (status) is not device-writable' };
  if (last.len < STATUS_SIZE) return { kind: 'unanswerable', reason: 'status descriptor is empty' };
  const lastView = views[lastIndex];
  if (lastView === undefined || lastView.byteLength !== last.len) return { kind: 'unanswerable', reason: 'status byte outside guest memory' };
  const status = lastView.subarray(last.len - STATUS_SIZE);

  const reject = (code: RejectedRequest['code'], reason: string): RejectedRequest => ({ kind: 'rejected', code, reason, status });
  const ioerr = (reason: string) => reject(BlkStatus.IOERR, reason);
  if (chain.length > limits.maxDescriptors) {
    return ioerr(`${chain.length} descriptors exceed seg_max ${limits.maxDescriptors - 2} plus header and status`);
  }

  // Views of the device-readable part and of the device-writable part (which ends with the status byte).
  const readable: Uint8Array[] = [];
  const writable: Uint8Array[] = [];
  let seenWritable = false;
  for (let i = 0; i < chain.length; i++) {
    const b = chain[i];
    if (b.writable) seenWritable = true;
    else if (seenWritable) return ioerr(`descriptor ${i} is device-readable after a device-writable one`);
    if (b.len === 0) continue;
    const v = views[i];
    if (v === undefined || v.byteLength !== b.len) return ioerr(`descriptor ${i} [0x${b.addr.toString(16)}, +${b.len}) is outside guest memory`);
    (b.writable ? writable : readable).push(v);
  }
  // Cursors as @hype/virtio's DescriptorChain gives them: the reader never sees a device-writable byte,
  // and the writer hands out data views that stop before the status byte.
  const reader = new ChainReader(readable);
  const writer = new ChainWriter(writable);

  // Copied once: the guest may rewrite its buffer while we look at it.
  const header = reader.readExact(REQUEST_HEADER.SIZE);
  if (header === undefined) return ioerr(`fewer than ${REQUEST_HEADER.SIZE} device-readable header bytes`);
  const hv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const type = hv.getUint32(REQUEST_HEADER.type, true);
  const sector = hv.getBigUint64(REQUEST_HEADER.sector, true);
  const readLen = reader.remaining; // what follows the header
  const writeLen = writer.remaining - STATUS_SIZE; // what precedes the status byte

  switch (type) {
    case BlkRequestType.IN: {
      if (readLen !== 0) return ioerr(`IN request with ${readLen} device-readable data bytes`);
      const range = sectorRange(sector, writeLen, limits);
      if (typeof range === 'string') return ioerr(`IN: ${range}`);
      return { kind: 'in', offset: range.offset, length: range.length, data: writer.views(writeLen), status };
    }
    case BlkRequestType.OUT: {
      if (limits.readOnly) return ioerr('OUT request on a read-only disk');
      if (writeLen !== 0) return ioerr(`OUT request with ${writeLen} device-writable data bytes`);
      const range = sectorRange(sector, readLen, limits);
      if (typeof range === 'string') return ioerr(`OUT: ${range}`);
      return { kind: 'out', offset: range.offset, length: range.length, data: reader.views(), status };
    }
    case BlkRequestType.FLUSH:
      // The driver MUST set sector 0 (§5.2.6.1); Linux always does. Data is only a SHOULD NOT: ignored.
      if (sector !== 0n) return ioerr(`FLUSH request with sector ${sector} (must be 0)`);
      return { kind: 'flush', status };
    case BlkRequestType.GET_ID:
      if (readLen !== 0) return ioerr(`GET_ID request with ${readLen} device-readable data bytes`);
      if (writeLen < BLK_ID_BYTES) return ioerr(`GET_ID buffer of ${writeLen} bytes (needs ${BLK_ID_BYTES})`);
      return { kind: 'get-id', data: writer.views(writeLen), status };
    case BlkRequestType.DISCARD:
    case BlkRequestType.WRITE_ZEROES: {
      const discard = type === BlkRequestType.DISCARD;
      const name = discard ? 'DISCARD' : 'WRITE_ZEROES';
      if (limits.readOnly) return ioerr(`${name} request on a read-only disk`);
      if (!(discard ? limits.discard : limits.writeZeroes)) return reject(BlkStatus.UNSUPP, `${name} not offered by this disk`);
      if (writeLen !== 0) return ioerr(`${name} request with ${writeLen} device-writable data bytes`);
      return parseSegments(discard, reader, limits, status, reject);
    }
    default:
      return reject(BlkStatus.UNSUPP, `unknown request type ${type}`);
  }
}

function parseSegments(
  discard: boolean,
  data: ChainReader,
  limits: BlkRequestLimits,
  status: Uint8Array,
  reject: (code: RejectedRequest['code'], reason: string) => RejectedRequest,
): BlkRequest | RejectedRequest {
  const name = discard ? 'DISCARD' : 'WRITE_ZEROES';
  const maxSeg = discard ? limits.maxDiscardSeg : limits.maxWriteZeroesSeg;
  const maxSectors = discard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors;
  const dataLen = data.remaining;
  if (dataLen === 0 || dataLen % DISCARD_SEGMENT.SIZE !== 0) {
    return reject(BlkStatus.IOERR, `${name}: ${dataLen} segment bytes is not a positive multiple of ${DISCARD_SEGMENT.SIZE}`);
  }
  const count = dataLen / DISCARD_SEGMENT.SIZE;
  if (count > maxSeg) return reject(BlkStatus.IOERR, `${name}: ${count} segments exceed max ${maxSeg}`);
  // Copied once: the guest may rewrite its buffer while we look at it.
  const bytes = data.readExact(dataLen) as Uint8Array;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const allowedFlags = discard ? 0 : WRITE_ZEROES_FLAG_UNMAP;
  // Unknown flags are UNSUPP (§5.2.6.2) wherever they appear, so they are checked before any range.
  let unmap = count > 0;
  for (let i = 0; i < count; i++) {
    const flags = dv.getUint32(i * DISCARD_SEGMENT.SIZE + DISCARD_SEGMENT.flags, true);
    if ((flags & ~allowedFlags) !== 0) {
      return reject(BlkStatus.UNSUPP, `${name}: segment ${i} has unsupported flags 0x${flags.toString(16)}`);
    }
    if ((flags & WRITE_ZEROES_FLAG_UNMAP) === 0) unmap = false;
  }
  const ranges: DiskRange[] = [];
  for (let i = 0; i < count; i++) {
    const base = i * DISCARD_SEGMENT.SIZE;
    const sector = dv.getBigUint64(base + DISCARD_SEGMENT.sector, true);
    const num = dv.getUint32(base + DISCARD_SEGMENT.numSectors, true);
    if (num > maxSectors) return reject(BlkStatus.IOERR, `${name}: segment ${i} of ${num} sectors exceeds max ${maxSectors}`);
    const range = sectorRange(sector, num * SECTOR_SIZE, limits);
    if (typeof range === 'string') return reject(BlkStatus.IOERR, `${name}: segment ${i}: ${range}`);
    if (range.length > 0) ranges.push(range);
  }
  return discard ? { kind: 'discard', ranges, status } : { kind: 'write-zeroes', ranges, unmap, status };
}

/** Checks a transfer of `length` bytes at `sector` against the capacity; an error string if bad. */
function sectorRange(sector: bigint, length: number, limits: BlkRequestLimits): DiskRange | string {
  if (length % SECTOR_SIZE !== 0) return `data length ${length} is not a multiple of ${SECTOR_SIZE}`;
  // BigInt arithmetic: sector + count cannot wrap the way a u64 sum could.
  const end = sector + BigInt(length / SECTOR_SIZE);
  if (end > limits.capacitySectors) {
    return `sectors [${sector}, ${end}) beyond capacity ${limits.capacitySectors}`;
  }
  // capacity * 512 fits a safe integer (backend sizes are JS numbers), so these conversions are exact.
  return { offset: Number(sector) * SECTOR_SIZE, length };
}
