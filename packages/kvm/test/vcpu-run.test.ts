// Vcpu.start()/stop()/close() around the native vCPU thread, with the addon's stand-in for KVM_RUN (each
// "run" is a 1-byte OUT to port 0x10 whose data byte counts the exits), so it runs without /dev/kvm.
import { addon, layouts } from '@hype/kvm-sys';
import { describe, expect, it } from 'vitest';
import { Vcpu } from '../src/vcpu.js';

function simulatedVcpu(options: { block?: boolean } = {}) {
  const native = addon();
  const mapping = new native.Mapping(native.pageSize);
  new Uint8Array(mapping.buffer!)[layouts.kvm_run.padding1] = options.block ? 1 : 0;
  let closed = 0;
  const fd = native.eventfd(0); // any open fd: the simulated thread never uses it
  const vcpu = new Vcpu(0, fd, mapping, () => closed++, true);
  return { vcpu, mapping, closedCount: () => closed };
}

describe('Vcpu run loop (simulated KVM_RUN)', () => {
  it('hands exits to a synchronous handler until it returns stop', async () => {
    const { vcpu, mapping } = simulatedVcpu();
    const data: number[] = [];
    const result = await vcpu.start((run, self) => {
      expect(self).toBe(vcpu);
      expect(run.exitReasonName).toBe('IO');
      expect(run.io.port).toBe(0x10);
      data.push(run.io.data[0]);
      return data.length === 50 ? 'stop' : undefined;
    });
    expect(result).toBe('stopped');
    expect(data).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(vcpu.running).toBe(false);
    vcpu.close();
    expect(mapping.closed).toBe(true);
  });

  it('waits for an asynchronous handler before resuming the guest', async () => {
    const { vcpu } = simulatedVcpu();
    let inHandler = 0;
    let exits = 0;
    await vcpu.start(async () => {
      expect(inHandler).toBe(0); // never two exits at once
      inHandler++;
      await new Promise((resolve) => setTimeout(resolve, 1));
      inHandler--;
      return ++exits === 5 ? 'stop' : undefined;
    });
    expect(exits).toBe(5);
    vcpu.close();
  });

  it('rejects with the handler error and stops the vCPU', async () => {
    const { vcpu } = simulatedVcpu();
    let exits = 0;
    await expect(
      vcpu.start(() => {
        if (++exits === 3) throw new Error('device exploded');
      }),
    ).rejects.toThrow('device exploded');
    expect(vcpu.running).toBe(false);
    await expect(vcpu.start(async () => Promise.reject(new Error('async failure')))).rejects.toThrow('async failure');
    vcpu.close();
  });

  it('stop() ends a run that is not exiting; it can start again', async () => {
    const { vcpu, mapping } = simulatedVcpu({ block: true });
    const running = vcpu.start(() => undefined);
    expect(vcpu.running).toBe(true);
    expect(() => vcpu.start(() => undefined)).toThrow('vCPU 0 is already running');
    setTimeout(() => vcpu.stop(), 10);
    expect(await running).toBe('stopped');
    new Uint8Array(mapping.buffer!)[layouts.kvm_run.padding1] = 0;
    let exits = 0;
    expect(await vcpu.start(() => (++exits === 2 ? 'stop' : undefined))).toBe('stopped');
    vcpu.close();
  });

  it('close() while running resolves start() with closed and releases everything', async () => {
    const { vcpu, mapping, closedCount } = simulatedVcpu({ block: true });
    const running = vcpu.start(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 10));
    vcpu.close();
    expect(await running).toBe('closed');
    expect(vcpu.closed).toBe(true);
    expect(mapping.closed).toBe(true);
    expect(closedCount()).toBe(1);
    vcpu.close();
    expect(closedCount()).toBe(1);
    expect(() => vcpu.start(() => undefined)).toThrow('vCPU 0 is closed');
  });

  it('close() while an async handler is pending abandons the exit', async () => {
    const { vcpu } = simulatedVcpu();
    let release: () => void = () => {};
    const running = vcpu.start(() => new Promise<void>((resolve) => (release = resolve)));
    await new Promise((resolve) => setTimeout(resolve, 10));
    vcpu.close();
    release(); // completing after close is harmless
    expect(await running).toBe('closed');
  });
});

describe('Vcpu run loop with the exit poll (simulated KVM_RUN)', () => {
  const exitPoll = { budgetNs: 200_000 };

  it('delivers every exit exactly once, in order, most of them through the poll', async () => {
    const { vcpu } = simulatedVcpu();
    const data: number[] = [];
    const result = await vcpu.start(
      (run) => {
        data.push(run.io.data[0]);
        return data.length === 3000 ? 'stop' : undefined;
      },
      { exitPoll },
    );
    expect(result).toBe('stopped');
    expect(data).toEqual(Array.from({ length: 3000 }, (_, i) => (i + 1) & 0xff));
    expect(vcpu.polledExits).toBeGreaterThan(0);
    expect(vcpu.polledExits).toBeLessThan(3000); // the cap hands some back to the event loop
    vcpu.close();
  });

  it('returns to the event loop at least every maxExits + 1 exits, so timers and stop() run', async () => {
    const { vcpu } = simulatedVcpu();
    let exits = 0;
    let maxRun = 0;
    let run = 0;
    let ticks = 0;
    const tick = setInterval(() => ticks++, 1);
    const running = vcpu.start(
      (kvmRun) => {
        expect(kvmRun.io.data[0]).toBe(++exits & 0xff);
        maxRun = Math.max(maxRun, ++run);
        // Microtasks run only between event-loop callbacks: this one marks the end of an inline burst.
        if (run === 1) queueMicrotask(() => (run = 0));
      },
      { exitPoll: { ...exitPoll, maxExits: 8 } },
    );
    setTimeout(() => vcpu.stop(), 30);
    expect(await running).toBe('stopped');
    clearInterval(tick);
    expect(ticks).toBeGreaterThan(0);
    expect(exits).toBeGreaterThan(0);
    expect(maxRun).toBeLessThanOrEqual(9);
    expect(vcpu.polledExits).toBeGreaterThan(0);
    vcpu.close();
  });

  it('an asynchronous handler, a handler error and close() still work with the poll on', async () => {
    const { vcpu } = simulatedVcpu();
    let exits = 0;
    expect(await vcpu.start(async () => (++exits === 5 ? 'stop' : undefined), { exitPoll })).toBe('stopped');
    exits = 0;
    await expect(
      vcpu.start(
        () => {
          if (++exits === 100) throw new Error('device exploded');
        },
        { exitPoll },
      ),
    ).rejects.toThrow('device exploded');
    const running = vcpu.start(() => undefined, { exitPoll });
    await new Promise((resolve) => setTimeout(resolve, 10));
    vcpu.close();
    expect(await running).toBe('closed');
  });
});
