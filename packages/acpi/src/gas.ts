/** Generic Address Structure (ACPI 6.5 §5.2.3.2): where a register lives. */
import { assertUint, setU64 } from './bytes.js';

export const GAS = { addressSpaceId: 0, registerBitWidth: 1, registerBitOffset: 2, accessSize: 3, address: 4 } as const;
export const GAS_SIZE = 12;

export const AddressSpace = { SystemMemory: 0, SystemIo: 1 } as const;
/** Access size field: 1 = byte, 2 = word, 3 = dword, 4 = qword. */
export const AccessSize = { Byte: 1, Word: 2, DWord: 3, QWord: 4 } as const;

/** Writes an 8-bit register at I/O `port` as a GAS at `offset`. */
export function writeIoPortGas(dv: DataView, offset: number, port: number): void {
  assertUint(port, 16, 'I/O port');
  dv.setUint8(offset + GAS.addressSpaceId, AddressSpace.SystemIo);
  dv.setUint8(offset + GAS.registerBitWidth, 8);
  dv.setUint8(offset + GAS.registerBitOffset, 0);
  dv.setUint8(offset + GAS.accessSize, AccessSize.Byte);
  setU64(dv, offset + GAS.address, port);
}
