// Every exported native function checks all of its arguments before it acts: a wrong type or value
// throws a TypeError/RangeError "<function>: <argument> ..." and nothing happens (no fd is closed, opened
// or written, no memory is registered). Each function's bad calls run in a child process, so an abort
// (napi_throw on top of a pending exception, a NULL pointer) fails a test instead of killing the runner.
// No /dev/kvm needed: where an fd must be valid, an eventfd stands in (KVM ioctls on it fail with ENOTTY).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../src/index.js';

const nodeGypBuild = createRequire(import.meta.url).resolve('node-gyp-build');

// Defined in the child before anything is evaluated.
const fixtures = `
  const fs = require('node:fs');
  const page = native.pageSize;
  const ioctls = native.ioctls();
  const efd = native.eventfd(0); // an open fd that is not a KVM fd
  const mapping = new native.Mapping(page);
  const regs = new Uint8Array(native.layout().kvm_regs.size);
  const sabView = new Uint8Array(new SharedArrayBuffer(4096));
  const sabDataView = new DataView(new SharedArrayBuffer(4096));
  const detachedView = new Uint8Array(4096);
  structuredClone(detachedView.buffer, { transfer: [detachedView.buffer] });
  const closedMapping = new native.Mapping(page);
  const closedMappingView = new Uint8Array(closedMapping.buffer);
  closedMapping.close();
  const fakeMapping = { buffer: new ArrayBuffer(page), size: page, closed: false, close() {} };
  const spoofedMapping = Object.create(native.Mapping.prototype);
  const openFds = () => fs.readdirSync('/proc/self/fd').length;
  const fdsBefore = openFds();
`;

// What must still hold after the bad calls: no fd opened or closed (fds 0-2 in particular), the eventfd
// never written.
const sideEffects = `({
  fds: openFds() - fdsBefore,
  stdio: [0, 1, 2].map((fd) => { try { fs.fstatSync(fd); return 'open'; } catch (e) { return e.code; } }),
  eventfd: String(native.eventfdRead(efd)),
})`;
const noSideEffects = { fds: 0, stdio: ['open', 'open', 'open'], eventfd: '-11' /* EAGAIN: counter 0 */ };

interface Outcome {
  expression: string;
  returned?: string;
  error?: string;
  message?: string;
}

/** Evaluates each expression in one child process; returns what each did and the side-effect report. */
function evaluate(expressions: string[]): { outcomes: Outcome[]; after: typeof noSideEffects } {
  const script = `
    const native = require(${JSON.stringify(nodeGypBuild)})(${JSON.stringify(packageRoot())});
    ${fixtures}
    const outcomes = ${JSON.stringify(expressions)}.map((expression) => {
      try {
        return { expression, returned: String(eval(expression)) };
      } catch (error) {
        return { expression, error: error?.constructor?.name, message: String(error?.message) };
      }
    });
    const after = ${sideEffects}; // before process.stdout, whose first use opens an fd
    process.stdout.write(JSON.stringify({ outcomes, after }));
  `;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  expect(child.stderr).toBe('');
  expect(child.signal).toBeNull();
  expect(child.status).toBe(0);
  return JSON.parse(child.stdout);
}

const badFd = ['"x"', 'undefined', 'null', '-1', 'NaN', 'Infinity', '2 ** 40', '1.5', '0n', '{}'];
const badUint32 = ['"x"', 'undefined', 'null', '-1', 'NaN', '2 ** 32', '1.5', '1n'];
const badUint64 = ['"x"', 'undefined', 'null', '-1', 'NaN', '2 ** 53', '1.5', '-1n', '2n ** 64n'];
const badView = [
  '"x"', 'undefined', '144', '[0]', 'new ArrayBuffer(144)', 'sabView', 'sabDataView', 'detachedView', 'closedMappingView',
];
const badMapping = ['"x"', 'undefined', 'null', '{}', 'fakeMapping', 'spoofedMapping', 'new Uint8Array(page)'];
const badFunction = ['"x"', 'undefined', 'null', '{}'];
const badBoolean = ['"x"', 'undefined', 'null', '1'];
const badErrno = ['"x"', 'undefined', '-1', 'NaN', '2 ** 40', '1.5', '22n'];

interface Case {
  arg: string;
  call: (value: string) => string;
  values: string[];
}

// Function name -> the bad calls of each of its arguments (the others valid).
const cases: Record<string, Case[]> = {
  close: [{ arg: 'fd', call: (v) => `native.close(${v})`, values: badFd }],
  open: [{ arg: 'path', call: (v) => `native.open(${v})`, values: ['undefined', '5', 'Buffer.from("/dev/null")', '"/dev/null\\0/x"'] }],
  ioctl: [
    { arg: 'fd', call: (v) => `native.ioctl(${v}, ioctls.KVM_GET_REGS, regs)`, values: badFd },
    { arg: 'request', call: (v) => `native.ioctl(efd, ${v}, regs)`, values: [...badUint32, '0x5401 /* TCGETS */'] },
    { arg: 'arg', call: (v) => `native.ioctl(efd, ioctls.KVM_GET_REGS, ${v})`, values: [...badView, 'new Uint8Array(143)'] },
    { arg: 'arg', call: (v) => `native.ioctl(efd, ioctls.KVM_CHECK_EXTENSION, ${v})`, values: badUint64 },
    { arg: 'arg', call: (v) => `native.ioctl(efd, ioctls.KVM_GET_API_VERSION, ${v})`, values: ['0', 'null', 'regs'] },
  ],
  setUserMemoryRegion: [
    { arg: 'vmFd', call: (v) => `native.setUserMemoryRegion(${v}, 0, 0, 0, mapping)`, values: badFd },
    { arg: 'slot', call: (v) => `native.setUserMemoryRegion(efd, ${v}, 0, 0, mapping)`, values: badUint32 },
    { arg: 'flags', call: (v) => `native.setUserMemoryRegion(efd, 0, ${v}, 0, mapping)`, values: badUint32 },
    { arg: 'guestPhysAddr', call: (v) => `native.setUserMemoryRegion(efd, 0, 0, ${v}, mapping)`, values: badUint64 },
    { arg: 'mapping', call: (v) => `native.setUserMemoryRegion(efd, 0, 0, 0, ${v})`, values: badMapping },
  ],
  removeUserMemoryRegion: [{ arg: 'mapping', call: (v) => `native.removeUserMemoryRegion(${v})`, values: badMapping }],
  eventfd: [{ arg: 'initval', call: (v) => `native.eventfd(${v})`, values: badUint32.filter((v) => v !== 'undefined') }],
  eventfdRead: [{ arg: 'fd', call: (v) => `native.eventfdRead(${v})`, values: badFd }],
  eventfdWrite: [
    { arg: 'fd', call: (v) => `native.eventfdWrite(${v}, 1)`, values: badFd },
    { arg: 'value', call: (v) => `native.eventfdWrite(efd, ${v})`, values: badUint64 },
  ],
  tunSetIff: [
    { arg: 'fd', call: (v) => `native.tunSetIff(${v}, "tap0", 2)`, values: badFd },
    {
      arg: 'name',
      call: (v) => `native.tunSetIff(efd, ${v}, 2)`,
      values: ['undefined', 'null', '5', 'Buffer.from("tap0")', '"tap\\0x"', '"a".repeat(16)', '"\u00e9".repeat(8)'],
    },
    { arg: 'flags', call: (v) => `native.tunSetIff(efd, "tap0", ${v})`, values: ['"x"', 'undefined', 'null', '-1', 'NaN', '2 ** 16', '1.5', '1n'] },
  ],
  errnoName: [{ arg: 'errno', call: (v) => `native.errnoName(${v})`, values: badErrno }],
  errnoMessage: [{ arg: 'errno', call: (v) => `native.errnoMessage(${v})`, values: badErrno }],
  Mapping: [
    {
      arg: 'size',
      call: (v) => `new native.Mapping(${v})`,
      values: ['"x"', 'undefined', 'null', '-1', 'NaN', '0', '2 ** 40', '1.5', 'page + 1', '-1n', '2n ** 64n'],
    },
    { arg: 'fd', call: (v) => `new native.Mapping(page, ${v})`, values: badFd.filter((v) => v !== 'undefined') },
  ],
  FdWatcher: [
    { arg: 'fd', call: (v) => `new native.FdWatcher(${v}, true, () => {})`, values: badFd },
    { arg: 'drainEventfd', call: (v) => `new native.FdWatcher(efd, ${v}, () => {})`, values: badBoolean },
    { arg: 'callback', call: (v) => `new native.FdWatcher(efd, true, ${v})`, values: badFunction },
  ],
  VcpuThread: [
    { arg: 'vcpuFd', call: (v) => `new native.VcpuThread(${v}, mapping, () => {}, () => {})`, values: badFd },
    {
      arg: 'vcpuFd',
      call: (v) => `new native.VcpuThread(-1, mapping, () => {}, () => {}, ${v})`,
      values: ['undefined', '{}', '{ simulate: false }'], // -1 (no fd) only for the simulated KVM_RUN
    },
    { arg: 'run', call: (v) => `new native.VcpuThread(efd, ${v}, () => {}, () => {})`, values: badMapping },
    { arg: 'onExit', call: (v) => `new native.VcpuThread(efd, mapping, ${v}, () => {})`, values: badFunction },
    { arg: 'onStop', call: (v) => `new native.VcpuThread(efd, mapping, () => {}, ${v})`, values: badFunction },
    {
      arg: 'options',
      call: (v) => `new native.VcpuThread(efd, mapping, () => {}, () => {}, ${v})`,
      values: [
        '"x"', 'null', '5', '{ spinNs: -1 }', '{ spinNs: "x" }', '{ spinNs: NaN }', '{ spinNs: 2 ** 40 }', '{ spinNs: 1n }',
        '{ simulate: "yes" }', '{ simulate: 1 }',
      ],
    },
  ],
  runPioLoop: [
    { arg: 'vcpuFd', call: (v) => `native.runPioLoop(${v}, mapping, 1)`, values: badFd },
    { arg: 'run', call: (v) => `native.runPioLoop(efd, ${v}, 1)`, values: badMapping },
    {
      arg: 'exits',
      call: (v) => `native.runPioLoop(efd, mapping, ${v})`,
      values: ['"x"', 'undefined', '-1', 'NaN', '1.5', '2 ** 32 - 1', '2 ** 40', '1n'],
    },
  ],
};

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('native argument checks', () => {
  for (const [fn, fnCases] of Object.entries(cases)) {
    const args = fnCases.map((c) => c.arg).filter((arg, i, all) => all.indexOf(arg) === i);
    it(`${fn}: ${args.join(', ')} are checked before anything is done`, () => {
      const calls = fnCases.flatMap((c) => c.values.map((value) => ({ arg: c.arg, expression: c.call(value) })));
      const { outcomes, after } = evaluate(calls.map((c) => c.expression));
      expect(outcomes).toHaveLength(calls.length);
      outcomes.forEach((outcome, i) => {
        const report = `${outcome.expression} -> ${outcome.error ?? `returned ${outcome.returned}`}: ${outcome.message}`;
        expect(report).toMatch(new RegExp(` -> (TypeError|RangeError): ${fn}: ${escape(calls[i].arg)}\\b`));
      });
      expect(after).toEqual(noSideEffects);
    });
  }

  it("close('x') and close(2 ** 40) leave fd 0 open", () => {
    const { outcomes, after } = evaluate([`native.close('x')`, `native.close(2 ** 40)`, `fs.fstatSync(0).isSocket()`]);
    expect(outcomes.map((o) => o.message ?? o.returned)).toEqual([
      'close: fd must be a non-negative integer (got a string)',
      'close: fd must be an integer from 0 to 2147483647 (got 1099511627776)',
      'true', // spawnSync's stdin (a socketpair)
    ]);
    expect(after).toEqual(noSideEffects);
  });

  it('refuses views of a SharedArrayBuffer and of a detached ArrayBuffer by name', () => {
    const { outcomes } = evaluate([
      'native.ioctl(efd, ioctls.KVM_GET_REGS, sabView)',
      'native.ioctl(efd, ioctls.KVM_SET_REGS, sabDataView)',
      'native.ioctl(efd, ioctls.KVM_GET_REGS, detachedView)',
      'native.ioctl(efd, ioctls.KVM_GET_REGS, closedMappingView)',
    ]);
    expect(outcomes.map((o) => `${o.error}: ${o.message}`)).toEqual([
      'TypeError: ioctl: arg must not be a view of a SharedArrayBuffer (got a TypedArray)',
      'TypeError: ioctl: arg must not be a view of a SharedArrayBuffer (got a DataView)',
      'TypeError: ioctl: arg must not be a view of a detached ArrayBuffer (got a TypedArray)',
      'TypeError: ioctl: arg must not be a view of a detached ArrayBuffer (got a TypedArray)',
    ]);
  });

  it('recognises Mappings by their type tag, not their prototype', () => {
    const { outcomes } = evaluate(['native.removeUserMemoryRegion(spoofedMapping)', 'native.removeUserMemoryRegion(mapping)']);
    expect(outcomes).toEqual([
      {
        expression: 'native.removeUserMemoryRegion(spoofedMapping)',
        error: 'TypeError',
        message: 'removeUserMemoryRegion: mapping must be a Mapping created by @hype/kvm-sys (got an object)',
      },
      { expression: 'native.removeUserMemoryRegion(mapping)', returned: 'undefined' },
    ]);
  });

  it('an exception thrown by an options getter propagates, and nothing is created', () => {
    const { outcomes, after } = evaluate([
      `new native.VcpuThread(efd, mapping, () => {}, () => {}, { get spinNs() { throw new Error('boom'); } })`,
      `new native.VcpuThread(efd, mapping, () => {}, () => {}, { get simulate() { mapping.close(); return true; } })`,
    ]);
    expect(outcomes.map((o) => `${o.error}: ${o.message}`)).toEqual([
      'Error: boom',
      'Error: VcpuThread: the kvm_run mapping is closed or too small', // a getter ran before the state check
    ]);
    expect(after).toEqual(noSideEffects);
  });

  it('methods called on objects that are not instances throw instead of crashing', () => {
    const { outcomes } = evaluate([
      'native.Mapping.prototype.close.call({})',
      'native.Mapping.prototype.close.call(spoofedMapping)',
      'Object.getOwnPropertyDescriptor(native.Mapping.prototype, "buffer").get.call({})',
      'native.FdWatcher.prototype.close.call(mapping)',
      'native.VcpuThread.prototype.start.call({})',
      'native.VcpuThread.prototype.join.call(5)',
      'native.Mapping(page)',
    ]);
    for (const outcome of outcomes) expect(outcome.error, outcome.expression).toMatch(/Error$/);
  });

  it('valid arguments still work: numbers or bigints, any kind of view, optional arguments', () => {
    const { outcomes, after } = evaluate([
      'native.ioctl(efd, ioctls.KVM_GET_REGS, regs)',
      'native.ioctl(efd, ioctls.KVM_GET_REGS, new DataView(new ArrayBuffer(200), 8))',
      'native.ioctl(efd, ioctls.KVM_GET_REGS, Buffer.alloc(144))',
      'native.ioctl(efd, ioctls.KVM_GET_REGS, new BigUint64Array(18))',
      'native.ioctl(efd, ioctls.KVM_CHECK_EXTENSION, 2n ** 64n - 1n)',
      'native.ioctl(efd, ioctls.KVM_GET_API_VERSION)',
      'native.ioctl(efd, ioctls.KVM_GET_API_VERSION, undefined)',
      'native.setUserMemoryRegion(efd, 0, 0, 2n ** 40n, mapping)',
      'native.errnoName(22)',
      'Object.keys(native.layout(1, "extra arguments are ignored")).length > 0',
      'new native.Mapping(BigInt(page)).size',
      'new native.Mapping(page, undefined).size',
      'native.tunSetIff(efd, "", 0xffff)',
    ]);
    expect(outcomes.map((o) => o.returned ?? `${o.error}: ${o.message}`)).toEqual([
      '-25', '-25', '-25', '-25', '-25', '-25', '-25', '-25', 'EINVAL', 'true', '4096', '4096', '-25',
    ]);
    expect(after).toEqual(noSideEffects);
  });
});
