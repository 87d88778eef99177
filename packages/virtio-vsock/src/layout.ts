// Wire layout of the virtio socket device (virtio 1.2 §5.10), in one place. Checked against Linux's
// include/uapi/linux/virtio_vsock.h, virtio_ids.h and vm_sockets.h in test/layout.test.ts.
import { DeviceId } from '@hype/virtio';

/** Device ID of the socket device (§5.10.1). */
export const VIRTIO_ID_VSOCK = DeviceId.VSOCK;

/** Virtqueue indices (§5.10.2). */
export const VsockQueue = {
  /** Device → driver packets (the driver posts device-writable buffers). */
  RX: 0,
  /** Driver → device packets (device-readable buffers). */
  TX: 1,
  /** Device → driver events (struct virtio_vsock_event). */
  EVENT: 2,
} as const;

/**
 * Device feature bits (§5.10.3). None is offered: with no feature bit the device supports stream
 * sockets only (VIRTIO_VSOCK_F_SEQPACKET is not offered; seqpacket is not implemented).
 */
export const VsockFeature = {
  SEQPACKET: 1,
} as const;

/** struct virtio_vsock_config (§5.10.4): one le64; only its low 32 bits are used. */
export const VSOCK_CONFIG = {
  GUEST_CID: 0,
  SIZE: 8,
} as const;

/**
 * struct virtio_vsock_hdr (§5.10.6), packed, little-endian: byte offsets of each field and the size.
 * The payload (`len` bytes, RW only) follows the header in the same chain.
 */
export const VSOCK_HDR = {
  SRC_CID: 0, // le64
  DST_CID: 8, // le64
  SRC_PORT: 16, // le32
  DST_PORT: 20, // le32
  LEN: 24, // le32
  TYPE: 28, // le16
  OP: 30, // le16
  FLAGS: 32, // le32
  BUF_ALLOC: 36, // le32
  FWD_CNT: 40, // le32
  SIZE: 44,
} as const;

/** struct virtio_vsock_event (§5.10.6.6): one le32 `id`. */
export const VSOCK_EVENT = {
  ID: 0,
  SIZE: 4,
} as const;

/** enum virtio_vsock_event_id. */
export const VsockEventId = {
  TRANSPORT_RESET: 0,
} as const;

/** enum virtio_vsock_type. Only STREAM is accepted here. */
export const VsockType = {
  STREAM: 1,
  SEQPACKET: 2,
} as const;

/** enum virtio_vsock_op. */
export const VsockOp = {
  INVALID: 0,
  REQUEST: 1,
  RESPONSE: 2,
  RST: 3,
  SHUTDOWN: 4,
  RW: 5,
  CREDIT_UPDATE: 6,
  CREDIT_REQUEST: 7,
} as const;

/** Highest op value the device understands. */
export const VSOCK_OP_MAX = VsockOp.CREDIT_REQUEST;

/** VIRTIO_VSOCK_OP_SHUTDOWN flags (enum virtio_vsock_shutdown). */
export const VsockShutdown = {
  /** The sender will receive no more data. */
  RCV: 1,
  /** The sender will send no more data. */
  SEND: 2,
  BOTH: 3,
} as const;

/** Well-known CIDs (vm_sockets.h): the host is always 2; 0, 1 and -1U are reserved. */
export const VMADDR_CID_HYPERVISOR = 0;
export const VMADDR_CID_LOCAL = 1;
export const VMADDR_CID_HOST = 2;
export const VMADDR_CID_ANY = 0xffff_ffff;
/** VMADDR_PORT_ANY (-1U). `device.listen(VMADDR_PORT_ANY, ...)` catches ports without their own listener. */
export const VMADDR_PORT_ANY = 0xffff_ffff;

/** A decoded packet header. CIDs are split into their 32-bit halves (the spec zeroes the high halves). */
export interface VsockHeader {
  srcCid: number;
  srcCidHigh: number;
  dstCid: number;
  dstCidHigh: number;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

/** Decode the first VSOCK_HDR.SIZE bytes of `bytes` (which must hold at least that many). */
export function decodeHeader(bytes: Uint8Array, into?: VsockHeader): VsockHeader {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, VSOCK_HDR.SIZE);
  const h = into ?? ({} as VsockHeader);
  h.srcCid = dv.getUint32(VSOCK_HDR.SRC_CID, true);
  h.srcCidHigh = dv.getUint32(VSOCK_HDR.SRC_CID + 4, true);
  h.dstCid = dv.getUint32(VSOCK_HDR.DST_CID, true);
  h.dstCidHigh = dv.getUint32(VSOCK_HDR.DST_CID + 4, true);
  h.srcPort = dv.getUint32(VSOCK_HDR.SRC_PORT, true);
  h.dstPort = dv.getUint32(VSOCK_HDR.DST_PORT, true);
  h.len = dv.getUint32(VSOCK_HDR.LEN, true);
  h.type = dv.getUint16(VSOCK_HDR.TYPE, true);
  h.op = dv.getUint16(VSOCK_HDR.OP, true);
  h.flags = dv.getUint32(VSOCK_HDR.FLAGS, true);
  h.bufAlloc = dv.getUint32(VSOCK_HDR.BUF_ALLOC, true);
  h.fwdCnt = dv.getUint32(VSOCK_HDR.FWD_CNT, true);
  return h;
}

/** The fields of a header to encode; CIDs are 32-bit (the high halves are written as zero unless given). */
export interface VsockHeaderFields {
  srcCid: number;
  dstCid: number;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
  srcCidHigh?: number;
  dstCidHigh?: number;
}

/** Encode a header into the first VSOCK_HDR.SIZE bytes of `out` (a new array by default). */
export function encodeHeader(h: VsockHeaderFields, out: Uint8Array = new Uint8Array(VSOCK_HDR.SIZE)): Uint8Array {
  const dv = new DataView(out.buffer, out.byteOffset, VSOCK_HDR.SIZE);
  dv.setUint32(VSOCK_HDR.SRC_CID, h.srcCid >>> 0, true);
  dv.setUint32(VSOCK_HDR.SRC_CID + 4, (h.srcCidHigh ?? 0) >>> 0, true);
  dv.setUint32(VSOCK_HDR.DST_CID, h.dstCid >>> 0, true);
  dv.setUint32(VSOCK_HDR.DST_CID + 4, (h.dstCidHigh ?? 0) >>> 0, true);
  dv.setUint32(VSOCK_HDR.SRC_PORT, h.srcPort >>> 0, true);
  dv.setUint32(VSOCK_HDR.DST_PORT, h.dstPort >>> 0, true);
  dv.setUint32(VSOCK_HDR.LEN, h.len >>> 0, true);
  dv.setUint16(VSOCK_HDR.TYPE, h.type & 0xffff, true);
  dv.setUint16(VSOCK_HDR.OP, h.op & 0xffff, true);
  dv.setUint32(VSOCK_HDR.FLAGS, h.flags >>> 0, true);
  dv.setUint32(VSOCK_HDR.BUF_ALLOC, h.bufAlloc >>> 0, true);
  dv.setUint32(VSOCK_HDR.FWD_CNT, h.fwdCnt >>> 0, true);
  return out;
}

/** A short name of an op for log lines (`op 9` for unknown ones). */
export function opName(op: number): string {
  switch (op) {
    case VsockOp.INVALID:
      return 'INVALID';
    case VsockOp.REQUEST:
      return 'REQUEST';
    case VsockOp.RESPONSE:
      return 'RESPONSE';
    case VsockOp.RST:
      return 'RST';
    case VsockOp.SHUTDOWN:
      return 'SHUTDOWN';
    case VsockOp.RW:
      return 'RW';
    case VsockOp.CREDIT_UPDATE:
      return 'CREDIT_UPDATE';
    case VsockOp.CREDIT_REQUEST:
      return 'CREDIT_REQUEST';
    default:
      return `op ${op}`;
  }
}
