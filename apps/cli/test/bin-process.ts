import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const CLI_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_ROOT = join(CLI_DIR, '..', '..');
export const BIN = join(CLI_DIR, 'dist', 'bin.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * These tests run the built `hype` (as `pnpm test` does after `turbo run build`). When dist/bin.js is
 * missing or older than src/, rebuild the CLI so the test never judges stale code.
 */
export function ensureBuiltBin(): void {
  if (existsSync(BIN) && statSync(BIN).mtimeMs >= newestMtime(join(CLI_DIR, 'src'))) return;
  const result = spawnSync('pnpm', ['--filter', 'hype', 'build'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`building the hype CLI failed:\n${result.stdout}\n${result.stderr}`);
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

/** Runs `node dist/bin.js ...args` and collects its output and exit status. */
export function runHype(args: string[], options: HypeProcessOptions = {}): Promise<HypeResult> {
  const { onStdout, input, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
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
