/**
 * The console on a real terminal, without KVM: the built CLI (tty-harness.mjs: runCli on the real
 * process, a fake VM) runs inside a pseudo-terminal from util-linux `script`. Checks raw mode, that
 * Ctrl-C is a byte for the guest, Ctrl-A x, SIGTERM, and that the terminal modes are restored on each
 * way out, an uncaught exception included.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuiltBin } from './bin-process.js';
import { elfKernel, workdir } from './helpers.js';

const HARNESS = fileURLToPath(new URL('./fixtures/tty-harness.mjs', import.meta.url));
const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) console.warn('[hype] util-linux `script` not found: skipping terminal tests in apps/cli/test/e2e-tty.test.ts');

interface TtyRun {
  text: string;
  exitCode: string | undefined;
  /** `stty -a` after hype ended, in the same terminal. */
  modes: string;
}

/**
 * Runs the harness in a pty; `react` sees the output so far and may type: it returns keystrokes, or a
 * list of them to be typed 200 ms apart (separate reads on the other side).
 */
function inTerminal(mode: string, react: (output: string, harnessPid: number | undefined) => string | string[] | undefined): Promise<TtyRun> {
  const kernel = workdir().file('vmlinux', elfKernel());
  const inner = `"${process.execPath}" "${HARNESS}" ${mode} "${kernel}"; echo "hype-exit=$?"; stty -a`;
  const child = spawn('script', ['-qfec', `sh -c '${inner}'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
    output += chunk;
    const pid = /pid=(\d+)/.exec(output)?.[1];
    const typed = react(output, pid === undefined ? undefined : Number(pid));
    const chunks = typed === undefined ? [] : Array.isArray(typed) ? typed : [typed];
    chunks.forEach((keys, index) => setTimeout(() => child.stdin.write(keys), 200 * index));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => {
    child.on('close', () => {
      clearTimeout(timer);
      const text = output.replace(/\r/g, '');
      const exitCode = /hype-exit=(\d+)/.exec(text)?.[1];
      resolve({ text, exitCode, modes: exitCode === undefined ? '' : text.slice(text.indexOf('hype-exit=')) });
    });
  });
}

/**
 * hype left raw mode itself before exiting (Node also resets the terminal at exit, so the final `stty`
 * alone would not tell), and the terminal is in cooked mode afterwards: line editing and echo on.
 */
function expectRestored(run: TtyRun): void {
  expect(run.text).toContain('raw-at-exit=false');
  const { modes } = run;
  expect(modes).toMatch(/(^|\s)icanon(\s|$)/m);
  expect(modes).toMatch(/(^|\s)echo(\s|$)/m);
  expect(modes).toMatch(/(^|\s)isig(\s|$)/m);
}

describe.skipIf(!hasScript)('the console on a real terminal (fake VM)', () => {
  beforeAll(async () => {
    await ensureBuiltBin();
  }, 300_000);

  it('raw mode: typed bytes and Ctrl-C go to the guest; Ctrl-A x quits with 0; terminal restored', async () => {
    let typed = false;
    const run = await inTerminal('quit', (output) => {
      if (typed || !output.includes('fake-guest-ready')) return undefined;
      typed = true;
      return ['ab\x03', '\x01', 'x'];
    });
    expect(run.text).toContain('fake-guest-ready raw=true');
    expect(run.text).toContain('hype: terminated by Ctrl-A x');
    expect(run.text).toContain('received=616203 ');
    expect(run.exitCode).toBe('0');
    expectRestored(run);
  });

  it('the guest powering off: exit 0, terminal restored', async () => {
    let typed = false;
    const run = await inTerminal('poweroff', (output) => {
      if (typed || !output.includes('fake-guest-ready')) return undefined;
      typed = true;
      return 'q';
    });
    expect(run.exitCode).toBe('0');
    expect(run.text).toContain('received=71 ');
    expectRestored(run);
  });

  it('SIGTERM: exit 143, terminal restored', async () => {
    let signalled = false;
    const run = await inTerminal('quit', (output, pid) => {
      if (!signalled && pid !== undefined && output.includes('fake-guest-ready')) {
        signalled = true;
        process.kill(pid, 'SIGTERM');
      }
      return undefined;
    });
    expect(run.text).toContain('hype: stopped by SIGTERM');
    expect(run.exitCode).toBe('143');
    expectRestored(run);
  });

  it('an uncaught exception: exit 5 with the error, terminal restored', async () => {
    let typed = false;
    const run = await inTerminal('crash', (output) => {
      if (typed || !output.includes('fake-guest-ready')) return undefined;
      typed = true;
      return '!';
    });
    expect(run.text).toContain('hype: internal error: Error: fake device bug');
    expect(run.exitCode).toBe('5');
    expectRestored(run);
  });
});
