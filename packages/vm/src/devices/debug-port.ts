import type { BusDevice } from '../bus.js';

/** The hype debug ports (packages/vm/README.md): 0xf4 = power off with status, 0xf5 = boot/progress marker. */
export const DEBUG_PORT_BASE = 0xf4;
export const DEBUG_PORT_COUNT = 2;
export const POWEROFF_OFFSET = 0;
export const MARKER_OFFSET = 1;

/** Marker value the default guest's /init writes when it starts. */
export const MARKER_INIT_STARTED = 1;

/** At most this many markers are kept; a guest writing more cannot grow host memory. */
export const MAX_MARKERS = 1024;

export interface BootMarker {
  value: number;
  /** Milliseconds since the VMM process started (`performance.now()`, Firecracker's boot-timer idea). */
  atMs: number;
}

export interface DebugPortOptions {
  /** The guest asked to power off with exit status `status` (0-255). */
  onPowerOff(status: number): void;
  /** Called for each marker kept. */
  onMarker?(marker: BootMarker): void;
  /** Clock in ms since process start; injectable for tests. */
  now?(): number;
}

/**
 * Port 0xf4 (offset 0): write of byte v = power off with status v. Port 0xf5 (offset 1): write of
 * byte v = progress marker v, timestamped here. A wider write uses its low byte for the port it
 * starts at. Reads return all-ones (write-only ports).
 */
export class DebugPort implements BusDevice {
  readonly markers: BootMarker[] = [];
  private readonly now: () => number;

  constructor(private readonly opts: DebugPortOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(0xff);
  }

  write(offset: number, data: Uint8Array): void {
    const value = data[0];
    if (offset === POWEROFF_OFFSET) {
      this.opts.onPowerOff(value);
    } else if (offset === MARKER_OFFSET) {
      if (this.markers.length >= MAX_MARKERS) return;
      const marker = { value, atMs: this.now() };
      this.markers.push(marker);
      this.opts.onMarker?.(marker);
    }
  }

  /** The first marker with `value`, if the guest wrote it. */
  firstMarker(value: number): BootMarker | undefined {
    return this.markers.find((m) => m.value === value);
  }
}
