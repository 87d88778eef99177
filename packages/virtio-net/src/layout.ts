// The virtio-net wire layout (virtio 1.2 §5.1): feature bits, the configuration space, the per-packet
// header and the Ethernet sizes the device's bounds are made of. Checked against Linux's
// include/uapi/linux/virtio_net.h in test/layout.test.ts.
import { DeviceId } from '@hype/virtio';

/** Device type ID of a network device (§5.1.1). */
export const VIRTIO_ID_NET = DeviceId.NET;

/** Queue indices with one queue pair and no control queue (§5.1.2). */
export const NetQueue = {
  /** receiveq1: device → driver frames. */
  RX: 0,
  /** transmitq1: driver → device frames. */
  TX: 1,
} as const;

/**
 * Device feature bits (§5.1.3). `VIRTIO_F_VERSION_1` (bit 32) and the ring features are @hype/virtio's
 * `Feature`. Bits this device offers: MTU, MAC, MRG_RXBUF, STATUS.
 */
export const NetFeature = {
  /** Device handles frames with a partial checksum (the driver may leave the checksum to the device). */
  CSUM: 0,
  /** Driver handles frames with a partial checksum. */
  GUEST_CSUM: 1,
  /** Control channel offload reconfiguration. */
  CTRL_GUEST_OFFLOADS: 2,
  /** Device reports its maximum MTU in `mtu` (driver uses it). */
  MTU: 3,
  /** Device has given a MAC address in `mac`. */
  MAC: 5,
  /** Driver can receive TSOv4. */
  GUEST_TSO4: 7,
  /** Driver can receive TSOv6. */
  GUEST_TSO6: 8,
  /** Driver can receive TSO with ECN. */
  GUEST_ECN: 9,
  /** Driver can receive UFO. */
  GUEST_UFO: 10,
  /** Device can receive TSOv4. */
  HOST_TSO4: 11,
  /** Device can receive TSOv6. */
  HOST_TSO6: 12,
  /** Device can receive TSO with ECN. */
  HOST_ECN: 13,
  /** Device can receive UFO. */
  HOST_UFO: 14,
  /** Driver can merge receive buffers: a frame may span several rx chains (`num_buffers`). */
  MRG_RXBUF: 15,
  /** `status` in the configuration space is valid. */
  STATUS: 16,
  /** Control channel (a third queue). */
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  CTRL_RX_EXTRA: 20,
  GUEST_ANNOUNCE: 21,
  /** Multiqueue. */
  MQ: 22,
  CTRL_MAC_ADDR: 23,
  NOTF_COAL: 53,
  HASH_REPORT: 57,
  RSS: 60,
  RSC_EXT: 61,
  STANDBY: 62,
  SPEED_DUPLEX: 63,
} as const;

/** `status` bits of the configuration space (§5.1.4). */
export const NetStatus = {
  LINK_UP: 1,
  ANNOUNCE: 2,
} as const;

/**
 * The part of `struct virtio_net_config` this device exposes (§5.1.4), byte offsets: `mac[6]`, le16
 * `status`, le16 `max_virtqueue_pairs`, le16 `mtu`. `SIZE` is the device's configuration space size (the
 * fields after `mtu`, speed/duplex and RSS, belong to features this device does not offer).
 */
export const NET_CONFIG = {
  MAC: 0,
  STATUS: 6,
  MAX_VIRTQUEUE_PAIRS: 8,
  MTU: 10,
  SIZE: 12,
} as const;

/**
 * `struct virtio_net_hdr_v1` (§5.1.6), byte offsets: u8 `flags`, u8 `gso_type`, le16 `hdr_len`, le16
 * `gso_size`, le16 `csum_start`, le16 `csum_offset`, le16 `num_buffers`: 12 bytes, in front of every
 * frame on both queues once VIRTIO_F_VERSION_1 is negotiated (whether or not MRG_RXBUF is).
 */
export const NET_HDR = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
  NUM_BUFFERS: 10,
  SIZE: 12,
} as const;

/** `flags` of the header. */
export const NetHdrFlag = {
  /** The checksum at csum_start + csum_offset is to be filled in (needs VIRTIO_NET_F_CSUM / GUEST_CSUM). */
  NEEDS_CSUM: 1,
  /** The checksum is valid (rx, needs VIRTIO_NET_F_GUEST_CSUM). */
  DATA_VALID: 2,
  RSC_INFO: 4,
} as const;

/** `gso_type` of the header. */
export const NetHdrGso = {
  NONE: 0,
  TCPV4: 1,
  UDP: 3,
  TCPV6: 4,
  /** Flag bit: TCP with ECN. */
  ECN: 0x80,
} as const;

/** Length of a MAC address. */
export const ETH_ALEN = 6;
/** Ethernet header: destination, source, EtherType. The shortest frame the device passes on. */
export const ETH_HLEN = 14;
/** One 802.1Q tag. */
export const VLAN_HLEN = 4;
/** What a frame may carry beyond its MTU: the Ethernet header and one VLAN tag (Linux's GOOD_PACKET_LEN - ETH_DATA_LEN). */
export const FRAME_OVERHEAD = ETH_HLEN + VLAN_HLEN;

/** The longest frame (Ethernet header included, no FCS) for an MTU: `mtu + 14 + 4`. */
export function maxFrameSize(mtu: number): number {
  return mtu + FRAME_OVERHEAD;
}

export interface NetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
}

/** Encode a header (missing fields 0) into `out` (12 bytes, default a new array); returns `out`. */
export function encodeNetHeader(fields: Partial<NetHeader>, out: Uint8Array = new Uint8Array(NET_HDR.SIZE)): Uint8Array {
  const dv = new DataView(out.buffer, out.byteOffset, NET_HDR.SIZE);
  dv.setUint8(NET_HDR.FLAGS, fields.flags ?? 0);
  dv.setUint8(NET_HDR.GSO_TYPE, fields.gsoType ?? 0);
  dv.setUint16(NET_HDR.HDR_LEN, fields.hdrLen ?? 0, true);
  dv.setUint16(NET_HDR.GSO_SIZE, fields.gsoSize ?? 0, true);
  dv.setUint16(NET_HDR.CSUM_START, fields.csumStart ?? 0, true);
  dv.setUint16(NET_HDR.CSUM_OFFSET, fields.csumOffset ?? 0, true);
  dv.setUint16(NET_HDR.NUM_BUFFERS, fields.numBuffers ?? 0, true);
  return out;
}

/** Decode the first 12 bytes of `bytes` (which must hold them). */
export function decodeNetHeader(bytes: Uint8Array): NetHeader {
  if (bytes.length < NET_HDR.SIZE) throw new RangeError(`virtio-net: a header needs ${NET_HDR.SIZE} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, NET_HDR.SIZE);
  return {
    flags: dv.getUint8(NET_HDR.FLAGS),
    gsoType: dv.getUint8(NET_HDR.GSO_TYPE),
    hdrLen: dv.getUint16(NET_HDR.HDR_LEN, true),
    gsoSize: dv.getUint16(NET_HDR.GSO_SIZE, true),
    csumStart: dv.getUint16(NET_HDR.CSUM_START, true),
    csumOffset: dv.getUint16(NET_HDR.CSUM_OFFSET, true),
    numBuffers: dv.getUint16(NET_HDR.NUM_BUFFERS, true),
  };
}

// ---- MAC addresses ---------------------------------------------------------------------------------

/**
 * A MAC address from `aa:bb:cc:dd:ee:ff` (or `-` separated, any case) or 6 bytes: a copy, checked to be
 * a unicast address (bit 0 of the first octet clear) other than 00:00:00:00:00:00. Throws a RangeError
 * naming the problem.
 */
export function parseMac(mac: string | Uint8Array): Uint8Array {
  let bytes: Uint8Array;
  if (typeof mac === 'string') {
    const m = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i.exec(mac.trim());
    if (m === null) throw new RangeError(`virtio-net: MAC address ${JSON.stringify(mac)} is not six hex octets like 52:54:00:12:34:56`);
    bytes = Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]], (h) => parseInt(h, 16));
  } else if (mac instanceof Uint8Array) {
    if (mac.length !== ETH_ALEN) throw new RangeError(`virtio-net: a MAC address has ${ETH_ALEN} bytes, got ${mac.length}`);
    bytes = mac.slice();
  } else {
    throw new TypeError('virtio-net: a MAC address is a string or 6 bytes');
  }
  if ((bytes[0] & 1) !== 0) throw new RangeError(`virtio-net: MAC address ${formatMac(bytes)} is a multicast address (bit 0 of the first octet set)`);
  if (bytes.every((b) => b === 0)) throw new RangeError('virtio-net: MAC address 00:00:00:00:00:00 is not usable');
  return bytes;
}

/** `aa:bb:cc:dd:ee:ff`, lower case. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, ETH_ALEN), (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The prefix of generated MAC addresses: QEMU's 52:54:00 (0x52 has the locally administered bit set). */
export const MAC_PREFIX = Object.freeze([0x52, 0x54, 0x00]) as readonly number[];

/**
 * A random MAC address `52:54:00:xx:xx:xx` (locally administered, unicast, as QEMU's and libvirt's
 * defaults). `random` fills its argument with random bytes; default `crypto.getRandomValues`.
 */
export function randomMac(random?: (dest: Uint8Array) => void): Uint8Array {
  const fill =
    random ??
    ((dest: Uint8Array) => {
      const crypto = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
      if (crypto?.getRandomValues === undefined) throw new Error('virtio-net: no global crypto.getRandomValues in this runtime; pass `mac`');
      crypto.getRandomValues(dest);
    });
  const mac = new Uint8Array(ETH_ALEN);
  mac.set(MAC_PREFIX);
  fill(mac.subarray(3));
  return mac;
}
