// The vCPU thread machinery (native thread -> JS handoff -> resume, stop by signal + immediate_exit,
// join, process lifetime) with the addon's stand-in for KVM_RUN, so it runs without /dev/kvm.
// The real KVM_RUN path is exercised by packages/kvm/test/guests.test.ts on hosts with /dev/kvm.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import {
  addon, layouts, packageRoot, pioReadMirrorLayout, pioReadMirrorWord, type NativeMapping, type NativeVcpuThread,
} from '../src/index.js';

const native = addon();
const { kvm_run } = layouts;

/** A simulated vCPU; `block` makes its "KVM_RUN" wait for a kick, like a guest that never exits. */
function simulatedVcpu(options: { block?: boolean; spinNs?: number; ins?: number; pioReadMirror?: NativeMapping } = {}) {
  const run: NativeMapping = new native.Mapping(native.pageSize);
  const page = new Uint8Array(run.buffer!);
  const view = new DataView(run.buffer!);
  page[kvm_run.padding1] = options.block ? 1 : 0;
  page[kvm_run.padding1 + 1] = options.ins ?? 0; // simulated INs from port 0x11 before each OUT
  const events: string[] = [];
  let onExit: (thread: NativeVcpuThread) => void = (t) => t.resume();
  let stopped: (errno: number) => void = () => {};
  const stoppedPromise = new Promise<number>((resolve) => (stopped = resolve));
  const thread: NativeVcpuThread = new native.VcpuThread(
    -1,
    run,
    () => onExit(thread),
    (errno) => {
      events.push(`stop:${errno}`);
      stopped(errno);
    },
    { simulate: true, spinNs: options.spinNs ?? 0, ...(options.pioReadMirror ? { pioReadMirror: options.pioReadMirror } : {}) },
  );
  return {
    run,
    page,
    view,
    thread,
    events,
    stopped: stoppedPromise,
    setOnExit(handler: (thread: NativeVcpuThread) => void) {
      onExit = handler;
    },
  };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('VcpuThread (simulated KVM_RUN)', () => {
  it('hands every exit to JS with kvm_run filled in, and re-enters after resume()', async () => {
    for (const spinNs of [0, 50_000]) {
      const vcpu = simulatedVcpu({ spinNs });
      const seen: number[] = [];
      vcpu.setOnExit((thread) => {
        expect(vcpu.view.getUint32(kvm_run.exit_reason, true)).toBe(2); // KVM_EXIT_IO
        expect(vcpu.page[kvm_run.io_direction]).toBe(1); // OUT
        expect(vcpu.view.getUint16(kvm_run.io_port, true)).toBe(0x10);
        const dataOffset = Number(vcpu.view.getBigUint64(kvm_run.io_data_offset, true));
        seen.push(vcpu.page[dataOffset]);
        expect(thread.exitPending).toBe(true);
        if (seen.length === 300) thread.stop();
        thread.resume();
      });
      vcpu.thread.start();
      expect(vcpu.thread.running).toBe(true);
      expect(await vcpu.stopped).toBe(0);
      expect(vcpu.thread.running).toBe(false);
      expect(seen).toHaveLength(300);
      expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
      expect(seen[299]).toBe(300 & 0xff);
      vcpu.run.close();
    }
  });

  it('stop() kicks a thread out of a KVM_RUN that does not exit', async () => {
    const vcpu = simulatedVcpu({ block: true });
    vcpu.setOnExit(() => {
      throw new Error('no exit expected');
    });
    vcpu.thread.start();
    await delay(20);
    expect(vcpu.thread.running).toBe(true);
    vcpu.thread.stop();
    expect(await vcpu.stopped).toBe(0);
    expect(vcpu.page[kvm_run.immediate_exit]).toBe(1);
    vcpu.run.close();
  });

  it('an exit handed to JS is completed before the thread stops', async () => {
    const vcpu = simulatedVcpu();
    let exits = 0;
    vcpu.setOnExit((thread) => {
      exits++;
      thread.stop();
      setTimeout(() => {
        expect(vcpu.events).toEqual([]); // still waiting for this exit
        thread.resume();
      }, 20);
    });
    vcpu.thread.start();
    expect(await vcpu.stopped).toBe(0);
    expect(exits).toBe(1);
    vcpu.run.close();
  });

  it('resume() without a pending exit is an error', () => {
    const vcpu = simulatedVcpu();
    expect(() => vcpu.thread.resume()).toThrow(/no exit is pending/);
    vcpu.run.close();
  });

  it('join() abandons a pending exit, waits for the thread and drops its queued events', async () => {
    const vcpu = simulatedVcpu();
    let exits = 0;
    vcpu.setOnExit(() => exits++); // never resumes
    vcpu.thread.start();
    await delay(20);
    expect(exits).toBe(1);
    expect(vcpu.thread.join()).toBe(true);
    expect(vcpu.thread.running).toBe(false);
    await delay(20);
    expect(vcpu.events).toEqual([]); // join() does not call onStop
    expect(() => vcpu.thread.join()).not.toThrow();
    vcpu.run.close();
  });

  it('keeps the kvm_run mapping while running, and can start again after stopping', async () => {
    const vcpu = simulatedVcpu({ block: true });
    vcpu.thread.start();
    expect(() => vcpu.thread.start()).toThrow(/already running/);
    expect(() => vcpu.run.close()).toThrow(/in use by a running vCPU thread/);
    vcpu.thread.stop();
    await vcpu.stopped;
    vcpu.page[kvm_run.padding1] = 0;
    let exits = 0;
    vcpu.setOnExit((thread) => {
      if (++exits === 5) thread.stop();
      thread.resume();
    });
    const again = new Promise<number>((resolve) => {
      const check = setInterval(() => {
        if (!vcpu.thread.running) {
          clearInterval(check);
          resolve(exits);
        }
      }, 5);
    });
    vcpu.thread.start();
    expect(await again).toBe(5);
    vcpu.run.close();
    expect(() => vcpu.thread.start()).toThrow(/kvm_run mapping is closed/);
  });
});

describe('VcpuThread.resumeAndPoll (simulated KVM_RUN)', () => {
  it('hands each next exit to the poller or to onExit, never both, in order', async () => {
    const vcpu = simulatedVcpu();
    const seen: number[] = [];
    let viaOnExit = 0;
    const dataOf = () => vcpu.page[Number(vcpu.view.getBigUint64(kvm_run.io_data_offset, true))];
    vcpu.setOnExit((thread) => {
      viaOnExit++;
      for (let inline = 0; ; inline++) {
        expect(thread.exitPending).toBe(true);
        seen.push(dataOf());
        if (seen.length === 2000) {
          thread.stop();
          thread.resume();
          return;
        }
        if (inline === 16) {
          thread.resume();
          return;
        }
        if (!thread.resumeAndPoll(200_000)) return;
      }
    });
    vcpu.thread.start();
    expect(await vcpu.stopped).toBe(0);
    expect(seen).toEqual(Array.from({ length: 2000 }, (_, i) => (i + 1) & 0xff));
    expect(vcpu.thread.polledExits + viaOnExit).toBe(2000);
    expect(vcpu.thread.polledExits).toBeGreaterThan(0);
    vcpu.run.close();
  });

  it('gives up after its budget when the guest does not exit; stop() then ends the thread', async () => {
    const vcpu = simulatedVcpu();
    const polls: boolean[] = [];
    vcpu.setOnExit((thread) => {
      vcpu.page[kvm_run.padding1] = 1; // the next "KVM_RUN" blocks like a guest that never exits
      const started = process.hrtime.bigint();
      polls.push(thread.resumeAndPoll(1_000_000, 0)); // 1 ms, sleeping on the futex
      expect(Number(process.hrtime.bigint() - started)).toBeLessThan(200_000_000);
      expect(thread.exitPending).toBe(false);
    });
    vcpu.thread.start();
    await delay(20);
    expect(polls).toEqual([false]);
    expect(vcpu.thread.running).toBe(true);
    vcpu.thread.stop();
    expect(await vcpu.stopped).toBe(0);
    vcpu.run.close();
  });

  it('reports in resumeToExitNs how long each exit took to come after the previous one was completed', async () => {
    const vcpu = simulatedVcpu();
    const runs: number[] = [];
    vcpu.setOnExit((thread) => {
      runs.push(thread.resumeToExitNs);
      if (runs.length === 2) {
        vcpu.page[kvm_run.padding1] = 1; // the next "KVM_RUN" runs until the timer lets it exit
        setTimeout(() => (vcpu.page[kvm_run.padding1] = 0), 100);
      }
      if (runs.length === 4) thread.stop();
      thread.resume();
    });
    vcpu.thread.start();
    expect(await vcpu.stopped).toBe(0);
    expect(runs).toHaveLength(4);
    expect(runs[1]).toBeLessThan(50e6); // the stand-in exits at once
    expect(runs[2]).toBeGreaterThanOrEqual(90e6);
    expect(runs[3]).toBeLessThan(50e6);
    vcpu.run.close();
  });

  it('reports in deliveryNs how long an exit took to reach onExit, a busy JS thread included', async () => {
    const vcpu = simulatedVcpu();
    const deliveries: number[] = [];
    vcpu.setOnExit((thread) => {
      deliveries.push(thread.deliveryNs);
      if (deliveries.length === 4) thread.stop();
      thread.resume();
      if (deliveries.length === 2) {
        const until = performance.now() + 60; // the JS thread stays busy while the next exit waits for it
        while (performance.now() < until);
      }
    });
    vcpu.thread.start();
    expect(await vcpu.stopped).toBe(0);
    expect(deliveries).toHaveLength(4);
    expect(deliveries.every((ns) => ns > 0)).toBe(true);
    expect(deliveries[0]).toBeLessThan(40e6);
    expect(deliveries[2]).toBeGreaterThanOrEqual(50e6); // came while JS was busy with the one before
    expect(deliveries[3]).toBeLessThan(40e6);
    vcpu.run.close();
  });

  it('checks its arguments and needs a pending exit', async () => {
    const vcpu = simulatedVcpu();
    expect(() => vcpu.thread.resumeAndPoll(1000)).toThrow(/no exit is pending/);
    expect(() => vcpu.thread.resumeAndPoll(1_000_001)).toThrow(RangeError);
    expect(() => vcpu.thread.resumeAndPoll(-1)).toThrow(RangeError);
    expect(() => vcpu.thread.resumeAndPoll(1000, 1.5)).toThrow(RangeError);
    expect(() => vcpu.thread.resumeAndPoll('1000' as never)).toThrow(TypeError);
    let stopped = false;
    vcpu.setOnExit((thread) => {
      thread.stop();
      expect(thread.resumeAndPoll(1_000_000)).toBe(false); // stopping: resumes without polling
      stopped = true;
    });
    vcpu.thread.start();
    expect(await vcpu.stopped).toBe(0);
    expect(stopped).toBe(true);
    vcpu.run.close();
  });
});

describe('VcpuThread: reads answered from the pioReadMirror', () => {
  const IN_PORT = 0x11;
  const newMirror = () => {
    const mapping: NativeMapping = new native.Mapping(native.pageSize);
    return { mapping, words: new Int32Array(mapping.buffer!, 0, pioReadMirrorLayout.entries) };
  };
  const ioOf = (vcpu: ReturnType<typeof simulatedVcpu>) => {
    const dataOffset = Number(vcpu.view.getBigUint64(kvm_run.io_data_offset, true));
    return { direction: vcpu.page[kvm_run.io_direction], port: vcpu.view.getUint16(kvm_run.io_port, true), dataOffset };
  };

  it('answers INs from a valid entry on the vCPU thread, and hands the others to JS', async () => {
    const mirror = newMirror();
    const vcpu = simulatedVcpu({ ins: 3, pioReadMirror: mirror.mapping });
    // Entries for other ports, one invalid entry for the port itself: none of them answers.
    Atomics.store(mirror.words, 0, pioReadMirrorWord(0x3fd, 0x60));
    Atomics.store(mirror.words, 5, pioReadMirrorWord(IN_PORT, 0x77) & ~pioReadMirrorLayout.validBit);
    const outs: number[] = [];
    let jsIns = 0;
    vcpu.setOnExit((thread) => {
      const io = ioOf(vcpu);
      if (io.direction === 0) {
        expect(io.port).toBe(IN_PORT);
        jsIns++;
        vcpu.page[io.dataOffset] = 0x42; // JS's answer
      } else {
        outs.push(vcpu.page[io.dataOffset]);
        // After two OUTs with JS answering, publish a value; after four, take it away again.
        if (outs.length === 2) Atomics.store(mirror.words, 15, pioReadMirrorWord(IN_PORT, 0x5a));
        if (outs.length === 4) Atomics.store(mirror.words, 15, 0);
        if (outs.length === 5) thread.stop();
      }
      thread.resume();
    });
    vcpu.thread.start();
    expect(await vcpu.stopped).toBe(0);
    expect(outs).toEqual([0x42, 0x42, 0x5a, 0x5a, 0x42]);
    expect(jsIns).toBe(9); // OUTs 1, 2 and 5 had their 3 INs answered by JS
    expect(vcpu.thread.pioMirrorHits).toBe(6); // OUTs 3 and 4
    vcpu.run.close();
    mirror.mapping.close();
  });

  it('is shared by several threads, kept mapped while they run, and checked', async () => {
    const mirror = newMirror();
    Atomics.store(mirror.words, 0, pioReadMirrorWord(IN_PORT, 0x33));
    const vcpus = [0, 1].map(() => simulatedVcpu({ ins: 4, pioReadMirror: mirror.mapping }));
    for (const vcpu of vcpus) {
      let outs = 0;
      vcpu.setOnExit((thread) => {
        const io = ioOf(vcpu);
        expect(io.direction).toBe(1); // every IN was answered natively
        expect(vcpu.page[io.dataOffset]).toBe(0x33);
        if (++outs === 100) thread.stop();
        thread.resume();
      });
      vcpu.thread.start();
    }
    expect(() => mirror.mapping.close()).toThrow(/in use by a running vCPU thread/);
    for (const vcpu of vcpus) expect(await vcpu.stopped).toBe(0);
    for (const vcpu of vcpus) expect(vcpu.thread.pioMirrorHits).toBe(400);
    for (const vcpu of vcpus) vcpu.run.close();
    mirror.mapping.close();
    const run: NativeMapping = new native.Mapping(native.pageSize);
    const make = (pioReadMirror: unknown) => new native.VcpuThread(-1, run, () => {}, () => {}, { simulate: true, pioReadMirror } as never);
    expect(() => make(mirror.mapping)).toThrow(/pioReadMirror mapping is closed or too small/);
    expect(() => make({})).toThrow(TypeError);
    expect(() => make(7)).toThrow(/options.pioReadMirror must be/);
    run.close();
  });
});

describe('VcpuThread and the process lifetime', () => {
  const nodeGypBuild = createRequire(import.meta.url).resolve('node-gyp-build');

  function runChild(body: string) {
    const script = `
      const native = require(${JSON.stringify(nodeGypBuild)})(${JSON.stringify(packageRoot())});
      const run = new native.Mapping(native.pageSize);
      new Uint8Array(run.buffer)[2] = 1; // padding1[0]: block in the simulated KVM_RUN
      const thread = new native.VcpuThread(-1, run, () => {}, (errno) => console.log('stopped', errno), { simulate: true });
      thread.start();
      ${body}
    `;
    return spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
  }

  it('a running thread keeps the process alive until it is stopped', () => {
    const child = runChild(`setTimeout(() => thread.stop(), 100);`);
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('stopped 0\n');
    expect(child.status).toBe(0);
  });

  it('after join() nothing keeps the process alive', () => {
    const child = runChild(`setTimeout(() => { thread.join(); run.close(); console.log('joined'); }, 50);`);
    expect(child.stdout).toBe('joined\n');
    expect(child.status).toBe(0);
  });

  it('process.exit() with a running thread ends cleanly (joined at environment teardown)', () => {
    const child = runChild(`setTimeout(() => process.exit(3), 50);`);
    expect(child.signal).toBeNull();
    expect(child.status).toBe(3);
  });
});
