import { layouts } from '@hype/kvm-sys';
import { describe, expect, it } from 'vitest';
import { KvmRun } from '../src/index.js';

const R = layouts.kvm_run;

function runArea() {
  const buffer = new ArrayBuffer(3 * 4096);
  return { run: new KvmRun(buffer), bytes: new Uint8Array(buffer), view: new DataView(buffer) };
}

describe('KvmRun', () => {
  it('decodes a port OUT and exposes its data in place', () => {
    const { run, bytes, view } = runArea();
    view.setUint32(R.exit_reason, 2, true);
    bytes[R.io_direction] = 1;
    bytes[R.io_size] = 2;
    view.setUint16(R.io_port, 0x3f8, true);
    view.setUint32(R.io_count, 3, true);
    view.setBigUint64(R.io_data_offset, 4096n, true);
    bytes.set([1, 2, 3, 4, 5, 6], 4096);
    expect(run.exitReasonName).toBe('IO');
    const io = run.io;
    expect(io).toMatchObject({ direction: 'out', size: 2, port: 0x3f8, count: 3 });
    expect([...io.data]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run.describe()).toBe('IO out port 0x3f8 size 2 count 3');
  });

  it('lets a handler answer a port IN by writing io.data', () => {
    const { run, bytes, view } = runArea();
    view.setUint32(R.exit_reason, 2, true);
    bytes[R.io_direction] = 0;
    bytes[R.io_size] = 1;
    view.setUint32(R.io_count, 1, true);
    view.setBigUint64(R.io_data_offset, 4096n, true);
    run.io.data[0] = 0x5a;
    expect(bytes[4096]).toBe(0x5a);
  });

  it('never views past the area, whatever data_offset says', () => {
    const { run, bytes, view } = runArea();
    bytes[R.io_size] = 4;
    view.setUint32(R.io_count, 3000, true); // 12000 bytes from 4096: past the 12 KiB area
    view.setBigUint64(R.io_data_offset, 4096n, true);
    expect(run.io.data.length).toBe(0);
  });

  it('decodes MMIO reads and writes', () => {
    const { run, bytes, view } = runArea();
    view.setUint32(R.exit_reason, 6, true);
    view.setBigUint64(R.mmio_phys_addr, 0xd0000000n, true);
    view.setUint32(R.mmio_len, 4, true);
    bytes[R.mmio_is_write] = 1;
    bytes.set([0xef, 0xbe, 0xad, 0xde], R.mmio_data);
    const mmio = run.mmio;
    expect(mmio).toMatchObject({ physAddr: 0xd0000000, isWrite: true, len: 4 });
    expect(new DataView(mmio.data.buffer, mmio.data.byteOffset, 4).getUint32(0, true)).toBe(0xdeadbeef);
    bytes[R.mmio_is_write] = 0;
    run.mmio.data.set([1, 2, 3, 4]);
    expect([...bytes.subarray(R.mmio_data, R.mmio_data + 4)]).toEqual([1, 2, 3, 4]);
    view.setUint32(R.mmio_len, 200, true); // corrupt length: clamped to the 8-byte field
    expect(run.mmio.data.length).toBe(8);
  });

  it('names each exit site by one safe integer: reason, port or address, direction', () => {
    const { run, bytes, view } = runArea();
    const sites = new Set<number>();
    const site = () => {
      const value = run.exitSite;
      expect(Number.isSafeInteger(value) && value >= 0).toBe(true);
      sites.add(value);
      return value;
    };
    view.setUint32(R.exit_reason, 2, true);
    view.setUint16(R.io_port, 0xcf8, true);
    bytes[R.io_direction] = 1;
    const outCf8 = site();
    bytes[R.io_direction] = 0;
    site();
    view.setUint16(R.io_port, 0xcfc, true);
    site();
    view.setUint32(R.io_count, 7, true); // only the site counts, not the access
    expect(run.exitSite).toBe(2 + 64 * (2 * 0xcfc));
    view.setUint32(R.exit_reason, 6, true);
    for (const address of [0xd0001060n, 0xd0001064n, 0xfedc_ba98_7654n, (1n << 52n) - 8n]) {
      view.setBigUint64(R.mmio_phys_addr, address, true);
      for (const write of [0, 1]) {
        bytes[R.mmio_is_write] = write;
        site();
      }
    }
    view.setUint32(R.exit_reason, 17, true);
    site();
    expect(sites.size).toBe(12);
    view.setUint32(R.exit_reason, 2, true);
    view.setUint16(R.io_port, 0xcf8, true);
    bytes[R.io_direction] = 1;
    expect(run.exitSite).toBe(outCf8); // the same site again
  });

  it('decodes an emulation failure with instruction bytes', () => {
    const { run, bytes, view } = runArea();
    view.setUint32(R.exit_reason, 17, true);
    view.setUint32(R.internal_suberror, 1, true);
    view.setUint32(R.internal_ndata, 4, true);
    view.setBigUint64(R.emulation_failure_flags, 1n, true);
    bytes[R.emulation_failure_insn_size] = 3;
    bytes.set([0x0f, 0x01, 0xca], R.emulation_failure_insn_bytes);
    const error = run.internalError;
    expect(error.suberror).toBe(1);
    expect(error.data).toHaveLength(4);
    expect([...error.instructionBytes!]).toEqual([0x0f, 0x01, 0xca]);
    expect(run.describe()).toMatch(/^INTERNAL_ERROR suberror 1 .* insn 0f01ca$/);
    bytes[R.emulation_failure_insn_size] = 255; // corrupt size: clamped to the 15-byte field
    expect(run.internalError.instructionBytes!.length).toBe(15);
    view.setBigUint64(R.emulation_failure_flags, 0n, true); // no bytes supplied
    expect(run.internalError.instructionBytes).toBeUndefined();
    view.setBigUint64(R.emulation_failure_flags, 1n, true);
    view.setUint32(R.internal_suberror, 3, true); // not an emulation failure
    expect(run.internalError.instructionBytes).toBeUndefined();
    view.setUint32(R.internal_suberror, 1, true);
    view.setUint32(R.internal_ndata, 1, true); // too little data for the bytes
    expect(run.internalError.instructionBytes).toBeUndefined();
  });

  it('decodes system events, entry failures and unknown reasons', () => {
    const { run, view } = runArea();
    view.setUint32(R.exit_reason, 24, true);
    view.setUint32(R.system_event_type, 2, true);
    view.setUint32(R.system_event_ndata, 1, true);
    view.setBigUint64(R.system_event_data, 7n, true);
    expect(run.systemEvent).toEqual({ type: 2, data: [7n] });
    view.setUint32(R.exit_reason, 9, true);
    view.setBigUint64(R.fail_entry_hardware_entry_failure_reason, 0x21n, true);
    view.setUint32(R.fail_entry_cpu, 1, true);
    expect(run.failEntry).toEqual({ hardwareEntryFailureReason: 0x21n, cpu: 1 });
    view.setUint32(R.exit_reason, 99, true);
    expect(run.exitReasonName).toBe('UNKNOWN_EXIT_99');
  });

  it('reads and sets request_interrupt_window', () => {
    const { run, bytes } = runArea();
    run.requestInterruptWindow = true;
    expect(bytes[R.request_interrupt_window]).toBe(1);
    expect(run.requestInterruptWindow).toBe(true);
  });
});
