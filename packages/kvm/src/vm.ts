import {
  addon, ioctls, KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_DEASSIGN, KVM_IOEVENTFD_FLAG_PIO,
  KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_MEM_READONLY, KVM_PIT_SPEAKER_DUMMY, KvmCap, layout,
  type NativeMapping,
} from '@hype/kvm-sys';
import { GUEST_ADDRESS_LIMIT, GuestMemoryMap, type GuestMemory } from '@hype/guest-memory';
import { CoalescedRing } from './coalesced-ring.js';
import { check, closedError, ioctl } from './errors.js';
import { EventFd } from './eventfd.js';
import { encodeEnableCap } from './structs.js';
import { Vcpu } from './vcpu.js';

const PAGE_SIZE = 4096;
const MAX_REGION_SIZE = 4 * 1024 * 1024 * 1024; // one external ArrayBuffer (Node 20 limit)

export interface MemoryRegionOptions {
  /** Page-aligned guest-physical start. */
  guestPhysAddr: number;
  /** Bytes: a page multiple, at most 4 GiB. */
  size: number;
  /** Guest writes exit as MMIO writes instead of landing (KVM_MEM_READONLY). */
  readonly?: boolean;
}

/** A range of guest RAM: addon-allocated anonymous memory registered as one memslot. */
export interface MemoryRegion {
  readonly guestPhysAddr: number;
  readonly size: number;
  readonly slot: number;
  readonly readonly: boolean;
  /** The region's bytes, live (empty once the region or VM is closed). */
  readonly bytes: Uint8Array;
}

export interface IoEventFdOptions {
  /** Port (pio) or guest-physical address. */
  addr: number;
  /** Access width that triggers: 1, 2, 4 or 8 bytes, or 0 for any. */
  len: 0 | 1 | 2 | 4 | 8;
  /** A port-I/O address instead of MMIO. */
  pio?: boolean;
  /** Trigger only when the guest writes this value. */
  datamatch?: number | bigint;
  /** The eventfd to signal; a new one (owned and closed by the registration) if absent. */
  eventFd?: EventFd;
}

export interface IoEventFd {
  readonly eventFd: EventFd;
  /** Deassigns it (and closes the eventfd if the registration created it). */
  remove(): void;
}

export interface CoalescedZoneOptions {
  /** Port (pio) or guest-physical address. */
  addr: number;
  /** Bytes from `addr`; only writes entirely inside are coalesced. */
  size: number;
  /** Port I/O (KVM_CAP_COALESCED_PIO) instead of MMIO. */
  pio?: boolean;
}

export interface CoalescedZone {
  /** KVM_UNREGISTER_COALESCED_MMIO (idempotent). Writes already in the ring stay there to be drained. */
  remove(): void;
}

export interface IrqFdOptions {
  /** The GSI to raise (an IOAPIC/PIC pin with the default routing). */
  gsi: number;
  /** The eventfd that triggers the interrupt; a new one (owned) if absent. */
  eventFd?: EventFd;
  /** Level-triggered emulation: KVM signals this eventfd when the guest EOIs (KVM_IRQFD_FLAG_RESAMPLE). */
  resampleFd?: EventFd;
}

export interface IrqFd {
  readonly eventFd: EventFd;
  /** Raises the interrupt (writes 1 to the eventfd). */
  trigger(): void;
  remove(): void;
}

interface RegionRecord extends MemoryRegion {
  mapping: NativeMapping;
}

/** A KVM virtual machine: guest memory, in-kernel devices, eventfd wiring and vCPUs. */
export class Vm implements Disposable {
  #fd: number;
  readonly #vcpuMmapSize: number;
  readonly #memory = new GuestMemoryMap();
  readonly #regions = new Map<number, RegionRecord>();
  readonly #vcpus = new Set<Vcpu>();
  readonly #ownedEventFds = new Set<EventFd>();

  /** @internal Created by Kvm.createVm(). */
  constructor(fd: number, vcpuMmapSize: number) {
    this.#fd = fd;
    this.#vcpuMmapSize = vcpuMmapSize;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** All guest RAM, as bounds-checked live views. */
  get memory(): GuestMemory {
    return this.#memory;
  }

  get regions(): readonly MemoryRegion[] {
    return [...this.#regions.values()].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
  }

  get vcpus(): readonly Vcpu[] {
    return [...this.#vcpus];
  }

  /** KVM_CHECK_EXTENSION on this VM (some answers differ per VM). */
  checkExtension(cap: number): number {
    return ioctl(this.#open(), ioctls.KVM_CHECK_EXTENSION, cap);
  }

  /** Allocates guest RAM (zeroed, MAP_NORESERVE) and maps it at `guestPhysAddr` in a free memslot. */
  addMemory(options: MemoryRegionOptions): MemoryRegion {
    const { guestPhysAddr, size } = options;
    const fd = this.#open();
    const hex = (n: number) => `0x${n.toString(16)}`;
    if (!Number.isSafeInteger(guestPhysAddr) || guestPhysAddr < 0 || guestPhysAddr % PAGE_SIZE !== 0) {
      throw new RangeError(`addMemory: guestPhysAddr ${guestPhysAddr} must be a page-aligned (4 KiB) non-negative integer`);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0 || size > MAX_REGION_SIZE) {
      throw new RangeError(`addMemory: size ${size} must be a multiple of 4 KiB between 4 KiB and 4 GiB (use several regions above)`);
    }
    if (guestPhysAddr + size > GUEST_ADDRESS_LIMIT) {
      throw new RangeError(`addMemory: [${hex(guestPhysAddr)}, ${hex(guestPhysAddr + size)}) is beyond 2^52`);
    }
    const probe = { guestPhysAddr, size, bytes: new Uint8Array(0) };
    this.#memory.add(probe); // throws on overlap
    this.#memory.remove(probe);

    let slot = 0;
    while (this.#regions.has(slot)) slot++;
    const native = addon();
    const mapping = new native.Mapping(size);
    const flags = options.readonly ? KVM_MEM_READONLY : 0;
    const result = native.setUserMemoryRegion(fd, slot, flags, guestPhysAddr, mapping);
    if (result < 0) {
      mapping.close();
      check(result, 'ioctl KVM_SET_USER_MEMORY_REGION', `slot ${slot} at ${hex(guestPhysAddr)} size ${hex(size)}`);
    }
    const region: RegionRecord = {
      guestPhysAddr, size, slot, readonly: options.readonly ?? false, bytes: new Uint8Array(mapping.buffer!), mapping,
    };
    this.#regions.set(slot, region);
    this.#memory.add(region);
    return publicRegion(region);
  }

  /** Deletes the memslot and unmaps the memory (its `bytes` become empty). */
  removeMemory(region: MemoryRegion): void {
    const record = this.#regions.get(region.slot);
    if (!record || record.guestPhysAddr !== region.guestPhysAddr) throw new Error('removeMemory: not a region of this VM');
    if (this.#vcpus.size > 0 && [...this.#vcpus].some((vcpu) => vcpu.running)) {
      throw new Error('removeMemory: stop the vCPUs first');
    }
    addon().removeUserMemoryRegion(record.mapping);
    record.mapping.close();
    this.#memory.remove(record);
    this.#regions.delete(record.slot);
  }

  /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and local APICs (before creating vCPUs). */
  createIrqchip(): void {
    ioctl(this.#open(), ioctls.KVM_CREATE_IRQCHIP);
  }

  /** KVM_CREATE_PIT2: in-kernel i8254 (after createIrqchip). */
  createPit2(options: { speakerDummy?: boolean } = {}): void {
    const config = new Uint8Array(layout.kvm_pit_config.size);
    new DataView(config.buffer).setUint32(layout.kvm_pit_config.flags, options.speakerDummy ? KVM_PIT_SPEAKER_DUMMY : 0, true);
    ioctl(this.#open(), ioctls.KVM_CREATE_PIT2, config);
  }

  /** KVM_SET_TSS_ADDR: a 3-page guest-physical range Intel VMX needs for real mode (e.g. 0xfffbd000). */
  setTssAddr(guestPhysAddr: number): void {
    ioctl(this.#open(), ioctls.KVM_SET_TSS_ADDR, guestPhysAddr);
  }

  /** KVM_SET_IDENTITY_MAP_ADDR: one page for the VMX real-mode identity page table (e.g. 0xfffbc000). */
  setIdentityMapAddr(guestPhysAddr: number): void {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(guestPhysAddr), true);
    ioctl(this.#open(), ioctls.KVM_SET_IDENTITY_MAP_ADDR, bytes);
  }

  /** KVM_IRQ_LINE: drive interrupt line `irq` (GSI) high or low. */
  irqLine(irq: number, level: boolean | 0 | 1): void {
    const bytes = new Uint8Array(layout.kvm_irq_level.size);
    const view = new DataView(bytes.buffer);
    view.setUint32(layout.kvm_irq_level.irq, irq, true);
    view.setUint32(layout.kvm_irq_level.level, level ? 1 : 0, true);
    ioctl(this.#open(), ioctls.KVM_IRQ_LINE, bytes);
  }

  /** KVM_IOEVENTFD: a guest write to `addr` signals an eventfd inside KVM, without a userspace exit. */
  ioeventfd(options: IoEventFdOptions): IoEventFd {
    const fd = this.#open();
    const eventFd = options.eventFd ?? this.#ownEventFd();
    let flags = options.pio ? KVM_IOEVENTFD_FLAG_PIO : 0;
    if (options.datamatch !== undefined) flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    const encode = (extraFlags: number) => {
      const { kvm_ioeventfd: L } = layout;
      const bytes = new Uint8Array(L.size);
      const view = new DataView(bytes.buffer);
      view.setBigUint64(L.datamatch, BigInt.asUintN(64, BigInt(options.datamatch ?? 0)), true);
      view.setBigUint64(L.addr, BigInt(options.addr), true);
      view.setUint32(L.len, options.len, true);
      view.setInt32(L.fd, eventFd.fd, true);
      view.setUint32(L.flags, flags | extraFlags, true);
      return bytes;
    };
    const remove = this.#assignEventFd(fd, ioctls.KVM_IOEVENTFD, encode, KVM_IOEVENTFD_FLAG_DEASSIGN, eventFd, !options.eventFd);
    return { eventFd, remove };
  }

  /**
   * KVM_REGISTER_COALESCED_MMIO: guest writes inside the zone no longer exit; KVM appends them to the
   * VM's coalesced ring (`coalescedRing()`), and the VMM applies them later, in order. Only for registers
   * whose writes need no immediate answer. Needs KVM_CAP_COALESCED_MMIO (KVM_CAP_COALESCED_PIO for ports).
   */
  coalescedZone(options: CoalescedZoneOptions): CoalescedZone {
    const fd = this.#open();
    const { addr, size } = options;
    const limit = options.pio ? 0x1_0000 : GUEST_ADDRESS_LIMIT;
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(size) || addr < 0 || size <= 0 || size > 0xffff_ffff || addr + size > limit) {
      throw new RangeError(`coalescedZone: ${options.pio ? 'port' : 'address'} range ${addr} + ${size} is not inside the ${options.pio ? 'port' : 'guest-physical'} space`);
    }
    const { kvm_coalesced_mmio_zone: L } = layout;
    const zone = new Uint8Array(L.size);
    const view = new DataView(zone.buffer);
    view.setBigUint64(L.addr, BigInt(addr), true);
    view.setUint32(L.zone_size, size, true);
    view.setUint32(L.pio, options.pio ? 1 : 0, true);
    ioctl(fd, ioctls.KVM_REGISTER_COALESCED_MMIO, zone);
    let removed = false;
    return {
      remove: () => {
        if (removed) return;
        removed = true;
        if (this.#fd >= 0) ioctl(this.#fd, ioctls.KVM_UNREGISTER_COALESCED_MMIO, zone);
      },
    };
  }

  /**
   * The VM's coalesced-write ring, read through `vcpu`'s mmap (the first vCPU's by default); it stays
   * readable while that vCPU is open. Throws when KVM has no coalesced MMIO.
   */
  coalescedRing(vcpu: Vcpu | undefined = this.#vcpus.values().next().value): CoalescedRing {
    const pageOffset = this.checkExtension(KvmCap.COALESCED_MMIO);
    if (pageOffset <= 0) throw new Error('coalescedRing: this KVM has no coalesced MMIO (KVM_CAP_COALESCED_MMIO)');
    if (!vcpu || vcpu.closed || !this.#vcpus.has(vcpu)) throw new Error('coalescedRing: needs an open vCPU of this VM (its mmap holds the ring)');
    return new CoalescedRing(vcpu.run.bytes, pageOffset);
  }

  /** KVM_IRQFD: writing the eventfd raises interrupt `gsi` inside KVM (needs createIrqchip). */
  irqfd(options: IrqFdOptions): IrqFd {
    const fd = this.#open();
    const eventFd = options.eventFd ?? this.#ownEventFd();
    const encode = (flags: number) => {
      const { kvm_irqfd: L } = layout;
      const bytes = new Uint8Array(L.size);
      const view = new DataView(bytes.buffer);
      view.setUint32(L.fd, eventFd.fd, true);
      view.setUint32(L.gsi, options.gsi, true);
      view.setUint32(L.flags, flags | (options.resampleFd ? KVM_IRQFD_FLAG_RESAMPLE : 0), true);
      view.setUint32(L.resamplefd, options.resampleFd?.fd ?? 0, true);
      return bytes;
    };
    const remove = this.#assignEventFd(fd, ioctls.KVM_IRQFD, encode, KVM_IRQFD_FLAG_DEASSIGN, eventFd, !options.eventFd);
    return { eventFd, trigger: () => eventFd.write(1), remove };
  }

  /** KVM_ENABLE_CAP on the VM, e.g. enableCap(KvmCap.EXIT_ON_EMULATION_FAILURE, [1]). */
  enableCap(cap: number, args: readonly (number | bigint)[] = [], flags = 0): void {
    ioctl(this.#open(), ioctls.KVM_ENABLE_CAP, encodeEnableCap(cap, args, flags));
  }

  /** KVM_CREATE_VCPU and the mmap of its kvm_run area. */
  createVcpu(id: number): Vcpu {
    const vcpuFd = ioctl(this.#open(), ioctls.KVM_CREATE_VCPU, id);
    let mapping: NativeMapping;
    try {
      mapping = new (addon().Mapping)(this.#vcpuMmapSize, vcpuFd);
    } catch (error) {
      addon().close(vcpuFd);
      throw error;
    }
    const vcpu = new Vcpu(id, vcpuFd, mapping, (closed) => this.#vcpus.delete(closed));
    this.#vcpus.add(vcpu);
    return vcpu;
  }

  /** Closes the vCPUs (ending their threads), deletes the memslots, closes the VM and unmaps its memory. */
  close(): void {
    if (this.#fd < 0) return;
    for (const vcpu of [...this.#vcpus]) vcpu.close();
    const native = addon();
    for (const region of this.#regions.values()) native.removeUserMemoryRegion(region.mapping);
    native.close(this.#fd);
    this.#fd = -1;
    for (const region of this.#regions.values()) {
      region.mapping.close();
      this.#memory.remove(region);
    }
    this.#regions.clear();
    for (const eventFd of this.#ownedEventFds) eventFd.close();
    this.#ownedEventFds.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#fd < 0) throw closedError('Vm');
    return this.#fd;
  }

  /**
   * KVM_IOEVENTFD / KVM_IRQFD: assigns `encode(0)` and returns the idempotent undo (`encode(deassign)`).
   * An eventfd the registration created (`owned`) is closed on failure and on removal.
   */
  #assignEventFd(
    fd: number,
    request: number,
    encode: (flags: number) => Uint8Array,
    deassign: number,
    eventFd: EventFd,
    owned: boolean,
  ): () => void {
    try {
      ioctl(fd, request, encode(0));
    } catch (error) {
      if (owned) this.#releaseEventFd(eventFd);
      throw error;
    }
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      if (this.#fd >= 0) ioctl(this.#fd, request, encode(deassign));
      if (owned) this.#releaseEventFd(eventFd);
    };
  }

  #ownEventFd(): EventFd {
    const eventFd = new EventFd();
    this.#ownedEventFds.add(eventFd);
    return eventFd;
  }

  #releaseEventFd(eventFd: EventFd): void {
    eventFd.close();
    this.#ownedEventFds.delete(eventFd);
  }
}

function publicRegion(region: RegionRecord): MemoryRegion {
  return Object.freeze({
    guestPhysAddr: region.guestPhysAddr,
    size: region.size,
    slot: region.slot,
    readonly: region.readonly,
    get bytes() {
      return region.bytes;
    },
  });
}
