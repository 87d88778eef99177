// The wire layout against Linux's include/uapi/linux/virtio_net.h (and virtio_ids.h): compiled with the
// host's C compiler when there is one, and against the numbers of virtio 1.2 §5.1.
import { describe, expect, it } from 'vitest';
import { cProgram } from '../../../scripts/test/c-values.js';
import {
  ETH_ALEN,
  ETH_HLEN,
  FRAME_OVERHEAD,
  MAC_PREFIX,
  NET_CONFIG,
  NET_HDR,
  NetFeature,
  NetHdrFlag,
  NetHdrGso,
  NetQueue,
  NetStatus,
  VIRTIO_ID_NET,
  VLAN_HLEN,
  decodeNetHeader,
  encodeNetHeader,
  formatMac,
  maxFrameSize,
  parseMac,
  randomMac,
} from '../src/index.js';

const netH = cProgram({
  check: 'the compiled virtio_net.h check',
  includes: ['linux/virtio_net.h', 'linux/virtio_ids.h', 'linux/if_ether.h'],
});

const headerFields: Record<Exclude<keyof typeof NET_HDR, 'SIZE'>, string> = {
  FLAGS: 'flags',
  GSO_TYPE: 'gso_type',
  HDR_LEN: 'hdr_len',
  GSO_SIZE: 'gso_size',
  CSUM_START: 'csum_start',
  CSUM_OFFSET: 'csum_offset',
  NUM_BUFFERS: 'num_buffers',
};

const configFields: Record<Exclude<keyof typeof NET_CONFIG, 'SIZE'>, string> = {
  MAC: 'mac',
  STATUS: 'status',
  MAX_VIRTQUEUE_PAIRS: 'max_virtqueue_pairs',
  MTU: 'mtu',
};

/** NetFeature key → the C macro. */
const featureMacros = Object.fromEntries(Object.keys(NetFeature).map((k) => [k, `VIRTIO_NET_F_${k}`])) as Record<keyof typeof NetFeature, string>;

describe('virtio-net layout', () => {
  it.skipIf(!netH.canCompile)('matches the compiled kernel header', () => {
    const exprs: Record<string, string> = {
      id: 'VIRTIO_ID_NET',
      hdrSize: 'sizeof(struct virtio_net_hdr_v1)',
      linkUp: 'VIRTIO_NET_S_LINK_UP',
      announce: 'VIRTIO_NET_S_ANNOUNCE',
      needsCsum: 'VIRTIO_NET_HDR_F_NEEDS_CSUM',
      dataValid: 'VIRTIO_NET_HDR_F_DATA_VALID',
      rscInfo: 'VIRTIO_NET_HDR_F_RSC_INFO',
      gsoNone: 'VIRTIO_NET_HDR_GSO_NONE',
      gsoTcpv4: 'VIRTIO_NET_HDR_GSO_TCPV4',
      gsoUdp: 'VIRTIO_NET_HDR_GSO_UDP',
      gsoTcpv6: 'VIRTIO_NET_HDR_GSO_TCPV6',
      gsoEcn: 'VIRTIO_NET_HDR_GSO_ECN',
      ethAlen: 'ETH_ALEN',
      ethHlen: 'ETH_HLEN',
      // The part of the config struct this device exposes ends where `speed` starts.
      configEnd: 'offsetof(struct virtio_net_config, speed)',
    };
    for (const [k, field] of Object.entries(headerFields)) {
      exprs[`hdr_${k}`] = `offsetof(struct virtio_net_hdr_v1, ${field})`;
      exprs[`hdrsize_${k}`] = `sizeof(((struct virtio_net_hdr_v1 *)0)->${field})`;
    }
    for (const [k, field] of Object.entries(configFields)) {
      exprs[`cfg_${k}`] = `offsetof(struct virtio_net_config, ${field})`;
      exprs[`cfgsize_${k}`] = `sizeof(((struct virtio_net_config *)0)->${field})`;
    }
    for (const [k, macro] of Object.entries(featureMacros)) exprs[`f_${k}`] = macro;
    const c = netH.values(exprs);

    expect(c.id).toBe(VIRTIO_ID_NET);
    expect(c.hdrSize).toBe(NET_HDR.SIZE);
    expect([c.linkUp, c.announce]).toEqual([NetStatus.LINK_UP, NetStatus.ANNOUNCE]);
    expect([c.needsCsum, c.dataValid, c.rscInfo]).toEqual([NetHdrFlag.NEEDS_CSUM, NetHdrFlag.DATA_VALID, NetHdrFlag.RSC_INFO]);
    expect([c.gsoNone, c.gsoTcpv4, c.gsoUdp, c.gsoTcpv6, c.gsoEcn]).toEqual([NetHdrGso.NONE, NetHdrGso.TCPV4, NetHdrGso.UDP, NetHdrGso.TCPV6, NetHdrGso.ECN]);
    expect([c.ethAlen, c.ethHlen]).toEqual([ETH_ALEN, ETH_HLEN]);
    expect(c.configEnd).toBe(NET_CONFIG.SIZE);
    for (const k of Object.keys(featureMacros) as Array<keyof typeof NetFeature>) expect(c[`f_${k}`], k).toBe(NetFeature[k]);

    // Offsets, and field widths: each field ends where the next starts.
    const hdrOrder = Object.keys(headerFields) as Array<keyof typeof headerFields>;
    hdrOrder.forEach((k, i) => {
      expect(c[`hdr_${k}`], k).toBe(NET_HDR[k]);
      expect(NET_HDR[k] + c[`hdrsize_${k}`], k).toBe(i + 1 < hdrOrder.length ? NET_HDR[hdrOrder[i + 1]] : NET_HDR.SIZE);
    });
    const cfgOrder = Object.keys(configFields) as Array<keyof typeof configFields>;
    cfgOrder.forEach((k, i) => {
      expect(c[`cfg_${k}`], k).toBe(NET_CONFIG[k]);
      expect(NET_CONFIG[k] + c[`cfgsize_${k}`], k).toBe(i + 1 < cfgOrder.length ? NET_CONFIG[cfgOrder[i + 1]] : NET_CONFIG.SIZE);
    });
  });

  it('has the numbers of virtio 1.2 §5.1', () => {
    expect(VIRTIO_ID_NET).toBe(1);
    expect(NetQueue).toEqual({ RX: 0, TX: 1 });
    // u8 flags, u8 gso_type, le16 hdr_len, le16 gso_size, le16 csum_start, le16 csum_offset, le16 num_buffers.
    expect(NET_HDR).toEqual({ FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8, NUM_BUFFERS: 10, SIZE: 12 });
    expect(NET_CONFIG).toEqual({ MAC: 0, STATUS: 6, MAX_VIRTQUEUE_PAIRS: 8, MTU: 10, SIZE: 12 });
    expect([NetFeature.CSUM, NetFeature.GUEST_CSUM, NetFeature.MTU, NetFeature.MAC, NetFeature.GUEST_TSO4]).toEqual([0, 1, 3, 5, 7]);
    expect([NetFeature.MRG_RXBUF, NetFeature.STATUS, NetFeature.CTRL_VQ, NetFeature.MQ]).toEqual([15, 16, 17, 22]);
    expect(NetStatus.LINK_UP).toBe(1);
    expect([ETH_HLEN, VLAN_HLEN, FRAME_OVERHEAD]).toEqual([14, 4, 18]);
    expect(maxFrameSize(1500)).toBe(1518); // Linux's GOOD_PACKET_LEN
  });

  it('encodes and decodes a header little-endian, field by field', () => {
    const bytes = encodeNetHeader({ flags: 1, gsoType: 0x81, hdrLen: 0x0102, gsoSize: 0x0304, csumStart: 0x0506, csumOffset: 0x0708, numBuffers: 0x090a });
    expect([...bytes]).toEqual([1, 0x81, 2, 1, 4, 3, 6, 5, 8, 7, 0x0a, 9]);
    expect(decodeNetHeader(bytes)).toEqual({ flags: 1, gsoType: 0x81, hdrLen: 0x0102, gsoSize: 0x0304, csumStart: 0x0506, csumOffset: 0x0708, numBuffers: 0x090a });
    expect([...encodeNetHeader({})]).toEqual(new Array(12).fill(0));
    // Into a caller's buffer at an offset.
    const big = new Uint8Array(20).fill(0xff);
    encodeNetHeader({ numBuffers: 3 }, big.subarray(4));
    expect([...big.subarray(0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect(decodeNetHeader(big.subarray(4)).numBuffers).toBe(3);
    expect(big[16]).toBe(0xff);
    expect(() => decodeNetHeader(new Uint8Array(11))).toThrow(RangeError);
  });
});

describe('MAC addresses', () => {
  it('parses colon or dash separated hex, any case, and 6 bytes', () => {
    expect([...parseMac('52:54:00:AB:cd:ef')]).toEqual([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
    expect([...parseMac('02-00-00-00-00-01')]).toEqual([2, 0, 0, 0, 0, 1]);
    const bytes = Uint8Array.of(2, 1, 2, 3, 4, 5);
    const parsed = parseMac(bytes);
    expect([...parsed]).toEqual([...bytes]);
    expect(parsed).not.toBe(bytes); // a copy
    expect(formatMac(Uint8Array.of(0x52, 0x54, 0, 0xa, 0xbc, 0xff))).toBe('52:54:00:0a:bc:ff');
  });

  it('refuses malformed, multicast and all-zero addresses with a message', () => {
    expect(() => parseMac('52:54:00:12:34')).toThrow(/six hex octets/);
    expect(() => parseMac('52:54:00:12:34:5g')).toThrow(/six hex octets/);
    expect(() => parseMac('52:54-00:12:34:56')).toThrow(/six hex octets/);
    expect(() => parseMac('01:00:5e:00:00:01')).toThrow(/multicast/);
    expect(() => parseMac('ff:ff:ff:ff:ff:ff')).toThrow(/multicast/);
    expect(() => parseMac('00:00:00:00:00:00')).toThrow(/not usable/);
    expect(() => parseMac(new Uint8Array(5))).toThrow(/6 bytes/);
    expect(() => parseMac(42 as unknown as string)).toThrow(TypeError);
  });

  it('generates 52:54:00:xx:xx:xx: locally administered, unicast', () => {
    expect(MAC_PREFIX).toEqual([0x52, 0x54, 0x00]);
    const mac = randomMac();
    expect(mac.length).toBe(6);
    expect([...mac.subarray(0, 3)]).toEqual([0x52, 0x54, 0x00]);
    expect(mac[0] & 2).toBe(2); // locally administered
    expect(mac[0] & 1).toBe(0); // unicast
    expect(parseMac(mac)).toEqual(mac);
    expect(formatMac(randomMac((d) => d.set([1, 2, 3])))).toBe('52:54:00:01:02:03');
    // Different calls differ (3 random bytes: a collision in 8 tries is ~1e-6).
    expect(new Set(Array.from({ length: 8 }, () => formatMac(randomMac()))).size).toBeGreaterThan(1);
  });
});
