#!/usr/bin/env node
// Exit round-trip latency: hype's vCPU-thread -> JS handoff against a synchronous C loop, same guest,
// same run. The guest is `out 0x10, al; jmp $-2` in real mode, so every iteration is one port-I/O exit.
//
//   sync C loop       KVM_RUN in a loop on the calling thread, each exit completed in C (the floor)
//   handoff           @hype/kvm Vcpu.start(): native vCPU thread -> ThreadSafeFunction -> JS handler
//                     -> resume(); measured between consecutive handler calls. First as hype runs it
//                     (its defaults: the vCPU thread spins 20 µs before it sleeps, resolveVcpuSpin(), and
//                     the JS thread polls for the next exit, resolveExitPoll(), where a CPU is free for
//                     JS), then without the exit poll: the vCPU thread spinning, and sleeping at once
//   exit poll         StartOptions.exitPoll: after each handler the JS thread waits (as long as the exits
//                     seen after this one took, within the ceiling) for the next exit and handles it
//                     inline (no event-loop turn, no TSFN), at most 64 in a row or for 1 ms; variants
//                     with other caps from HANDOFF_POLL (comma-separated budgetNs[/spinNs][:maxMs],
//                     none by default)
//   simulated         the same handoff with the addon's stand-in for KVM_RUN (no guest at all): the cost
//                     of the thread handoff alone; runs on hosts without /dev/kvm too
//
// Standalone: `node bench/handoff.mjs [exits]` prints a readable line, then the `BENCH-RESULT <json>`
// line of bench/lib/result.mjs. Needs the built packages (`pnpm build`). Without /dev/kvm the result is
// "skipped" and the exit code 0. Also importable: `runHandoffBench()`, `formatHandoff()`.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { emitResult } from './lib/result.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const CODE = 0x1000;
const GUEST = [0xe6, 0x10, 0xeb, 0xfc]; // out 0x10, al ; jmp back to the out

function stats(samplesNs) {
  const sorted = Float64Array.from(samplesNs).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000;
  return { medianUs: round(at(0.5)), p90Us: round(at(0.9)), samples: sorted.length };
}

const round = (x) => Math.round(x * 100) / 100;

async function load(pkg) {
  const entry = `${root}packages/${pkg}/dist/index.js`;
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`pnpm build\` first`);
  return import(pathToFileURL(entry).href);
}

/** Handler-to-handler intervals of `exits` exits handed to JS by a running vCPU. */
function measureHandoff(vcpu, exits, spinNs, exitPoll) {
  const samples = new Float64Array(exits);
  let count = 0;
  let last = process.hrtime.bigint();
  return vcpu
    .start(
      () => {
        const now = process.hrtime.bigint();
        samples[count++] = Number(now - last);
        last = now;
        return count === exits ? 'stop' : undefined;
      },
      { spinNs, exitPoll },
    )
    .then(() => samples.subarray(1)); // the first interval includes thread start-up
}

async function measureSimulated(exits) {
  const { addon } = await load('kvm-sys');
  const native = addon();
  const run = new native.Mapping(native.pageSize);
  const samples = new Float64Array(exits);
  let count = 0;
  let last = process.hrtime.bigint();
  await new Promise((resolve) => {
    const thread = new native.VcpuThread(
      -1,
      run,
      () => {
        const now = process.hrtime.bigint();
        samples[count++] = Number(now - last);
        last = now;
        if (count === exits) thread.stop();
        thread.resume();
      },
      resolve,
      { simulate: true },
    );
    thread.start();
  });
  run.close();
  return stats(samples.subarray(1));
}

function pollVariants() {
  const list = (process.env.HANDOFF_POLL ?? '').split(',').filter((x) => x.trim() !== '');
  return list.map((item) => {
    const [ns, maxMsText] = item.split(':');
    const [budgetNs, spinNs] = ns.split('/').map(Number);
    const maxMs = maxMsText === undefined ? undefined : Number(maxMsText);
    const ok = (x) => Number.isInteger(x) && x >= 0 && x <= 1_000_000;
    if (!ok(budgetNs) || budgetNs === 0 || (spinNs !== undefined && !ok(spinNs)) || (maxMs !== undefined && !(maxMs > 0))) {
      throw new Error(`HANDOFF_POLL: ${item} must be budgetNs[/spinNs][:maxMs], whole numbers of ns up to 1000000 (budget > 0)`);
    }
    return { budgetNs, ...(spinNs === undefined ? {} : { spinNs }), ...(maxMs === undefined ? {} : { maxMs }) };
  });
}

const pollName = (p) =>
  `up to ${p.budgetNs / 1000} µs` +
  (p.spinNs === undefined ? '' : ` (spinning ${p.spinNs / 1000} µs)`) +
  (p.maxMs === undefined ? '' : ` (inline for ${p.maxMs} ms at most)`);

const TITLE = 'KVM exit round trip: native vCPU thread -> JS handler vs a synchronous C KVM_RUN loop';

/**
 * Runs the benchmark and returns its result in the bench/README.md convention ({ bench, title, status,
 * rows, data }). A host without /dev/kvm gives status "skipped" (the simulated handoff is still in data).
 */
export async function runHandoffBench({ exits = 20_000 } = {}) {
  const simulated = await measureSimulated(exits);
  const base = { bench: 'handoff', title: TITLE };
  if (!existsSync('/dev/kvm')) {
    return { ...base, status: 'skipped', reason: '/dev/kvm absent on this host', data: { exits, simulatedHandoff: simulated } };
  }
  const { Kvm, resolveVcpuSpin, resolveExitPoll } = await load('kvm');
  const defaultSpinNs = resolveVcpuSpin();
  const defaultPollNs = resolveExitPoll().budgetNs;
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  try {
    vm.setTssAddr(0xfffbd000);
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
    ram.bytes.set(GUEST, CODE);
    const vcpu = vm.createVcpu(0);
    const sregs = vcpu.getSregs();
    sregs.cs.base = 0n;
    sregs.cs.selector = 0;
    vcpu.setSregs(sregs);
    vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(CODE), rflags: 2n });

    vcpu.runPioLoopNative(1000); // warm-up
    const sync = stats(vcpu.runPioLoopNative(exits));
    await measureHandoff(vcpu, 1000); // warm-up
    const polledBefore = vcpu.polledExits;
    const handoff = stats(await measureHandoff(vcpu, exits));
    const defaultPolledShare = round((vcpu.polledExits - polledBefore) / exits);
    const noPoll = { budgetNs: 0 };
    const handoffNoPoll = stats(await measureHandoff(vcpu, exits, undefined, noPoll));
    const handoffNoSpin = stats(await measureHandoff(vcpu, exits, 0, noPoll));
    const polls = [];
    for (const exitPoll of pollVariants()) {
      const before = vcpu.polledExits; // counts every run of this vCPU
      const result = stats(await measureHandoff(vcpu, exits, undefined, exitPoll));
      polls.push({ ...exitPoll, ...result, polledShare: round((vcpu.polledExits - before) / exits) });
    }
    const baseline = { name: 'synchronous C KVM_RUN loop (median)', value: sync.medianUs };
    const row = (metric, value, note) => ({
      metric, value, unit: 'µs', better: 'lower', baseline, ratio: round(value / sync.medianUs), note,
    });
    return {
      ...base,
      status: 'ok',
      rows: [
        row('PIO exit round trip, vCPU thread -> JS (median)', handoff.medianUs,
          `p90 ${handoff.p90Us} µs; hype's defaults here: the vCPU thread spins ${defaultSpinNs / 1000} µs before sleeping, ` +
            `the JS thread polls for the next exit (cap ${defaultPollNs / 1000} µs) (${Math.round(defaultPolledShare * 100)}% of exits taken by the poll)`),
        row('same, no exit poll (median)', handoffNoPoll.medianUs, `p90 ${handoffNoPoll.p90Us} µs; the vCPU thread spinning ${defaultSpinNs / 1000} µs`),
        row('same, no exit poll, vCPU thread sleeping at once (spinNs 0) (median)', handoffNoSpin.medianUs, `p90 ${handoffNoSpin.p90Us} µs`),
        ...polls.map((p) =>
          row(`same, JS polling ${pollName(p)} for the next exit (median)`, p.medianUs,
            `p90 ${p.p90Us} µs; ${Math.round(p.polledShare * 100)}% of exits taken by the poll`),
        ),
        {
          metric: 'thread handoff alone, simulated KVM_RUN (median)', value: simulated.medianUs, unit: 'µs',
          better: 'lower', note: 'no guest: native thread -> JS -> resume',
        },
      ],
      data: {
        exits, syncCLoop: sync, handoff, defaultSpinNs, defaultPollNs, defaultPolledShare, handoffNoPoll, handoffNoSpin,
        exitPoll: polls, simulatedHandoff: simulated,
      },
    };
  } finally {
    vm.close();
    kvm.close();
  }
}

/** One readable line for a result of runHandoffBench(). */
export function formatHandoff(result) {
  const sim = `simulated thread handoff (no KVM) median ${result.data.simulatedHandoff.medianUs} µs`;
  if (result.status === 'skipped') return `handoff: cannot run: ${result.reason}; ${sim}`;
  const { syncCLoop, handoff, defaultSpinNs, defaultPollNs, defaultPolledShare, handoffNoPoll, handoffNoSpin, exitPoll = [] } = result.data;
  const polls = exitPoll.map(
    (p) => `; JS polling ${pollName(p)}: ${p.medianUs} µs, ratio ${round(p.medianUs / syncCLoop.medianUs)}x (${Math.round(p.polledShare * 100)}% polled)`,
  );
  return (
    `handoff: sync C loop median ${syncCLoop.medianUs} µs, vCPU thread -> JS median ${handoff.medianUs} µs ` +
    `(ratio ${result.rows[0].ratio}x, spinning ${defaultSpinNs / 1000} µs, exit poll (cap ${defaultPollNs / 1000} µs) ` +
    `${Math.round(defaultPolledShare * 100)}% polled; no poll: ${handoffNoPoll.medianUs} µs, ratio ${result.rows[1].ratio}x; ` +
    `no poll, sleeping at once: ${handoffNoSpin.medianUs} µs, ratio ${result.rows[2].ratio}x` +
    `${polls.join('')}); ${sim}`
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const exits = Number(process.argv[2] ?? 20_000);
  if (!Number.isInteger(exits) || exits < 100) {
    console.error(`bench/handoff.mjs: exits ${process.argv[2]} must be a whole number >= 100`);
    process.exit(2);
  }
  const result = await runHandoffBench({ exits });
  console.log(formatHandoff(result));
  emitResult(result);
}
