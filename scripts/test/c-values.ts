/**
 * The check behind the layout tests that compare constants with C headers (@hype/virtio's uapi
 * virtio_*.h, virtio-blk's virtio_blk.h, virtio-vsock's virtio_vsock.h, the loader's asm/bootparam.h):
 * compile a small C program with the host's compiler and read back the value of each integer
 * expression (`offsetof`, `sizeof`, `#define`s).
 *
 * ```ts
 * const blkH = cProgram({ check: 'the compiled virtio_blk.h check', includes: ['linux/virtio_blk.h'] });
 * it.skipIf(!blkH.canCompile)('matches the compiled header', () => {
 *   const c = blkH.values({ hdrSize: 'sizeof(struct virtio_blk_outhdr)' });
 *   expect(REQUEST_HEADER.SIZE).toBe(c.hdrSize);
 * });
 * ```
 *
 * Without a C compiler (`cc`, else `gcc`) or when it cannot find one of the includes, `canCompile` is
 * false, `skipReason` says why, and a warning naming the skipped check is printed once, when
 * `cProgram` is called (at the test file's load); the tests that need it skip.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CProgramOptions {
  /** What is skipped without a compiler, for the warning: e.g. 'the compiled virtio_blk.h check'. */
  readonly check: string;
  /** Headers as in `#include <...>` (e.g. 'linux/virtio_blk.h'), after stdio.h and stddef.h. */
  readonly includes: readonly string[];
  /** C statements at the start of main(), before the values are printed (e.g. a struct they read). */
  readonly setup?: readonly string[];
}

export interface CProgram {
  /** Whether `values` can run: a C compiler is on PATH and finds every include. */
  readonly canCompile: boolean;
  /** Why not (undefined when it can). */
  readonly skipReason: string | undefined;
  /**
   * The value of each C expression of integer type, by key, as the compiled program prints it (cast to
   * `unsigned long long`). Keys are letters, digits, `_`, `.`, `:` and `-`. Throws when it cannot
   * compile (with the compiler's message) or a value is not a safe integer.
   */
  values(exprs: Readonly<Record<string, string>>): Record<string, number>;
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

let compiler: string | null | undefined;

/** The host's C compiler (`cc`, else `gcc`), looked up once. */
export function cCompiler(): string | undefined {
  if (compiler === undefined) compiler = which('cc') ?? which('gcc') ?? null;
  return compiler ?? undefined;
}

const PRELUDE = ['stdio.h', 'stddef.h'];

function includeLines(includes: readonly string[]): string[] {
  return [...PRELUDE, ...includes.filter((h) => !PRELUDE.includes(h))].map((h) => `#include <${h}>`);
}

/** Whether `cc` compiles a file that includes `includes`. */
function compiles(cc: string, includes: readonly string[]): boolean {
  try {
    execFileSync(cc, ['-fsyntax-only', '-x', 'c', '-'], { input: `${includeLines(includes).join('\n')}\n`, stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const KEY = /^[A-Za-z0-9_.:-]+$/;

/** A program over `options.includes`, or the reason it cannot be compiled here (warned about). */
export function cProgram(options: CProgramOptions): CProgram {
  const cc = cCompiler();
  let skipReason: string | undefined;
  if (cc === undefined) {
    skipReason = 'no C compiler (cc or gcc) on PATH';
  } else if (!compiles(cc, options.includes)) {
    const missing = options.includes.filter((h) => !compiles(cc, [h]));
    skipReason =
      missing.length > 0
        ? `${cc} finds no ${missing.map((h) => `<${h}>`).join(', ')} (the headers come with linux-libc-dev and libc6-dev)`
        : `${cc} cannot compile ${options.includes.map((h) => `<${h}>`).join(', ')} together`;
  }
  if (skipReason !== undefined) console.warn(`[hype] skipping ${options.check}: ${skipReason}`);

  return {
    canCompile: skipReason === undefined,
    skipReason,
    values(exprs) {
      if (cc === undefined || skipReason !== undefined) throw new Error(`cProgram: cannot compile ${options.check}: ${skipReason}`);
      const entries = Object.entries(exprs);
      for (const [key] of entries) if (!KEY.test(key)) throw new Error(`cProgram: key ${JSON.stringify(key)} is not [A-Za-z0-9_.:-]+`);
      const src = [
        ...includeLines(options.includes),
        'int main(void) {',
        ...(options.setup ?? []).map((s) => `  ${s}`),
        ...entries.map(([key, expr]) => `  printf("%s %llu\\n", "${key}", (unsigned long long)(${expr}));`),
        '  return 0;',
        '}',
        '',
      ].join('\n');
      const dir = mkdtempSync(join(tmpdir(), 'hype-c-values-'));
      try {
        writeFileSync(join(dir, 'values.c'), src);
        try {
          execFileSync(cc, ['-o', join(dir, 'values'), join(dir, 'values.c')], { stdio: 'pipe' });
        } catch (e) {
          const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
          throw new Error(`cProgram (${options.check}): ${cc} failed:\n${stderr}\n--- values.c ---\n${src}`);
        }
        const out = execFileSync(join(dir, 'values'), { encoding: 'utf8' });
        const values: Record<string, number> = {};
        for (const line of out.split('\n')) {
          if (line === '') continue;
          const [key, text] = line.split(' ');
          const value = Number(text);
          if (!Number.isSafeInteger(value)) throw new Error(`cProgram (${options.check}): ${key} = ${text} is not a safe integer (${exprs[key]})`);
          values[key] = value;
        }
        return values;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
