/**
 * node:child_process, loaded on first use: the guest's builds run tools (gcc, make, dpkg-query, busybox),
 * but a start whose default guest is cached runs none, and loading node:child_process (with node:net and
 * node:dgram behind it) is tens of ms of start-up under emulation.
 */
import type * as ChildProcess from 'node:child_process';
import { createRequire } from 'node:module';

let loaded: typeof ChildProcess | undefined;

function childProcess(): typeof ChildProcess {
  loaded ??= createRequire(import.meta.url)('node:child_process') as typeof ChildProcess;
  return loaded;
}

type AnyFunction = (...args: unknown[]) => unknown;

export const execFileSync = ((...args: unknown[]) => (childProcess().execFileSync as AnyFunction)(...args)) as typeof ChildProcess.execFileSync;
export const spawnSync = ((...args: unknown[]) => (childProcess().spawnSync as AnyFunction)(...args)) as typeof ChildProcess.spawnSync;
export const spawn = ((...args: unknown[]) => (childProcess().spawn as AnyFunction)(...args)) as typeof ChildProcess.spawn;
