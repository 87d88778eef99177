// `hype run -- CMD` against a fake VM and agent: the status passes through, output goes to its stream,
// stdin flows with backpressure, signals reach the command, and hype's own failures are 124-127.
import { AgentError } from '@hype/guest-agent';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/run-cli.js';
import { ConsoleTail, statusExitCode } from '../src/run-command.js';
import { harness, type FakeVm } from './fakes.js';
import { workdir } from './helpers.js';

function start(argv: string[], options: { tty?: boolean } = {}) {
  const w = workdir();
  const h = harness({ tty: options.tty ?? false });
  const done = runCli(['run', '--kernel', w.kernel(), ...argv], h.io);
  return { h, done, w };
}

async function command(h: ReturnType<typeof harness>) {
  const vm: FakeVm = await h.vmStarted;
  const cmd = await vm.agent!.started;
  return { vm, cmd };
}

describe('hype run -- CMD', () => {
  it("passes CMD's exit status through, stdout and stderr to their streams, then powers the guest off", async () => {
    const { h, done } = start(['--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    const { vm, cmd } = await command(h);
    expect(vm.config).toMatchObject({ agent: true, cmdline: 'quiet' });
    expect(cmd.argv).toEqual(['sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(cmd.options).toEqual({});
    cmd.stdout.push('out\n');
    cmd.stderr.push('err\n');
    cmd.exit({ exitCode: 7 });
    expect(await done).toBe(7);
    expect(h.stdout.text).toBe('out\n');
    expect(h.stderr.text).toBe('err\n');
    expect(vm.agent!.powerOffs).toBe(1);
    expect(vm.stopCalls).toBe(0);
    expect(h.signals.count).toBe(0);
  });

  it("a user's --cmdline follows quiet; --timeout reaches the command in ms", async () => {
    const { h, done } = start(['--cmdline', 'loglevel=7', '--timeout', '1.5', '--', 'true']);
    const { vm, cmd } = await command(h);
    expect(vm.config.cmdline).toBe('quiet loglevel=7');
    expect(cmd.options).toEqual({ timeoutMs: 1500 });
    cmd.exit({ exitCode: 0 });
    expect(await done).toBe(0);
  });

  it('a signal ends the command as 128+N', async () => {
    const { h, done } = start(['--', 'sleep', '9']);
    const { cmd } = await command(h);
    cmd.exit({ exitCode: null, signal: 'SIGTERM' });
    expect(await done).toBe(143);
    expect(statusExitCode({ exitCode: null, signal: 'SIGKILL' })).toBe(137);
  });

  it("SIGINT goes to the command's process group first; a second one stops the VM", async () => {
    const { h, done } = start(['--', 'sleep', '9']);
    const { vm, cmd } = await command(h);
    h.signals.send('SIGINT');
    expect(cmd.kills).toEqual([{ signal: 'SIGINT', group: true }]);
    expect(vm.stopCalls).toBe(0);
    h.signals.send('SIGINT');
    expect(vm.stopCalls).toBe(1);
    cmd.fail(new AgentError('connection-reset', 'hype-agent: the connection was reset'));
    expect(await done).toBe(130);
    expect(h.stderr.text).toBe('hype: stopped by SIGINT\n');
  });

  it.each([
    [new AgentError('remote', 'hype-agent: exec nosuch: No such file or directory (ENOENT)', { op: 'exec', code: 'ENOENT' }), 127, 'hype: nosuch: command not found in the guest\n'],
    [new AgentError('remote', 'hype-agent: exec nosuch: Permission denied (EACCES)', { op: 'exec', code: 'EACCES' }), 126, 'hype: nosuch: cannot run in the guest: hype-agent: exec nosuch: Permission denied (EACCES)\n'],
    [new AgentError('timeout', 'hype-agent: exec timed out'), 124, 'hype: nosuch did not finish within --timeout 2 s: killed\n'],
    [new AgentError('protocol', 'hype-agent sent garbage'), 125, 'hype: nosuch: hype-agent sent garbage\n'],
  ])('%s -> exit %i, the guest still powered off', async (error, code, message) => {
    const { h, done } = start(['--timeout', '2', '--', 'nosuch']);
    const { vm, cmd } = await command(h);
    cmd.fail(error);
    expect(await done).toBe(code);
    expect(h.stderr.text).toBe(message);
    expect(vm.agent!.powerOffs).toBe(1);
  });

  it("stdin flows into the command's, paused while its queue is full, and its end is the command's EOF", async () => {
    const { h, done } = start(['--', 'cat']);
    const { cmd } = await command(h);
    expect(h.stdin.paused).toBe(false);
    cmd.stdinLimit = 2;
    h.stdin.type('a', 'b');
    expect(h.stdin.paused).toBe(true);
    cmd.drain();
    expect(h.stdin.paused).toBe(false);
    h.stdin.type('c');
    h.stdin.emit('end');
    expect(cmd.stdinChunks).toEqual(['a', 'b', 'c']);
    expect(cmd.stdinEnded).toBe(true);
    cmd.exit({ exitCode: 0 });
    expect(await done).toBe(0);
    expect(h.stdin.listenerCount('data')).toBe(0);
  });

  it('stdout that is not keeping up: the command output waits for drain', async () => {
    const { h, done } = start(['--', 'yes']);
    const { cmd } = await command(h);
    let drain: () => void = () => {};
    const writes: string[] = [];
    Object.assign(h.stdout, {
      write: (chunk: Uint8Array) => (writes.push(Buffer.from(chunk).toString()), false),
      once: (_event: 'drain', listener: () => void) => (drain = listener),
    });
    cmd.stdout.push('1');
    cmd.stdout.push('2');
    cmd.exit({ exitCode: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(writes).toEqual(['1']);
    drain();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(writes).toEqual(['1', '2']);
    drain();
    expect(await done).toBe(0);
  });

  it("an agent that never answers: exit 125 with the reason and the console's last lines", async () => {
    const w = workdir();
    const h = harness({ tty: false });
    const done = runCli(['run', '--kernel', w.kernel(), '--', 'true'], h.io);
    const vm = await h.vmStarted;
    let fail: (error: Error) => void = () => {};
    vm.agent!.readyGate = new Promise((_, reject) => (fail = reject));
    vm.guestWrites('Kernel panic - not syncing: VFS\r\n');
    await new Promise((resolve) => setTimeout(resolve, 0));
    fail(new AgentError('timeout', 'hype-agent did not answer within 300000 ms'));
    expect(await done).toBe(125);
    expect(h.stderr.text).toContain('hype: hype-agent did not answer within 300000 ms (hype\'s default guest starts hype-agent');
    expect(h.stderr.text).toContain("hype: the guest console's last lines:\nKernel panic - not syncing: VFS\n");
    expect(vm.stopCalls).toBe(1);
    expect(vm.agent!.powerOffs).toBe(0);
  });

  it('the VM ending before the agent answers: exit 125 naming how it ended', async () => {
    const { h, done } = start(['--', 'true']);
    const vm = await h.vmStarted;
    vm.agent!.readyGate = new Promise(() => {});
    await new Promise((resolve) => setTimeout(resolve, 0));
    vm.finish({ kind: 'reboot' });
    expect(await done).toBe(125);
    expect(h.stderr.text).toContain('hype: the VM ended before its guest agent answered');
    expect(h.stderr.text).toContain('hype: guest rebooted (or panicked)');
  });

  it('the guest powering off under the command (CMD was poweroff -f): exit 125 saying so', async () => {
    const { h, done } = start(['--', 'poweroff', '-f']);
    const { vm, cmd } = await command(h);
    vm.finish({ kind: 'poweroff', status: 0 });
    await new Promise((resolve) => setTimeout(resolve, 0));
    cmd.fail(new AgentError('connection-reset', 'hype-agent: the connection was reset'));
    expect(await done).toBe(125);
    expect(h.stderr.text).toBe('hype: the guest powered off (status 0) before poweroff finished\n');
    expect(vm.agent!.powerOffs).toBe(0);
  });

  it('a guest that does not power off after the command is stopped after the grace period; the status still passes', async () => {
    const w = workdir();
    const h = harness({ tty: false, powerOffTimeoutMs: 30 });
    const done = runCli(['run', '--kernel', w.kernel(), '--', 'true'], h.io);
    const { vm, cmd } = await command(h);
    vm.agent!.powersOff = false;
    cmd.exit({ exitCode: 3 });
    expect(await done).toBe(3);
    expect(vm.agent!.powerOffs).toBe(1);
    expect(vm.stopCalls).toBe(1);
  });

  it('a signal while the guest powers off stops the VM at once (there is no command left to signal)', async () => {
    const { h, done } = start(['--', 'true']);
    const { vm, cmd } = await command(h);
    vm.agent!.powersOff = false;
    cmd.kill = () => false; // ended
    cmd.exit({ exitCode: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    h.signals.send('SIGTERM');
    expect(vm.stopCalls).toBe(1);
    expect(await done).toBe(0);
  });

  it('a signal before the agent answered stops the VM: exit 130', async () => {
    const { h, done } = start(['--', 'true']);
    const vm = await h.vmStarted;
    vm.agent!.readyGate = new Promise(() => {});
    await new Promise((resolve) => setTimeout(resolve, 0));
    h.signals.send('SIGINT');
    expect(vm.stopCalls).toBe(1);
    expect(await done).toBe(130);
    expect(h.stderr.text).toBe('hype: stopped by SIGINT\n');
  });

  it('a VM that does not stop: hype gives up after stopTimeoutMs, or at once on a second signal', async () => {
    for (const second of [false, true]) {
      const w = workdir();
      const h = harness({ tty: false, stopTimeoutMs: second ? 60_000 : 30 });
      const done = runCli(['run', '--kernel', w.kernel(), '--', 'sleep', '9'], h.io);
      const { vm, cmd } = await command(h);
      vm.honoursStop = false;
      h.signals.send('SIGTERM'); // to the command, which ignores it
      h.signals.send('SIGTERM'); // stop the VM
      if (second) h.signals.send('SIGTERM');
      cmd.fail(new AgentError('connection-reset', 'hype-agent: reset'));
      expect(await done).toBe(143);
      if (!second) expect(h.stderr.text).toContain('the VM did not stop within 30 ms; exiting anyway');
    }
  });

  it('stdout gone (| head exited): the command gets SIGPIPE and hype does not wait for drain', async () => {
    const { h, done } = start(['--', 'yes']);
    const { cmd } = await command(h);
    Object.assign(h.stdout, { destroyed: true, write: () => false, once: () => {}, removeListener: () => {} });
    cmd.stdout.push('y\n');
    cmd.stdout.push('y\n');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(cmd.kills).toEqual([{ signal: 'SIGPIPE', group: true }]);
    cmd.exit({ exitCode: null, signal: 'SIGPIPE' });
    expect(await done).toBe(141);
  });

  it('the VM failing under the command: 125, how it ended, and the console', async () => {
    const { h, done } = start(['--', 'sleep', '9']);
    const { vm, cmd } = await command(h);
    vm.guestWrites('Kernel panic - not syncing: Attempted to kill init!\n');
    vm.finish({ kind: 'reboot' });
    await new Promise((resolve) => setTimeout(resolve, 0));
    cmd.fail(new AgentError('connection-reset', 'hype-agent: the connection was reset'));
    expect(await done).toBe(125);
    expect(h.stderr.text).toContain('hype: guest rebooted (or panicked)');
    expect(h.stderr.text).toContain("the guest console's last lines:\nKernel panic - not syncing: Attempted to kill init!");
  });

  it("hype's own failures with a command are 125 (bad flags, bad files), not the interactive codes", async () => {
    const h = harness();
    expect(await runCli(['run', '--cpus', '99', '--', 'true'], h.io)).toBe(125);
    expect(await runCli(['run', '--kernel', '/nonexistent/vmlinux', '--', 'true'], harness().io)).toBe(125);
    expect(await runCli(['run', '--bogus', '--', 'true'], harness().io)).toBe(125);
    const stray = harness();
    expect(await runCli(['run', 'bzImage', '--', 'ls'], stray.io)).toBe(125);
    expect(stray.stderr.text).toContain("unexpected argument 'bzImage'");
  });

  it('ConsoleTail keeps the last bytes only', () => {
    const tail = new ConsoleTail(8);
    for (const piece of ['0123', '4567', '89ab', 'cdef']) tail.push(Buffer.from(piece));
    expect(tail.text()).toBe('89abcdef');
  });
});
