import { addon, ioctls, KVM_API_VERSION, layout } from '@hype/kvm-sys';
import { closedError, ioctl, KvmError } from './errors.js';
import { decodeCpuid2, encodeCpuid2, type CpuidEntry } from './structs.js';
import { Vm } from './vm.js';

const ENOENT = 2;
const EACCES = 13;
const E2BIG = 7;

/** The KVM subsystem (/dev/kvm): capabilities, host CPUID/MSR lists, and VM creation. */
export class Kvm implements Disposable {
  #fd: number;
  readonly apiVersion: number;
  /** Bytes to mmap from a vCPU fd (kvm_run and the pages after it). */
  readonly vcpuMmapSize: number;

  private constructor(fd: number) {
    this.#fd = fd;
    this.apiVersion = ioctl(fd, ioctls.KVM_GET_API_VERSION);
    if (this.apiVersion !== KVM_API_VERSION) {
      throw new Error(`KVM API version ${this.apiVersion} is not supported (expected ${KVM_API_VERSION})`);
    }
    this.vcpuMmapSize = ioctl(fd, ioctls.KVM_GET_VCPU_MMAP_SIZE);
  }

  /** Opens /dev/kvm (or `path`). */
  static open(path = '/dev/kvm'): Kvm {
    const fd = addon().open(path);
    if (fd === -ENOENT) {
      throw new KvmError(`open ${path}`, ENOENT, {
        message: `${path} not found: this host has no KVM (load kvm_intel/kvm_amd or run on a host with virtualization)`,
      });
    }
    if (fd === -EACCES) {
      throw new KvmError(`open ${path}`, EACCES, {
        message: `${path}: permission denied: add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again)`,
      });
    }
    if (fd < 0) throw new KvmError(`open ${path}`, -fd);
    try {
      return new Kvm(fd);
    } catch (error) {
      addon().close(fd);
      throw error;
    }
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** KVM_CHECK_EXTENSION: 0 if unsupported, else 1 or a capability-specific number. */
  checkExtension(cap: number): number {
    return ioctl(this.#open(), ioctls.KVM_CHECK_EXTENSION, cap);
  }

  /** KVM_GET_SUPPORTED_CPUID: what KVM can expose to a guest on this host. */
  supportedCpuid(): CpuidEntry[] {
    for (let capacity = 256; ; capacity *= 2) {
      const bytes = encodeCpuid2([], capacity);
      try {
        ioctl(this.#open(), ioctls.KVM_GET_SUPPORTED_CPUID, bytes);
        return decodeCpuid2(bytes);
      } catch (error) {
        if (!(error instanceof KvmError) || error.errno !== E2BIG || capacity >= 4096) throw error;
      }
    }
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves/restores for a guest. */
  msrIndexList(): number[] {
    const { kvm_msr_list } = layout;
    let bytes = new Uint8Array(kvm_msr_list.size);
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        ioctl(this.#open(), ioctls.KVM_GET_MSR_INDEX_LIST, bytes);
        const view = new DataView(bytes.buffer);
        const count = view.getUint32(kvm_msr_list.nmsrs, true);
        return Array.from({ length: count }, (_, i) => view.getUint32(kvm_msr_list.indices + 4 * i, true));
      } catch (error) {
        if (!(error instanceof KvmError) || error.errno !== E2BIG) throw error;
        // KVM wrote the count it needs into nmsrs.
        const needed = new DataView(bytes.buffer).getUint32(kvm_msr_list.nmsrs, true);
        bytes = new Uint8Array(kvm_msr_list.size + 4 * needed);
        new DataView(bytes.buffer).setUint32(kvm_msr_list.nmsrs, needed, true);
      }
    }
    throw new Error('ioctl KVM_GET_MSR_INDEX_LIST: the list kept growing');
  }

  /** KVM_CREATE_VM (default machine type). */
  createVm(): Vm {
    const vmFd = ioctl(this.#open(), ioctls.KVM_CREATE_VM, 0);
    return new Vm(vmFd, this.vcpuMmapSize);
  }

  /** Closes /dev/kvm (VMs created from it stay usable until they are closed). */
  close(): void {
    if (this.#fd < 0) return;
    addon().close(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#fd < 0) throw closedError('Kvm');
    return this.#fd;
  }
}
