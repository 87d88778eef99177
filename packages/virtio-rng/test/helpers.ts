import { FakeClock, VirtioTestDriver, type VirtioTestDriverOptions } from '@hype/virtio/testing';
import { EntropyDevice, type EntropyDeviceOptions } from '../src/index.js';

/** A source whose output is known: byte i of everything it ever produced is `(start + i) & 0xff`. */
export class CountingSource {
  produced = 0;
  calls: number[] = [];
  constructor(readonly start = 0) {}
  readonly fill = (dest: Uint8Array): void => {
    this.calls.push(dest.length);
    for (let i = 0; i < dest.length; i++) dest[i] = (this.start + this.produced + i) & 0xff;
    this.produced += dest.length;
  };
  /** The `length` bytes that start at stream offset `from`. */
  expected(from: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = (this.start + from + i) & 0xff;
    return out;
  }
}

export interface Rig {
  drv: VirtioTestDriver;
  device: EntropyDevice;
  source: CountingSource;
  time: FakeClock;
}

/** An EntropyDevice with a counting source and fake time, behind the real transport, initialised. */
export function rig(options: Partial<EntropyDeviceOptions> = {}, driverOptions: VirtioTestDriverOptions = {}): Rig {
  const source = new CountingSource();
  const time = new FakeClock();
  const device = new EntropyDevice({
    source: source.fill,
    now: time.clock,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    defer: time.defer,
    ...options,
  });
  const drv = new VirtioTestDriver(device, driverOptions);
  drv.init();
  return { drv, device, source, time };
}

/** Byte equality without vitest's element-by-element deep diff (slow on 64 KiB arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
