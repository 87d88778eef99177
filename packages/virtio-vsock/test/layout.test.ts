// The wire layout against Linux's include/uapi/linux/virtio_vsock.h (and virtio_ids.h, vm_sockets.h):
// compiled with the host's C compiler when there is one, and against the numbers of virtio 1.2 §5.10.
import { describe, expect, it } from 'vitest';
import { cProgram } from '../../../scripts/test/c-values.js';
import {
  VIRTIO_ID_VSOCK,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_CID_HYPERVISOR,
  VMADDR_CID_LOCAL,
  VMADDR_PORT_ANY,
  VSOCK_CONFIG,
  VSOCK_EVENT,
  VSOCK_HDR,
  VsockEventId,
  VsockFeature,
  VsockOp,
  VsockQueue,
  VsockShutdown,
  VsockType,
  decodeHeader,
  encodeHeader,
  opName,
} from '../src/index.js';

const vsockH = cProgram({
  check: 'the compiled virtio_vsock.h check',
  includes: ['sys/socket.h', 'linux/virtio_vsock.h', 'linux/virtio_ids.h', 'linux/vm_sockets.h'],
});

const headerFields: Record<Exclude<keyof typeof VSOCK_HDR, 'SIZE'>, string> = {
  SRC_CID: 'src_cid',
  DST_CID: 'dst_cid',
  SRC_PORT: 'src_port',
  DST_PORT: 'dst_port',
  LEN: 'len',
  TYPE: 'type',
  OP: 'op',
  FLAGS: 'flags',
  BUF_ALLOC: 'buf_alloc',
  FWD_CNT: 'fwd_cnt',
};

describe('virtio-vsock layout', () => {
  it.skipIf(!vsockH.canCompile)('matches the compiled kernel headers', () => {
    const exprs: Record<string, string> = {
      id: 'VIRTIO_ID_VSOCK',
      seqpacket: 'VIRTIO_VSOCK_F_SEQPACKET',
      hdrSize: 'sizeof(struct virtio_vsock_hdr)',
      configSize: 'sizeof(struct virtio_vsock_config)',
      configCid: 'offsetof(struct virtio_vsock_config, guest_cid)',
      eventSize: 'sizeof(struct virtio_vsock_event)',
      eventId: 'offsetof(struct virtio_vsock_event, id)',
      transportReset: 'VIRTIO_VSOCK_EVENT_TRANSPORT_RESET',
      stream: 'VIRTIO_VSOCK_TYPE_STREAM',
      seqpacketType: 'VIRTIO_VSOCK_TYPE_SEQPACKET',
      opInvalid: 'VIRTIO_VSOCK_OP_INVALID',
      opRequest: 'VIRTIO_VSOCK_OP_REQUEST',
      opResponse: 'VIRTIO_VSOCK_OP_RESPONSE',
      opRst: 'VIRTIO_VSOCK_OP_RST',
      opShutdown: 'VIRTIO_VSOCK_OP_SHUTDOWN',
      opRw: 'VIRTIO_VSOCK_OP_RW',
      opCreditUpdate: 'VIRTIO_VSOCK_OP_CREDIT_UPDATE',
      opCreditRequest: 'VIRTIO_VSOCK_OP_CREDIT_REQUEST',
      shutRcv: 'VIRTIO_VSOCK_SHUTDOWN_RCV',
      shutSend: 'VIRTIO_VSOCK_SHUTDOWN_SEND',
      cidAny: 'VMADDR_CID_ANY',
      cidHypervisor: 'VMADDR_CID_HYPERVISOR',
      cidLocal: 'VMADDR_CID_LOCAL',
      cidHost: 'VMADDR_CID_HOST',
      portAny: 'VMADDR_PORT_ANY',
    };
    for (const [k, field] of Object.entries(headerFields)) exprs[`hdr_${k}`] = `offsetof(struct virtio_vsock_hdr, ${field})`;
    for (const [k, field] of Object.entries(headerFields)) exprs[`size_${k}`] = `sizeof(((struct virtio_vsock_hdr *)0)->${field})`;
    const c = vsockH.values(exprs);
    expect(c.id).toBe(VIRTIO_ID_VSOCK);
    expect(c.seqpacket).toBe(VsockFeature.SEQPACKET);
    expect(c.hdrSize).toBe(VSOCK_HDR.SIZE);
    expect(c.configSize).toBe(VSOCK_CONFIG.SIZE);
    expect(c.configCid).toBe(VSOCK_CONFIG.GUEST_CID);
    expect(c.eventSize).toBe(VSOCK_EVENT.SIZE);
    expect(c.eventId).toBe(VSOCK_EVENT.ID);
    expect(c.transportReset).toBe(VsockEventId.TRANSPORT_RESET);
    expect([c.stream, c.seqpacketType]).toEqual([VsockType.STREAM, VsockType.SEQPACKET]);
    expect([c.opInvalid, c.opRequest, c.opResponse, c.opRst, c.opShutdown, c.opRw, c.opCreditUpdate, c.opCreditRequest]).toEqual([
      VsockOp.INVALID,
      VsockOp.REQUEST,
      VsockOp.RESPONSE,
      VsockOp.RST,
      VsockOp.SHUTDOWN,
      VsockOp.RW,
      VsockOp.CREDIT_UPDATE,
      VsockOp.CREDIT_REQUEST,
    ]);
    expect([c.shutRcv, c.shutSend]).toEqual([VsockShutdown.RCV, VsockShutdown.SEND]);
    expect([c.cidAny, c.cidHypervisor, c.cidLocal, c.cidHost, c.portAny]).toEqual([
      VMADDR_CID_ANY,
      VMADDR_CID_HYPERVISOR,
      VMADDR_CID_LOCAL,
      VMADDR_CID_HOST,
      VMADDR_PORT_ANY,
    ]);
    for (const k of Object.keys(headerFields) as Array<keyof typeof headerFields>) {
      expect(c[`hdr_${k}`], k).toBe(VSOCK_HDR[k]);
    }
    // Field widths: the next field starts where this one ends.
    const order = Object.keys(headerFields) as Array<keyof typeof headerFields>;
    order.forEach((k, i) => {
      const end = i + 1 < order.length ? VSOCK_HDR[order[i + 1]] : VSOCK_HDR.SIZE;
      expect(VSOCK_HDR[k] + c[`size_${k}`], k).toBe(end);
    });
  });

  it('has the numbers of virtio 1.2 §5.10', () => {
    expect(VIRTIO_ID_VSOCK).toBe(19);
    expect(VsockQueue).toEqual({ RX: 0, TX: 1, EVENT: 2 });
    // le64 src_cid, le64 dst_cid, le32 src_port, le32 dst_port, le32 len, le16 type, le16 op, le32 flags,
    // le32 buf_alloc, le32 fwd_cnt: packed, 44 bytes.
    expect(VSOCK_HDR).toEqual({ SRC_CID: 0, DST_CID: 8, SRC_PORT: 16, DST_PORT: 20, LEN: 24, TYPE: 28, OP: 30, FLAGS: 32, BUF_ALLOC: 36, FWD_CNT: 40, SIZE: 44 });
    expect(VSOCK_CONFIG).toEqual({ GUEST_CID: 0, SIZE: 8 });
    expect(VSOCK_EVENT).toEqual({ ID: 0, SIZE: 4 });
    expect(VsockType.STREAM).toBe(1);
    expect(VsockOp).toEqual({ INVALID: 0, REQUEST: 1, RESPONSE: 2, RST: 3, SHUTDOWN: 4, RW: 5, CREDIT_UPDATE: 6, CREDIT_REQUEST: 7 });
    expect(VsockShutdown).toEqual({ RCV: 1, SEND: 2, BOTH: 3 });
    expect(VsockEventId.TRANSPORT_RESET).toBe(0);
    expect(VMADDR_CID_HOST).toBe(2);
  });

  it('encodes and decodes a header little-endian, field by field', () => {
    const bytes = encodeHeader({
      srcCid: 0x01020304,
      srcCidHigh: 0x05060708,
      dstCid: 2,
      srcPort: 0xaabbccdd,
      dstPort: 1234,
      len: 0x11223344,
      type: 1,
      op: 5,
      flags: 3,
      bufAlloc: 262144,
      fwdCnt: 0xffffffff,
    });
    expect(bytes.length).toBe(44);
    expect([...bytes.subarray(0, 8)]).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
    expect([...bytes.subarray(8, 16)]).toEqual([2, 0, 0, 0, 0, 0, 0, 0]);
    expect([...bytes.subarray(16, 20)]).toEqual([0xdd, 0xcc, 0xbb, 0xaa]);
    expect([...bytes.subarray(28, 32)]).toEqual([1, 0, 5, 0]);
    const h = decodeHeader(bytes);
    expect(h).toEqual({
      srcCid: 0x01020304,
      srcCidHigh: 0x05060708,
      dstCid: 2,
      dstCidHigh: 0,
      srcPort: 0xaabbccdd,
      dstPort: 1234,
      len: 0x11223344,
      type: 1,
      op: 5,
      flags: 3,
      bufAlloc: 262144,
      fwdCnt: 0xffffffff,
    });
    expect(opName(VsockOp.CREDIT_REQUEST)).toBe('CREDIT_REQUEST');
    expect(opName(42)).toBe('op 42');
  });
});
