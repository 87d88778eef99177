// TUN/TAP numbers from <linux/if_tun.h> and <linux/if.h> (checked against the compiled headers in
// test/tun.test.ts). The `struct ifreq` TUNSETIFF takes is filled by the addon (`tunSetIff`), not here.

/** The clone device opened once per TUN/TAP queue. */
export const TUN_DEVICE_PATH = '/dev/net/tun';

/** sizeof(ifr_name), including the terminating NUL: interface names are at most 15 bytes. */
export const IFNAMSIZ = 16;

/** TUNSETIFF = _IOW('T', 202, int) (the kernel actually reads and writes a `struct ifreq`). */
export const TUNSETIFF = 0x400454ca;

/** `ifr_flags` values for TUNSETIFF (IFF_*). */
export const TunFlag = {
  /** A layer-3 TUN device (IP packets). */
  TUN: 0x0001,
  /** A layer-2 TAP device (Ethernet frames). */
  TAP: 0x0002,
  NAPI: 0x0010,
  NAPI_FRAGS: 0x0020,
  /** Fail with EBUSY instead of attaching when the interface exists. */
  TUN_EXCL: 0x8000,
  MULTI_QUEUE: 0x0100,
  /** No 4-byte packet-information header before each frame. */
  NO_PI: 0x1000,
  /** A struct virtio_net_hdr before each frame (offloads). */
  VNET_HDR: 0x4000,
} as const;

/** Every constant above under its C macro name, for the header check. */
export function tunConstantsByMacroName(): Record<string, number> {
  const out: Record<string, number> = { IFNAMSIZ, TUNSETIFF };
  for (const [name, value] of Object.entries(TunFlag)) out[`IFF_${name}`] = value;
  return out;
}
