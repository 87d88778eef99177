// Tiny hand-assembled guests on the real /dev/kvm: port I/O, MMIO, hlt, ioeventfd, irqfd, stop, close.
// Skipped (with a message) on hosts without /dev/kvm. Each guest's assembly is in the comments next to
// its bytes. Guest CPL0 code is emulated on PVM hosts, so the guests stay a few instructions long.
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { KvmCap, KvmError, KvmExit, Kvm, PioReadMirror, type KvmRun, type Vcpu, type Vm } from '../src/index.js';

const hasKvm = existsSync('/dev/kvm');
if (!hasKvm) console.warn('[hype] /dev/kvm absent on this host: skipping KVM tests in packages/kvm/test/guests.test.ts');

const CODE = 0x1000;

/** One guest's exits as they happened, for assertions after the run. */
type Seen = string[];

function describeExit(run: KvmRun): string {
  if (run.exitReason === KvmExit.IO) {
    const io = run.io;
    return `io ${io.direction} 0x${io.port.toString(16)} ${io.size}`;
  }
  if (run.exitReason === KvmExit.MMIO) {
    const mmio = run.mmio;
    return `mmio ${mmio.isWrite ? 'write' : 'read'} 0x${mmio.physAddr.toString(16)} ${mmio.len}`;
  }
  return run.describe();
}

/** Real mode at 0000:rip, as after reset but with CS based at 0. */
function enterRealMode(vcpu: Vcpu, rip: number, regs: { rax?: bigint; rbx?: bigint; rsp?: bigint } = {}) {
  const sregs = vcpu.getSregs();
  expect(sregs.cs.selector).toBe(0xf000); // reset state
  sregs.cs.base = 0n;
  sregs.cs.selector = 0;
  vcpu.setSregs(sregs);
  vcpu.setRegs({
    ...vcpu.getRegs(),
    rip: BigInt(rip),
    rax: regs.rax ?? 0n,
    rbx: regs.rbx ?? 0n,
    rsp: regs.rsp ?? 0x7000n,
    rflags: 2n,
  });
}

function createVm(kvm: Kvm): Vm {
  const vm = kvm.createVm();
  vm.setTssAddr(0xfffbd000); // Intel VMX needs it for real mode; harmless elsewhere
  return vm;
}

describe.skipIf(!hasKvm)('KVM guests', () => {
  const open: { close(): void }[] = [];
  const track = <T extends { close(): void }>(resource: T): T => {
    open.push(resource);
    return resource;
  };
  afterEach(() => {
    for (const resource of open.reverse()) resource.close();
    open.length = 0;
  });

  it('reports the API version and basic capabilities', () => {
    const kvm = track(Kvm.open());
    expect(kvm.apiVersion).toBe(12);
    expect(kvm.vcpuMmapSize).toBeGreaterThanOrEqual(4096);
    expect(kvm.checkExtension(KvmCap.USER_MEMORY)).toBeGreaterThan(0);
    expect(kvm.checkExtension(KvmCap.IMMEDIATE_EXIT)).toBeGreaterThan(0);
    const cpuid = kvm.supportedCpuid();
    expect(cpuid.find((entry) => entry.function === 0)?.eax).toBeGreaterThan(0);
    expect(kvm.msrIndexList()).toContain(0x10); // IA32_TIME_STAMP_COUNTER
  });

  it('real mode: out, in, MMIO write, MMIO read and hlt, with data and registers checked', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 }); // 0x8000 and up is MMIO
    // prettier-ignore
    ram.bytes.set([
      0xba, 0xf8, 0x03, //       mov dx, 0x3f8
      0x00, 0xd8, //             add al, bl          ; 2 + 3
      0x04, 0x30, //             add al, '0'         ; '5'
      0xee, //                   out dx, al          -> IO out 0x3f8 '5'
      0xec, //                   in al, dx           <- IO in 0x3f8: host answers 0x42
      0xa2, 0x00, 0x90, //       mov [0x9000], al    -> MMIO write 0x9000 (1 byte 0x42)
      0xa1, 0x02, 0x90, //       mov ax, [0x9002]    <- MMIO read 0x9002 (2 bytes): host answers 0xbeef
      0x89, 0xc3, //             mov bx, ax
      0xf4, //                   hlt                 -> HLT (no in-kernel irqchip)
    ], CODE);
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE, { rax: 2n, rbx: 3n });

    const seen: Seen = [];
    const result = await vcpu.start((run) => {
      seen.push(describeExit(run));
      switch (run.exitReason) {
        case KvmExit.IO: {
          const io = run.io;
          if (io.direction === 'out') expect(String.fromCharCode(io.data[0])).toBe('5');
          else io.data[0] = 0x42;
          return;
        }
        case KvmExit.MMIO: {
          const mmio = run.mmio;
          if (mmio.isWrite) expect([...mmio.data]).toEqual([0x42]);
          else mmio.data.set([0xef, 0xbe]);
          return;
        }
        case KvmExit.HLT:
          return 'stop';
        default:
          throw new Error(`unexpected exit ${run.describe()}`);
      }
    });

    expect(result).toBe('stopped');
    expect(seen).toEqual([
      'io out 0x3f8 1',
      'io in 0x3f8 1',
      'mmio write 0x9000 1',
      'mmio read 0x9002 2',
      'HLT',
    ]);
    const regs = vcpu.getRegs();
    expect(regs.rip).toBe(BigInt(CODE + 18)); // after hlt
    expect(regs.rax & 0xffffn).toBe(0xbeefn);
    expect(regs.rbx & 0xffffn).toBe(0xbeefn);
    expect(regs.rdx & 0xffffn).toBe(0x3f8n);
    expect(vm.memory.view(0x9000, 1)).toBeUndefined(); // MMIO, not RAM
  });

  it('real mode: 1-byte INs from a port in the PioReadMirror are answered on the vCPU thread; other accesses exit', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    // prettier-ignore
    ram.bytes.set([
      0xba, 0xfd, 0x03, //       mov dx, 0x3fd
      0xb9, 0x64, 0x00, //       mov cx, 100
      0x31, 0xdb, //             xor bx, bx
      0xec, //             l:    in al, dx           ; mirrored: 0x03, 100 times, no exit
      0x00, 0xc3, //             add bl, al
      0xe2, 0xfb, //             loop l
      0xba, 0xf8, 0x03, //       mov dx, 0x3f8
      0x88, 0xd8, //             mov al, bl
      0xee, //                   out dx, al          -> IO out 0x3f8: 100 * 3 = 0x12c -> 0x2c; host publishes 0x07
      0xba, 0xfd, 0x03, //       mov dx, 0x3fd
      0xec, //                   in al, dx           ; mirrored: 0x07
      0x88, 0xc3, //             mov bl, al
      0xed, //                   in ax, dx           <- 2 bytes: not mirrored, host answers 0xbeef
      0xf4, //                   hlt
    ], CODE);
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);
    const mirror = track(new PioReadMirror());
    mirror.set(0x3fd, 0x03);
    mirror.set(0x3f8, undefined);

    const seen: Seen = [];
    await vcpu.start(
      (run) => {
        seen.push(describeExit(run));
        if (run.exitReason === KvmExit.IO) {
          const io = run.io;
          if (io.direction === 'out') {
            expect(io.data[0]).toBe(0x2c);
            expect(vcpu.pioMirrorHits).toBe(100);
            mirror.set(0x3fd, 0x07);
          } else io.data.set([0xef, 0xbe]);
          return;
        }
        return 'stop';
      },
      { pioReadMirror: mirror },
    );

    expect(seen).toEqual(['io out 0x3f8 1', 'io in 0x3fd 2', 'HLT']);
    expect(vcpu.pioMirrorHits).toBe(101);
    const regs = vcpu.getRegs();
    expect(regs.rip).toBe(BigInt(CODE + 0x1b));
    expect(regs.rbx & 0xffn).toBe(0x07n);
    expect(regs.rax & 0xffffn).toBe(0xbeefn);
  });

  it('64-bit long mode (GDT and page tables built here): out, in, MMIO and 64-bit registers', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x200000 }); // 2 MiB; 0x200000-0x3fffff is MMIO
    const mem = new DataView(ram.bytes.buffer, ram.bytes.byteOffset, ram.bytes.byteLength);

    // GDT at 0x500: null, 64-bit code (0x08), data (0x10).
    const GDT = 0x500;
    mem.setBigUint64(GDT + 0x00, 0n, true);
    mem.setBigUint64(GDT + 0x08, 0x00af9a000000ffffn, true); // P, DPL0, S, type 0xa (exec/read), L, G
    mem.setBigUint64(GDT + 0x10, 0x00cf92000000ffffn, true); // P, DPL0, S, type 0x2 (read/write), D/B, G
    // Identity map of 0-4 MiB with two 2 MiB pages: PML4 0x9000 -> PDPT 0xa000 -> PD 0xb000.
    const PML4 = 0x9000;
    const PDPT = 0xa000;
    const PD = 0xb000;
    mem.setBigUint64(PML4, BigInt(PDPT) | 0x3n, true); // present, writable
    mem.setBigUint64(PDPT, BigInt(PD) | 0x3n, true);
    mem.setBigUint64(PD + 0, 0x000000n | 0x83n, true); // present, writable, 2 MiB page
    mem.setBigUint64(PD + 8, 0x200000n | 0x83n, true);

    // prettier-ignore
    ram.bytes.set([
      0x66, 0xba, 0xf8, 0x03, //                    mov dx, 0x3f8
      0xb0, 0x4c, //                                mov al, 'L'
      0xee, //                                      out dx, al            -> IO out 'L'
      0xec, //                                      in al, dx             <- host answers 0x17
      0x48, 0xc7, 0xc3, 0x00, 0x00, 0x30, 0x00, //  mov rbx, 0x300000
      0x88, 0x03, //                                mov [rbx], al         -> MMIO write 0x300000 (0x17)
      0x8b, 0x43, 0x08, //                          mov eax, [rbx + 8]    <- MMIO read 0x300008 (4 bytes)
      0x48, 0xb9, 0xf0, 0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, // mov rcx, 0x123456789abcdef0
      0xf4, //                                      hlt
    ], CODE);

    const vcpu = vm.createVcpu(0);
    const sregs = vcpu.getSregs();
    const code = { base: 0n, limit: 0xfffff, selector: 0x08, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 };
    const data = { ...code, selector: 0x10, type: 0x3, db: 1, l: 0 };
    Object.assign(sregs, { cs: code, ds: data, es: data, fs: data, gs: data, ss: data });
    sregs.gdt = { base: BigInt(GDT), limit: 3 * 8 - 1 };
    sregs.cr3 = BigInt(PML4);
    sregs.cr4 = 0x20n; // PAE
    sregs.cr0 = 0x80000011n; // PG | ET | PE
    sregs.efer = 0x500n; // LME | LMA
    vcpu.setSregs(sregs);
    vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(CODE), rsp: 0x8000n, rflags: 2n });

    const seen: Seen = [];
    await vcpu.start((run) => {
      seen.push(describeExit(run));
      if (run.exitReason === KvmExit.IO) {
        const io = run.io;
        if (io.direction === 'out') expect(io.data[0]).toBe(0x4c);
        else io.data[0] = 0x17;
      } else if (run.exitReason === KvmExit.MMIO) {
        const mmio = run.mmio;
        if (mmio.isWrite) expect([...mmio.data]).toEqual([0x17]);
        else mmio.data.set([0x78, 0x56, 0x34, 0x12]);
      } else if (run.exitReason === KvmExit.HLT) {
        return 'stop';
      } else {
        throw new Error(`unexpected exit ${run.describe()}`);
      }
    });

    expect(seen).toEqual(['io out 0x3f8 1', 'io in 0x3f8 1', 'mmio write 0x300000 1', 'mmio read 0x300008 4', 'HLT']);
    const regs = vcpu.getRegs();
    expect(regs.rip).toBe(BigInt(CODE + 31));
    expect(regs.rax).toBe(0x12345678n); // a 32-bit load zero-extends
    expect(regs.rbx).toBe(0x300000n);
    expect(regs.rcx).toBe(0x123456789abcdef0n);
    const after = vcpu.getSregs();
    expect(after.efer & 0x500n).toBe(0x500n);
    expect(after.cs.l).toBe(1);
  });

  it('ioeventfd: a matching guest write signals the eventfd with no userspace exit', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    // prettier-ignore
    ram.bytes.set([
      0xb0, 0x5a, //  mov al, 0x5a
      0xe6, 0x10, //  out 0x10, al   ; matches the ioeventfd: no exit
      0xb0, 0x5b, //  mov al, 0x5b
      0xe6, 0x10, //  out 0x10, al   ; datamatch fails: an ordinary IO exit
      0xe6, 0x11, //  out 0x11, al   -> IO exit
      0xf4, //        hlt
    ], CODE);
    const notify = vm.ioeventfd({ addr: 0x10, len: 1, pio: true, datamatch: 0x5a });
    const signalled = new Promise<bigint>((resolve) => {
      const watch = notify.eventFd.watch((count) => {
        watch.close();
        resolve(count);
      });
    });
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);

    const seen: Seen = [];
    await vcpu.start((run) => {
      seen.push(describeExit(run));
      if (run.exitReason === KvmExit.IO) expect(run.io.data[0]).toBe(0x5b);
      return run.exitReason === KvmExit.HLT ? 'stop' : undefined;
    });
    expect(seen).toEqual(['io out 0x10 1', 'io out 0x11 1', 'HLT']);
    expect(await signalled).toBe(1n);
    notify.remove();
  });

  it('coalesced port I/O: writes to a zone queue in the ring in order; a full ring exits; other writes exit', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    expect(vm.checkExtension(KvmCap.COALESCED_PIO)).toBeGreaterThan(0);
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    // prettier-ignore
    ram.bytes.set([
      0xba, 0xf8, 0x03, //       mov dx, 0x3f8
      0xb9, 0xc8, 0x00, //       mov cx, 200
      0x88, 0xc8, //       l:    mov al, cl
      0xee, //                   out dx, al       ; coalesced until the ring is full (169), then exits
      0xe2, 0xfb, //             loop l
      0xe6, 0x10, //             out 0x10, al     ; not in a zone: exits
      0xf4, //                   hlt
    ], CODE);
    const zone = vm.coalescedZone({ addr: 0x3f8, size: 1, pio: true });
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);
    const ring = vm.coalescedRing();
    expect(ring.capacity).toBe(170);

    const delivered: number[] = [];
    const seen: Seen = [];
    await vcpu.start((run) => {
      ring.drain((port, data, pio) => {
        expect([port, data.length, pio]).toEqual([0x3f8, 1, true]);
        delivered.push(data[0]);
      });
      seen.push(describeExit(run));
      if (run.exitReason === KvmExit.IO && run.io.port === 0x3f8) delivered.push(run.io.data[0]);
      return run.exitReason === KvmExit.HLT ? 'stop' : undefined;
    });
    // Every byte once, in the guest's order, whichever way it came.
    expect(delivered).toEqual(Array.from({ length: 200 }, (_, i) => 200 - i));
    expect(ring.delivered).toBeGreaterThanOrEqual(169);
    expect(seen.filter((s) => s === 'io out 0x3f8 1').length).toBe(200 - ring.delivered);
    expect(seen.slice(-2)).toEqual(['io out 0x10 1', 'HLT']);

    // Unregistered: the same writes exit again.
    zone.remove();
    zone.remove();
    vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(CODE), rflags: 2n });
    let exits = 0;
    await vcpu.start((run) => {
      if (run.exitReason === KvmExit.IO && run.io.port === 0x3f8) exits++;
      return run.exitReason === KvmExit.HLT ? 'stop' : undefined;
    });
    expect(exits).toBe(200);
    expect(ring.pending).toBe(false);
  });

  it('irqfd: an eventfd write raises an interrupt the guest handles (in-kernel PIC, real-mode IVT)', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    vm.createIrqchip();
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    const IRQ = 5;
    const VECTOR = 0x20 + IRQ;
    const HANDLER = 0x2000;
    // IVT entry: offset, segment.
    new DataView(ram.bytes.buffer).setUint16(VECTOR * 4, HANDLER, true);
    new DataView(ram.bytes.buffer).setUint16(VECTOR * 4 + 2, 0, true);
    // prettier-ignore
    ram.bytes.set([
      0xb0, 0x11, 0xe6, 0x20, //  mov al, 0x11 ; out 0x20, al   ; ICW1: edge, cascade, ICW4 follows
      0xb0, 0x20, 0xe6, 0x21, //  mov al, 0x20 ; out 0x21, al   ; ICW2: vectors 0x20-0x27
      0xb0, 0x04, 0xe6, 0x21, //  mov al, 0x04 ; out 0x21, al   ; ICW3: slave on IR2
      0xb0, 0x01, 0xe6, 0x21, //  mov al, 0x01 ; out 0x21, al   ; ICW4: 8086 mode
      0xb0, 0xdf, 0xe6, 0x21, //  mov al, 0xdf ; out 0x21, al   ; OCW1: unmask IRQ5 only
      0xfb, //                    sti
      0xb0, 0x01, 0xe6, 0x11, //  mov al, 1 ; out 0x11, al      -> IO exit: "ready", the host writes the irqfd
      0xf4, //                    wait: hlt                      ; halts in the kernel (irqchip)
      0xeb, 0xfd, //              jmp wait
    ], CODE);
    // prettier-ignore
    ram.bytes.set([
      0xb0, 0x99, 0xe6, 0x12, //  mov al, 0x99 ; out 0x12, al   -> IO exit: "interrupt seen"
      0xb0, 0x20, 0xe6, 0x20, //  mov al, 0x20 ; out 0x20, al   ; EOI
      0xcf, //                    iret
    ], HANDLER);

    const irq = vm.irqfd({ gsi: IRQ });
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);

    const seen: Seen = [];
    await vcpu.start((run) => {
      seen.push(describeExit(run));
      if (run.exitReason !== KvmExit.IO) throw new Error(`unexpected exit ${run.describe()}`);
      const io = run.io;
      if (io.port === 0x11) irq.trigger();
      if (io.port === 0x12) {
        expect(io.data[0]).toBe(0x99);
        return 'stop';
      }
    });
    // The PIC programming writes are handled in the kernel: only the two ports above exit.
    expect(seen).toEqual(['io out 0x11 1', 'io out 0x12 1']);
    const regs = vcpu.getRegs();
    // Stopping re-entered KVM_RUN with immediate_exit, which completed the out: RIP is past it.
    expect(regs.rip).toBe(BigInt(HANDLER + 4));
    irq.remove();
  });

  it('stop() interrupts a guest spinning without exits; close() ends a running vCPU', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    ram.bytes.set([0xeb, 0xfe], CODE); // jmp $
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);
    const running = vcpu.start(() => {
      throw new Error('no exit expected');
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(vcpu.running).toBe(true);
    vcpu.stop();
    expect(await running).toBe('stopped');
    expect(vcpu.getRegs().rip).toBe(BigInt(CODE));

    const again = vcpu.start(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    vm.close();
    expect(await again).toBe('closed');
    expect(vcpu.closed).toBe(true);
    expect(ram.bytes.length).toBe(0); // unmapped
  });

  it('exit poll: many exits each delivered once, in order; stop() from a timer ends a polling run', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    // prettier-ignore
    ram.bytes.set([
      0x31, 0xc0, //             xor ax, ax
      0x40, //             l:    inc ax
      0xe7, 0x10, //             out 0x10, ax        -> IO out 0x10 2, data = the exit's number
      0xeb, 0xfb, //             jmp l
    ], CODE);
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);
    // A cap far above an exit's round trip and a time cap far above the 64-exit cap, even in a nested
    // emulator. The governor polls once it has learned this exit site, and pauses after misses (a cold
    // JIT, a loaded machine: 812 of 3000 polled in one CI run), so 5000 exits with a tenth of them polled
    // exercise the path.
    const exitPoll = { budgetNs: 1_000_000, maxMs: 50 };
    let last = 0;
    const check = (run: KvmRun) => {
      expect(describeExit(run)).toBe('io out 0x10 2');
      const value = run.io.data[0] | (run.io.data[1] << 8);
      expect(value).toBe((last + 1) & 0xffff);
      last = value;
    };
    let exits = 0;
    expect(await vcpu.start((run) => (check(run), ++exits === 5000 ? 'stop' : undefined), { exitPoll })).toBe('stopped');
    expect(last).toBe(5000);
    expect(vcpu.polledExits).toBeGreaterThan(500);
    expect(vcpu.getRegs().rip).toBe(BigInt(CODE + 5)); // the OUT completed, the jmp not yet run

    // Nothing returns 'stop' now: the timer must get its turn between inline bursts.
    let timerRan = false;
    const running = vcpu.start(check, { exitPoll });
    setTimeout(() => {
      timerRan = true;
      vcpu.stop();
    }, 200);
    expect(await running).toBe('stopped');
    expect(timerRan).toBe(true);
    expect(last).toBeGreaterThan(5000);
    expect(vcpu.polledExits).toBeGreaterThan(0);
    // Stopped between instructions: before or after `inc ax`, never with an exit lost or repeated.
    const regs = vcpu.getRegs();
    const ax = Number(regs.rax & 0xffffn);
    if (regs.rip === BigInt(CODE + 3)) expect(ax).toBe((last + 1) & 0xffff);
    else {
      expect([BigInt(CODE + 2), BigInt(CODE + 5)]).toContain(regs.rip);
      expect(ax).toBe(last);
    }
  });

  it('probe(): a running vCPU reports its MP state and RFLAGS from its own thread (cli; hlt = halted, IF clear)', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    vm.createIrqchip(); // hlt is handled (blocked on) in the kernel
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    ram.bytes.set([0xfa, 0xf4, 0xeb, 0xfd], CODE); // cli ; hlt ; jmp back to hlt
    ram.bytes.set([0xeb, 0xfe], CODE + 0x10); // jmp $
    const halted = vm.createVcpu(0);
    const spinning = vm.createVcpu(1);
    enterRealMode(halted, CODE);
    enterRealMode(spinning, CODE + 0x10);
    spinning.setMpState(0); // an AP waits for SIPI (UNINITIALIZED) under the in-kernel irqchip
    const runs = [halted.start(() => undefined), spinning.start(() => undefined)];
    const probed = async (vcpu: Vcpu) => {
      const before = vcpu.probeResult?.count ?? 0;
      for (let i = 0; i < 200 && (vcpu.probeResult?.count ?? 0) === before; i++) {
        vcpu.probe();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return vcpu.probeResult!;
    };
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(halted.threadId).toBeGreaterThan(0);
    const h = await probed(halted);
    expect(h).toMatchObject({ mpState: 3 /* KVM_MP_STATE_HALTED */, errno: 0 });
    expect(h.rflags & 0x200).toBe(0); // IF clear
    const r = await probed(spinning);
    expect(r).toMatchObject({ mpState: 0 /* KVM_MP_STATE_RUNNABLE */, errno: 0 });
    expect(halted.running && spinning.running).toBe(true); // probing did not stop them
    halted.stop();
    spinning.stop();
    expect(await Promise.all(runs)).toEqual(['stopped', 'stopped']);
  });

  it('a handler error stops the vCPU and rejects start()', async () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    ram.bytes.set([0xe6, 0x10, 0xeb, 0xfc], CODE); // out 0x10, al ; jmp back
    const vcpu = vm.createVcpu(0);
    enterRealMode(vcpu, CODE);
    let exits = 0;
    await expect(
      vcpu.start(async () => {
        if (++exits === 3) throw new Error('device failed');
      }),
    ).rejects.toThrow('device failed');
    expect(exits).toBe(3);
    expect(vcpu.running).toBe(false);
  });

  it('vCPU state round-trips: regs, sregs, fpu, msrs, cpuid, lapic, events, mp state', () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    vm.createIrqchip();
    const vcpu = vm.createVcpu(0);
    const regs = { ...vcpu.getRegs(), rax: 0xfedcba9876543210n, r15: 1n, rip: 0xfff0n };
    vcpu.setRegs(regs);
    expect(vcpu.getRegs()).toEqual(regs);
    const sregs = vcpu.getSregs();
    sregs.cs = { ...sregs.cs, base: 0n, selector: 0 };
    vcpu.setSregs(sregs);
    const readBack = vcpu.getSregs();
    expect(readBack.cs).toEqual(sregs.cs);
    expect([readBack.cr0, readBack.cr4, readBack.efer, readBack.gdt]).toEqual([sregs.cr0, sregs.cr4, sregs.efer, sregs.gdt]);
    const fpu = vcpu.getFpu();
    fpu.xmm[0] = 0xaa;
    vcpu.setFpu(fpu);
    expect(vcpu.getFpu().xmm[0]).toBe(0xaa);
    vcpu.setCpuid2(kvm.supportedCpuid());
    expect(vcpu.getCpuid2().length).toBeGreaterThan(0);
    vcpu.setMsrs([{ index: 0x174, data: 0x10n }]); // IA32_SYSENTER_CS
    expect(vcpu.getMsrs([0x174])).toEqual([{ index: 0x174, data: 0x10n }]);
    expect(() => vcpu.getMsrs([0xdeadbeef])).toThrow(/MSR 0xdeadbeef could not be read/);
    const lapic = vcpu.getLapic();
    expect(lapic.length).toBe(1024);
    vcpu.setLapic(lapic);
    const events = vcpu.getVcpuEvents();
    vcpu.setVcpuEvents(events);
    expect(vcpu.getVcpuEvents().exception).toEqual(events.exception);
    expect(vcpu.getMpState()).toBe(0); // RUNNABLE (BSP)
    vcpu.setMpState(0);
  });

  it('errors name the ioctl and errno', () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const vcpu = vm.createVcpu(0);
    const sregs = vcpu.getSregs();
    sregs.efer = 0x400n; // EFER.LMA without paging: rejected by every KVM version
    expect(() => vcpu.setSregs(sregs)).toThrow(KvmError);
    expect(() => vcpu.setSregs(sregs)).toThrow('ioctl KVM_SET_SREGS failed: EINVAL (Invalid argument)');
    expect(() => vm.createVcpu(0)).toThrow(/ioctl KVM_CREATE_VCPU failed: EEXIST/);
  });

  it('guest memory: slots, overlap checks, views, removal', () => {
    const kvm = track(Kvm.open());
    const vm = track(createVm(kvm));
    const low = vm.addMemory({ guestPhysAddr: 0, size: 0x10000 });
    const high = vm.addMemory({ guestPhysAddr: 0x100000, size: 0x10000 });
    expect([low.slot, high.slot]).toEqual([0, 1]);
    expect(() => vm.addMemory({ guestPhysAddr: 0x8000, size: 0x10000 })).toThrow(/overlaps/);
    expect(() => vm.addMemory({ guestPhysAddr: 0x123, size: 0x1000 })).toThrow(/page-aligned/);
    vm.memory.view(0x100000, 4)!.set([1, 2, 3, 4]);
    expect([...high.bytes.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    vm.removeMemory(low);
    expect(low.bytes.length).toBe(0);
    expect(vm.memory.view(0, 1)).toBeUndefined();
    expect(vm.addMemory({ guestPhysAddr: 0, size: 0x1000 }).slot).toBe(0); // the freed slot
  });
});
