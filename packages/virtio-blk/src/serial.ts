import { BLK_ID_BYTES } from './layout.js';

/** The serial a disk gets when none is given: its index in the VM's disk list (`hype-disk-0` is /dev/vda). */
export function defaultSerial(index: number): string {
  return `hype-disk-${index}`;
}

/**
 * Encodes a device serial as the 20-byte GET_ID answer: printable ASCII, NUL-padded, no terminator when
 * exactly 20 bytes long (virtio 1.2 §5.2.6). Throws a one-line error naming the bad serial otherwise.
 * Linux shows it as /sys/block/vdX/serial and /dev/disk/by-id/virtio-<serial>.
 */
export function encodeSerial(serial: string): Uint8Array {
  if (serial.length > BLK_ID_BYTES) {
    throw new RangeError(`disk serial "${serial}" is ${serial.length} characters long; the maximum is ${BLK_ID_BYTES}`);
  }
  const out = new Uint8Array(BLK_ID_BYTES);
  for (let i = 0; i < serial.length; i++) {
    const c = serial.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new RangeError(`disk serial ${JSON.stringify(serial)} has a character that is not printable ASCII at position ${i}`);
    }
    out[i] = c;
  }
  return out;
}
