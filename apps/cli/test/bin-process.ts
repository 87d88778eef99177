import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const CLI_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_ROOT = join(CLI_DIR, '..', '..');
export const BIN = join(CLI_DIR, 'dist', 'bin.cjs');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function isStale(): boolean {
  return !existsSync(BIN) || statSync(BIN).mtimeMs < newestMtime(join(CLI_DIR, 'src'));
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * These tests run the built `hype` (as `pnpm test` does after `turbo run build`). When dist/bin.cjs is
 * missing or older than src/, the CLI is rebuilt first, so a test never judges stale code. Test files
 * run in parallel: one builds (holding a lock directory), the others wait for it.
 */
export async function ensureBuiltBin(): Promise<void> {
  const lock = join(CLI_DIR, '.test-build-lock');
  for (;;) {
    if (!isStale()) return;
    try {
      mkdirSync(lock);
    } catch {
      const owner = Number(readFileSyncSafe(join(lock, 'pid')));
      if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) rmSync(lock, { recursive: true, force: true });
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    try {
      writeFileSync(join(lock, 'pid'), String(process.pid));
      if (!isStale()) return;
      const result = spawnSync('pnpm', ['--filter', '@hype/cli', 'build'], { cwd: REPO_ROOT, encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`building the hype CLI failed:\n${result.stdout}\n${result.stderr}`);
      return;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export interface HypeResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface HypeProcessOptions extends SpawnOptions {
  /** Called with all stdout so far after each chunk; may write to the child's stdin or signal it. */
  onStdout?: (soFar: string, stdin: NodeJS.WritableStream, child: ChildProcess) => void;
  input?: string;
}

/** Runs `node dist/bin.cjs ...args` and collects its output and exit status. */
export function runHype(args: string[], options: HypeProcessOptions = {}): Promise<HypeResult> {
  return runProgram(process.execPath, [BIN, ...args], options);
}

/** Runs a program (e.g. a wrapper that runs hype) and collects its output and exit status. */
export function runProgram(file: string, args: string[], options: HypeProcessOptions = {}): Promise<HypeResult> {
  const { onStdout, input, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('latin1').on('data', (chunk: string) => {
      stdout += chunk;
      onStdout?.(stdout, child.stdin!, child);
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}
