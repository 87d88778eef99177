// The port-I/O read mirror's byte layout (native/pio_read_mirror.h; test/layout.test.ts compares the two):
// `entries` little-endian u32 words, each `validBit | port << portShift | value`, 0 = unused. The JS thread
// writes whole words with Atomics.store; vCPU threads answer a 1-byte IN from a port with a valid word
// themselves (VcpuThreadOptions.pioReadMirror).
export const pioReadMirrorLayout = {
  entries: 16,
  entryBytes: 4,
  size: 64,
  /** Bit 31: the entry holds a value. */
  validBit: 0x8000_0000,
  /** Bits 8-23: the port. */
  portShift: 8,
  /** Bits 0-7: the value a read returns. */
  valueMask: 0xff,
} as const;

/** The word of an entry answering reads of `port` with `value`. */
export function pioReadMirrorWord(port: number, value: number): number {
  const { validBit, portShift, valueMask } = pioReadMirrorLayout;
  return (validBit | ((port & 0xffff) << portShift) | (value & valueMask)) | 0;
}
