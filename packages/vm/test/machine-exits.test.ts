/**
 * The Machine's exit dispatch without KVM: scripted vCPUs feed it exits shaped like `kvm_run` and record
 * what it does with the vCPU (register writes, event injection, stop). The KVM side of the same paths
 * runs in guest-boot.test.ts on hosts with /dev/kvm.
 */
import { describe, expect, it } from 'vitest';
import { KvmExit, KvmSystemEvent, type KvmRun, type Regs, type Sregs, type VcpuEvents } from '@hype/kvm';
import {
  Bus,
  DEBUG_PORT_BASE,
  DEBUG_PORT_COUNT,
  DebugPort,
  HostQuirks,
  I8042,
  I8042_COMMAND_PORT,
  Machine,
  type MachineVcpu,
  Teardown,
  type VmExit,
} from '@hype/vm';

type ScriptedExit = Record<string, unknown> & { exitReason: number };

const zeroSegment = { base: 0n, limit: 0xffff, selector: 0, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
const regs0 = (): Regs => ({
  rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0x8000n, rbp: 0n,
  r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0x1000n, rflags: 2n,
});
/** 64-bit code without paging, so CS:RIP is a physical address in the test memory. */
const sregs0 = (): Sregs => ({
  cs: { ...zeroSegment, selector: 0x10, type: 0xb, l: 1 }, ds: zeroSegment, es: zeroSegment, fs: zeroSegment, gs: zeroSegment,
  ss: zeroSegment, tr: { ...zeroSegment, type: 0xb, s: 0 }, ldt: { ...zeroSegment, unusable: 1 },
  gdt: { base: 0n, limit: 0 }, idt: { base: 0n, limit: 0 },
  cr0: 1n, cr2: 0n, cr3: 0n, cr4: 0x20n, cr8: 0n, efer: 0x500n, apicBase: 0xfee00900n, interruptBitmap: [0n, 0n, 0n, 0n],
});

/** A vCPU whose "guest" is a list of exits; records the handler's answers and the state it was given. */
class ScriptedVcpu {
  regs = regs0();
  sregs = sregs0();
  events: VcpuEvents = {
    exception: { injected: 0, nr: 0, hasErrorCode: 0, pending: 0, errorCode: 0 },
    interrupt: { injected: 0, nr: 0, soft: 0, shadow: 0 },
    nmi: { injected: 0, pending: 0, masked: 0 },
    sipiVector: 0, flags: 0,
    smi: { smm: 0, pending: 0, smmInsideNmi: 0, latchedInit: 0 },
    tripleFault: { pending: 0 }, exceptionHasPayload: 0, exceptionPayload: 0n,
  };
  stopped = false;
  handled = 0;
  // HaltWatch's view: no thread to look at, so it never probes.
  readonly threadId = 0;
  readonly probeResult = undefined;
  probe(): void {}
  /** Data views of every IO / MMIO exit, after the handler saw them. */
  answers: Uint8Array[] = [];

  constructor(
    readonly id: number,
    private readonly script: ScriptedExit[],
  ) {}

  getRegs = () => ({ ...this.regs });
  setRegs = (r: Regs) => {
    this.regs = { ...r };
  };
  getSregs = () => structuredClone(this.sregs);
  setSregs = (s: Sregs) => {
    this.sregs = structuredClone(s);
  };
  getVcpuEvents = () => structuredClone(this.events);
  setVcpuEvents = (e: VcpuEvents) => {
    this.events = structuredClone(e);
  };
  getMsrs = (indices: number[]) => indices.map((index) => ({ index, data: 0n }));
  stop = () => {
    this.stopped = true;
  };

  startOptions: unknown;

  async start(handler: (run: KvmRun, vcpu: MachineVcpu) => 'stop' | void, options?: unknown): Promise<'stopped'> {
    this.startOptions = options;
    for (const exit of this.script) {
      if (this.stopped) break;
      await Promise.resolve();
      const action = handler(exit as unknown as KvmRun, this);
      this.handled++;
      const data = (exit.io as { data?: Uint8Array } | undefined)?.data ?? (exit.mmio as { data?: Uint8Array } | undefined)?.data;
      if (data) this.answers.push(data);
      if (action === 'stop') break;
    }
    // A guest that has run out of script idles until stopped (as a halted vCPU in KVM_RUN would).
    while (!this.stopped) await new Promise((r) => setTimeout(r, 1));
    return 'stopped';
  }
}

const out = (port: number, bytes: number[]): ScriptedExit => ({
  exitReason: KvmExit.IO,
  io: { direction: 'out', size: 1, port, count: bytes.length, data: Uint8Array.from(bytes) },
});
const inb = (port: number): ScriptedExit => ({
  exitReason: KvmExit.IO,
  io: { direction: 'in', size: 1, port, count: 1, data: new Uint8Array(1) },
});

function machineWith(scripts: ScriptedExit[][], opts: { quirks?: boolean; memory?: Uint8Array; exitPoll?: { budgetNs: number } } = {}) {
  const ram = opts.memory ?? new Uint8Array(0x10000);
  const memory = { view: (gpa: number, len: number) => (gpa >= 0 && gpa + len <= ram.length ? ram.subarray(gpa, gpa + len) : undefined) };
  const vcpus = scripts.map((s, i) => new ScriptedVcpu(i, s));
  const pio = new Bus('pio');
  const mmio = new Bus('mmio');
  const quirks = new HostQuirks(memory, { detection: { active: opts.quirks ?? false, reason: 'test' } });
  let machine: Machine | undefined;
  const finish = (exit: VmExit) => machine!.finish(exit);
  const debugPort = new DebugPort({ onPowerOff: (status) => finish({ kind: 'poweroff', status }) });
  pio.register(DEBUG_PORT_BASE, DEBUG_PORT_COUNT, debugPort, 'debug port');
  const i8042 = new I8042({ onReset: () => finish({ kind: 'reboot', source: 'i8042' }) });
  pio.register(I8042_COMMAND_PORT, 1, i8042.command, 'i8042 command');
  const mmioWrites: number[][] = [];
  mmio.register(0xd000_0000, 0x1000, { read: (_o, d) => d.fill(0x5a), write: (_o, d) => mmioWrites.push([...d]) }, 'probe');
  let closed = 0;
  const teardown = new Teardown();
  teardown.push(() => {
    closed++;
  });
  machine = new Machine({
    memory,
    vcpus,
    pio,
    mmio,
    quirks,
    consoleInput: { write() {} },
    markers: debugPort.markers,
    teardown,
    cmdline: 'console=hvc0',
    ...(opts.exitPoll ? { exitPoll: opts.exitPoll } : {}),
  });
  return { machine, vcpus, mmioWrites, quirks, closed: () => closed, ram };
}

describe('Machine exit dispatch (scripted vCPUs, no KVM)', () => {
  it('port writes reach the devices; the debug port powers off with the status; every vCPU stops', async () => {
    const { machine, vcpus, closed } = machineWith([[out(0x80, [1]), out(DEBUG_PORT_BASE + 1, [1]), out(DEBUG_PORT_BASE, [7])], []]);
    const exit = await machine.run();
    expect(exit).toEqual({ kind: 'poweroff', status: 7 });
    expect(machine.markers.map((m) => m.value)).toEqual([1]);
    expect(vcpus.every((v) => v.stopped)).toBe(true);
    expect(closed()).toBe(1);
  });

  it('hands the exit-poll settings (createVm\'s exitPoll) and the VM\'s vCPU count to every vCPU it starts', async () => {
    const polled = machineWith([[out(DEBUG_PORT_BASE, [0])], []], { exitPoll: { budgetNs: 300_000 } });
    await polled.machine.run();
    for (const vcpu of polled.vcpus) expect(vcpu.startOptions).toMatchObject({ exitPoll: { budgetNs: 300_000, vcpus: 2 } });
    const plain = machineWith([[out(DEBUG_PORT_BASE, [0])]]);
    await plain.machine.run();
    // No settings: @hype/kvm's default for a VM of this many vCPUs (resolveExitPoll).
    expect((plain.vcpus[0].startOptions as { exitPoll?: unknown } | undefined)?.exitPoll).toEqual({ vcpus: 1 });
  });

  it('reads of absent ports return all-ones; string I/O goes element by element', async () => {
    const { machine, vcpus } = machineWith([[inb(0x2f8), out(0x80, [1, 2, 3]), out(DEBUG_PORT_BASE, [0])]]);
    await machine.run();
    expect([...vcpus[0].answers[0]]).toEqual([0xff]);
  });

  it('MMIO reads and writes go to the device at the address; absent MMIO reads all-ones', async () => {
    const mmioExit = (physAddr: number, isWrite: boolean, data: number[]): ScriptedExit => ({
      exitReason: KvmExit.MMIO,
      mmio: { physAddr, isWrite, len: data.length, data: Uint8Array.from(data) },
    });
    const { machine, vcpus, mmioWrites } = machineWith([
      [mmioExit(0xd000_0010, false, [0, 0, 0, 0]), mmioExit(0xd000_0020, true, [1, 2]), mmioExit(0xe000_0000, false, [0, 0]), out(DEBUG_PORT_BASE, [0])],
    ]);
    await machine.run();
    expect([...vcpus[0].answers[0]]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
    expect(mmioWrites).toEqual([[1, 2]]);
    expect([...vcpus[0].answers[2]]).toEqual([0xff, 0xff]);
  });

  it('an i8042 reset is a reboot; KVM_EXIT_SHUTDOWN a triple fault; system events map to poweroff/reboot', async () => {
    expect(await machineWith([[out(I8042_COMMAND_PORT, [0xfe])]]).machine.run()).toEqual({ kind: 'reboot', source: 'i8042' });
    expect(await machineWith([[], [{ exitReason: KvmExit.SHUTDOWN }]]).machine.run()).toEqual({ kind: 'shutdown', vcpu: 1 });
    const sys = (type: number): ScriptedExit => ({ exitReason: KvmExit.SYSTEM_EVENT, systemEvent: { type, data: [] } });
    expect(await machineWith([[sys(KvmSystemEvent.SHUTDOWN)]]).machine.run()).toEqual({ kind: 'poweroff', status: 0 });
    expect(await machineWith([[sys(KvmSystemEvent.RESET)]]).machine.run()).toEqual({ kind: 'reboot', source: 'system-event' });
  });

  it('an exit reason the VMM does not handle ends the VM with an internal-error report naming it', async () => {
    const exit = await machineWith([[{ exitReason: KvmExit.DEBUG }]]).machine.run();
    expect(exit.kind).toBe('internal-error');
    if (exit.kind !== 'internal-error') return;
    expect(exit.report.suberror).toBe(4);
    expect(exit.report.data).toEqual([BigInt(KvmExit.DEBUG)]);
  });

  it('an emulation failure with quirks inactive ends the VM, reporting the instruction bytes at RIP', async () => {
    const ram = new Uint8Array(0x10000);
    ram.set([0x0f, 0xc7, 0x0e], 0x1000); // cmpxchg16b [rsi]: no fallback for it
    const failure: ScriptedExit = { exitReason: KvmExit.INTERNAL_ERROR, internalError: { suberror: 1, data: [] } };
    const exit = await machineWith([[failure]], { memory: ram }).machine.run();
    expect(exit.kind).toBe('internal-error');
    if (exit.kind !== 'internal-error') return;
    expect([...exit.report.insnBytes.subarray(0, 3)]).toEqual([0x0f, 0xc7, 0x0e]);
    expect(exit.report.insnSource).toBe('guest-memory');
  });

  it('with PVM quirks active, an int3 emulation failure advances RIP and injects #BP, and the guest goes on', async () => {
    const ram = new Uint8Array(0x10000);
    ram[0x1000] = 0xcc;
    const failure: ScriptedExit = { exitReason: KvmExit.INTERNAL_ERROR, internalError: { suberror: 1, data: [], instructionBytes: Uint8Array.of(0xcc) } };
    const { machine, vcpus, quirks } = machineWith([[failure, out(DEBUG_PORT_BASE, [0])]], { quirks: true, memory: ram });
    expect(await machine.run()).toEqual({ kind: 'poweroff', status: 0 });
    expect(vcpus[0].regs.rip).toBe(0x1001n);
    expect(vcpus[0].events.exception).toMatchObject({ injected: 1, nr: 3, hasErrorCode: 0 });
    expect(quirks.counts.int3).toBe(1);
  });

  it('with quirks active, clac flips RFLAGS.AC and steps over the instruction without an injection', async () => {
    const failure: ScriptedExit = {
      exitReason: KvmExit.INTERNAL_ERROR,
      internalError: { suberror: 1, data: [], instructionBytes: Uint8Array.of(0x0f, 0x01, 0xca) },
    };
    const { machine, vcpus } = machineWith([[failure, out(DEBUG_PORT_BASE, [0])]], { quirks: true });
    vcpus[0].regs.rflags = 2n | (1n << 18n);
    await machine.run();
    expect(vcpus[0].regs.rip).toBe(0x1003n);
    expect(vcpus[0].regs.rflags & (1n << 18n)).toBe(0n);
    expect(vcpus[0].events.exception.injected).toBe(0);
  });

  it('stop() ends a running VM: run() resolves stopped with the reason, every vCPU is stopped', async () => {
    const { machine, vcpus } = machineWith([[], [], []]);
    const running = machine.run();
    machine.stop('by the test');
    expect(await running).toEqual({ kind: 'stopped', reason: 'by the test' });
    expect(vcpus.every((v) => v.stopped)).toBe(true);
  });

  it('an exit handled after the VM finished is answered with stop, not dispatched', async () => {
    const { machine, vcpus } = machineWith([[out(DEBUG_PORT_BASE, [0])], [out(0x80, [1]), out(0x80, [2])]]);
    await machine.run();
    expect(vcpus[1].handled).toBeLessThanOrEqual(1);
  });

  it('run() twice is refused', async () => {
    const { machine } = machineWith([[out(DEBUG_PORT_BASE, [0])]]);
    await machine.run();
    await expect(machine.run()).rejects.toThrow('already run');
  });
});
