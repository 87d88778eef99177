// A typed view of a vCPU's mmap'd kvm_run area. Exit data is read (and for port/MMIO reads, answered)
// in place: what a handler writes into `io.data` / `mmio.data` is what the guest receives.
import { KVM_EXIT_IO_IN, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KvmExit, KvmInternalError, exitReasonName, layout } from '@hype/kvm-sys';

const R = layout.kvm_run;

export interface IoExit {
  direction: 'in' | 'out';
  /** Access size in bytes: 1, 2 or 4. */
  size: number;
  port: number;
  /** Number of accesses (> 1 for `rep ins`/`rep outs`). */
  count: number;
  /** size * count bytes inside the kvm_run area: the data written (out), or to fill in (in). */
  data: Uint8Array;
}

export interface MmioExit {
  physAddr: number;
  isWrite: boolean;
  len: number;
  /** `len` bytes: the data written, or to fill in for a read. */
  data: Uint8Array;
}

export interface InternalErrorExit {
  /** KVM_INTERNAL_ERROR_* */
  suberror: number;
  data: bigint[];
  /** The instruction bytes for an emulation failure when KVM provides them. */
  instructionBytes?: Uint8Array;
}

export interface SystemEventExit {
  /** KVM_SYSTEM_EVENT_* */
  type: number;
  data: bigint[];
}

export class KvmRun {
  /** The whole mmap'd area (kvm_run, then the PIO data page, ...). */
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(buffer: ArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  get exitReason(): number {
    return this.view.getUint32(R.exit_reason, true);
  }

  /**
   * One number per exit site, for telling apart what tends to come after what (the exit poll's learning):
   * the exit reason, and for port I/O the port and direction, for MMIO the address (below 2^45) and
   * direction. Reads the fields in place (no objects, no BigInt): it runs on every exit.
   */
  get exitSite(): number {
    const reason = this.view.getUint32(R.exit_reason, true);
    if (reason === KvmExit.IO) return reason + 64 * (2 * this.view.getUint16(R.io_port, true) + this.bytes[R.io_direction]);
    if (reason === KvmExit.MMIO) {
      const address = (this.view.getUint32(R.mmio_phys_addr + 4, true) % 0x2000) * 0x1_0000_0000 + this.view.getUint32(R.mmio_phys_addr, true);
      return reason + 64 * (2 * address + (this.bytes[R.mmio_is_write] ? 1 : 0));
    }
    return reason % 64;
  }

  /** `IO`, `MMIO`, `HLT`, ... */
  get exitReasonName(): string {
    return exitReasonName(this.exitReason);
  }

  get requestInterruptWindow(): boolean {
    return this.bytes[R.request_interrupt_window] !== 0;
  }

  set requestInterruptWindow(value: boolean) {
    this.bytes[R.request_interrupt_window] = value ? 1 : 0;
  }

  get readyForInterruptInjection(): boolean {
    return this.bytes[R.ready_for_interrupt_injection] !== 0;
  }

  get ifFlag(): boolean {
    return this.bytes[R.if_flag] !== 0;
  }

  /** kvm_run.flags (KVM_RUN_X86_SMM, ...). */
  get flags(): number {
    return this.view.getUint16(R.flags, true);
  }

  get cr8(): bigint {
    return this.view.getBigUint64(R.cr8, true);
  }

  get apicBase(): bigint {
    return this.view.getBigUint64(R.apic_base, true);
  }

  /** KVM_EXIT_IO. */
  get io(): IoExit {
    const size = this.bytes[R.io_size];
    const count = this.view.getUint32(R.io_count, true);
    const offset = Number(this.view.getBigUint64(R.io_data_offset, true));
    const length = size * count;
    // The kernel sets data_offset inside the area; clamp anyway rather than ever view past it.
    const data =
      offset + length <= this.bytes.length ? this.bytes.subarray(offset, offset + length) : new Uint8Array(0);
    return {
      direction: this.bytes[R.io_direction] === KVM_EXIT_IO_IN ? 'in' : 'out',
      size,
      port: this.view.getUint16(R.io_port, true),
      count,
      data,
    };
  }

  /** KVM_EXIT_MMIO. */
  get mmio(): MmioExit {
    const len = Math.min(this.view.getUint32(R.mmio_len, true), 8);
    return {
      physAddr: Number(this.view.getBigUint64(R.mmio_phys_addr, true)),
      isWrite: this.bytes[R.mmio_is_write] !== 0,
      len,
      data: this.bytes.subarray(R.mmio_data, R.mmio_data + len),
    };
  }

  /** KVM_EXIT_INTERNAL_ERROR; an emulation failure may carry the failing instruction's bytes. */
  get internalError(): InternalErrorExit {
    const suberror = this.view.getUint32(R.internal_suberror, true);
    const ndata = Math.min(this.view.getUint32(R.internal_ndata, true), 16);
    const data: bigint[] = [];
    for (let i = 0; i < ndata; i++) data.push(this.view.getBigUint64(R.internal_data + 8 * i, true));
    const result: InternalErrorExit = { suberror, data };
    const flags = this.view.getBigUint64(R.emulation_failure_flags, true);
    const withBytes = BigInt(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES);
    if (suberror === KvmInternalError.EMULATION && ndata >= 3 && (flags & withBytes) !== 0n) {
      const size = Math.min(this.bytes[R.emulation_failure_insn_size], 15);
      result.instructionBytes = this.bytes.slice(R.emulation_failure_insn_bytes, R.emulation_failure_insn_bytes + size);
    }
    return result;
  }

  /** KVM_EXIT_SYSTEM_EVENT. */
  get systemEvent(): SystemEventExit {
    const ndata = Math.min(this.view.getUint32(R.system_event_ndata, true), 16);
    const data: bigint[] = [];
    for (let i = 0; i < ndata; i++) data.push(this.view.getBigUint64(R.system_event_data + 8 * i, true));
    return { type: this.view.getUint32(R.system_event_type, true), data };
  }

  /** KVM_EXIT_FAIL_ENTRY. */
  get failEntry(): { hardwareEntryFailureReason: bigint; cpu: number } {
    return {
      hardwareEntryFailureReason: this.view.getBigUint64(R.fail_entry_hardware_entry_failure_reason, true),
      cpu: this.view.getUint32(R.fail_entry_cpu, true),
    };
  }

  /** KVM_EXIT_UNKNOWN. */
  get hardwareExitReason(): bigint {
    return this.view.getBigUint64(R.hw_hardware_exit_reason, true);
  }

  /** KVM_EXIT_EXCEPTION. */
  get exception(): { exception: number; errorCode: number } {
    return { exception: this.view.getUint32(R.ex_exception, true), errorCode: this.view.getUint32(R.ex_error_code, true) };
  }

  /** KVM_EXIT_DEBUG (x86). */
  get debug(): { exception: number; pc: bigint; dr6: bigint; dr7: bigint } {
    return {
      exception: this.view.getUint32(R.debug_arch_exception, true),
      pc: this.view.getBigUint64(R.debug_arch_pc, true),
      dr6: this.view.getBigUint64(R.debug_arch_dr6, true),
      dr7: this.view.getBigUint64(R.debug_arch_dr7, true),
    };
  }

  /** One line describing the current exit, for logs and errors. */
  describe(): string {
    const name = this.exitReasonName;
    switch (name) {
      case 'IO': {
        const io = this.io;
        return `IO ${io.direction} port 0x${io.port.toString(16)} size ${io.size} count ${io.count}`;
      }
      case 'MMIO': {
        const mmio = this.mmio;
        return `MMIO ${mmio.isWrite ? 'write' : 'read'} 0x${mmio.physAddr.toString(16)} len ${mmio.len}`;
      }
      case 'INTERNAL_ERROR': {
        const error = this.internalError;
        const insn = error.instructionBytes ? ` insn ${Buffer.from(error.instructionBytes).toString('hex')}` : '';
        return `INTERNAL_ERROR suberror ${error.suberror} data [${error.data.map((d) => `0x${d.toString(16)}`).join(', ')}]${insn}`;
      }
      case 'SYSTEM_EVENT':
        return `SYSTEM_EVENT type ${this.systemEvent.type}`;
      case 'FAIL_ENTRY':
        return `FAIL_ENTRY reason 0x${this.failEntry.hardwareEntryFailureReason.toString(16)}`;
      default:
        return name;
    }
  }
}
