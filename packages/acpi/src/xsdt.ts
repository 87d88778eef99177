/** Extended System Description Table (ACPI 6.5 §5.2.8): 64-bit pointers to the other tables (not the DSDT). */
import { assertAddress, dataView, setU64 } from './bytes.js';
import { SDT_HEADER_SIZE, finishSdt } from './sdt.js';

export const XSDT = { entries: SDT_HEADER_SIZE } as const;
export const XSDT_ENTRY_SIZE = 8;
export const XSDT_REVISION = 1;

export function buildXsdt(tableAddresses: readonly number[]): Uint8Array {
  const table = new Uint8Array(SDT_HEADER_SIZE + XSDT_ENTRY_SIZE * tableAddresses.length);
  const dv = dataView(table);
  tableAddresses.forEach((address, k) => {
    assertAddress(address, 'table address');
    setU64(dv, XSDT.entries + XSDT_ENTRY_SIZE * k, address);
  });
  return finishSdt(table, { signature: 'XSDT', revision: XSDT_REVISION, oemTableId: 'HYPEXSDT' });
}
