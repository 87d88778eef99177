import type { AcpiTablesOptions } from '../src/layout.js';

/** A hype-like microVM: tables in the BIOS area, COM1, the i8042 and three virtio-mmio devices. */
export const TYPICAL: AcpiTablesOptions = {
  base: 0xe_0000,
  cpus: 4,
  serial: { port: 0x3f8, irq: 4 },
  i8042: true,
  sleepControlPort: 0x3c0,
  reset: { port: 0x3c0, value: 1 },
  virtioMmio: [
    { base: 0xd000_0000, size: 0x1000, irq: 5 },
    { base: 0xd000_1000, size: 0x1000, irq: 6 },
    { base: 0xd000_2000, size: 0x1000, irq: 7 },
  ],
  interruptOverrides: [{ irq: 4, gsi: 4, trigger: 'edge', polarity: 'high' }],
};

export const MINIMAL: AcpiTablesOptions = { base: 0x10_0000_0000, cpus: 1, sleepControlPort: 0x600, sleepStatusPort: 0x601 };
