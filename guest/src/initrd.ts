/**
 * Assembles hype's initramfs: busybox-static with its applet links, a few device nodes, the scripts in
 * guest/rootfs (init, poweroff wrapper, test runner), the guest agent, optional extra files; written as one uncompressed
 * newc cpio (a gunzip in the guest costs ~45 s on an emulating host, see packages/vm/README.md, host quirks).
 */
import { execFileSync } from './child-process.js';
import { memoized } from './memo.js';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { AGENT_INITRD_PATH, ensureAgent } from './agent.js';
import { encodeNewc, normalizeArchivePath, type CpioEntry } from './cpio.js';
import { checkStaticX8664Elf } from './elf.js';
import { guestPath } from './paths.js';

export { checkStaticX8664Elf } from './elf.js';

export type InitMode = 'shell' | 'test';

export type InitrdFile =
  | { path: string; data: Uint8Array | string; mode?: number }
  | CpioEntry;

export interface InitrdOptions {
  /**
   * `shell` (default): /init starts a shell on the console, or runs the tests when the kernel command
   * line has `hype.test=...`. `test`: /init always runs the tests (`boot` unless `hype.test=` names others).
   */
  init?: InitMode;
  /** The statically linked busybox to install as /bin/busybox. Default: /bin/busybox (busybox-static). */
  busybox?: string;
  /** Replaces guest/rootfs/init as /init (mode 0755). */
  initScript?: string;
  /** Extra members; they replace anything at the same path. Parents are created as needed. */
  files?: InitrdFile[];
  /**
   * The directory copied into the initrd. Default: guest/rootfs. Its files' modes come from
   * `executables`, not from the disk.
   */
  rootfs?: string;
  /** The files under `rootfs` that get mode 0755 (all others 0644). Default: {@link ROOTFS_EXECUTABLES}. */
  executables?: readonly string[];
  /**
   * The guest agent installed as /usr/sbin/hype-agent (mode 0755): a path to a static x86-64 build, or
   * `false` to leave it out. Default: compiled from guest/agent/hype-agent.c and cached ({@link ensureAgent};
   * needs gcc and libc6-dev).
   */
  agent?: string | false;
}

export const DEFAULT_BUSYBOX = '/bin/busybox';

const DIRECTORIES = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'etc/hype', 'proc', 'sys', 'dev', 'tmp', 'run', 'mnt', 'root', 'var'];

/** Present before devtmpfs is mounted: the kernel opens /dev/console for init, /init writes /dev/port. */
const DEVICE_NODES: CpioEntry[] = [
  { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
  { type: 'chardev', path: 'dev/tty', major: 5, minor: 0, mode: 0o666 },
  { type: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
  { type: 'chardev', path: 'dev/zero', major: 1, minor: 5, mode: 0o666 },
  { type: 'chardev', path: 'dev/port', major: 1, minor: 4, mode: 0o640 },
];

/** Applet paths (`usr/bin/awk`, ...) from `busybox --list-full`. */
export function busyboxApplets(busybox: string): string[] {
  // The list changes only with the binary; running it on every `hype run` costs a process start.
  const out = memoized(`busybox --list-full ${busybox}`, [busybox], () => execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }));
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'bin/busybox');
}

/**
 * The files under guest/rootfs that are executable in the guest (mode 0755). Every other file is 0644 and
 * every directory 0755: modes come from this table, never from the disk, because packing the package
 * (`pnpm pack`) and some checkouts drop executable bits, and an `/init` without one cannot be started.
 * A script added to rootfs/ that starts with `#!` belongs here (test/initrd-modes.test.ts checks that).
 */
export const ROOTFS_EXECUTABLES: readonly string[] = [
  'init',
  'sbin/poweroff',
  'sbin/reboot',
  'usr/lib/hype/run-tests',
  'etc/udhcpc/default.script',
];

/**
 * The files under `root` (default: guest/rootfs) as initrd members, with modes from `executables`
 * (default: {@link ROOTFS_EXECUTABLES}): those 0755, other files 0644, directories 0755. Throws if an
 * entry of `executables` is not a file under `root`.
 */
export function rootfsEntries(root = guestPath('rootfs'), executables: readonly string[] = ROOTFS_EXECUTABLES): CpioEntry[] {
  const executable = new Set(executables);
  const entries: CpioEntry[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const path = relative(root, full).split(sep).join('/');
      const st = statSync(full);
      if (st.isDirectory()) {
        entries.push({ type: 'dir', path, mode: 0o755 });
        walk(full);
      } else if (st.isFile()) {
        entries.push({ type: 'file', path, data: readFileSync(full), mode: executable.has(path) ? 0o755 : 0o644 });
      }
    }
  };
  walk(root);
  const missing = [...executable].filter((path) => !entries.some((e) => e.type === 'file' && e.path === path));
  if (missing.length > 0) throw new Error(`initrd: ${missing.join(', ')} listed as executable but not a file under ${root}`);
  return entries;
}

function toEntry(file: InitrdFile): CpioEntry {
  if ('type' in file) return file;
  return { type: 'file', path: file.path, data: file.data, mode: file.mode ?? 0o644 };
}

/** Orders members so every directory precedes its contents; adds missing parent directories. */
export function layoutEntries(layers: CpioEntry[][]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const layer of layers) {
    for (const entry of layer) {
      const path = normalizeArchivePath(entry.path);
      byPath.set(path, { ...entry, path });
    }
  }
  for (const path of [...byPath.keys()]) {
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent)) {
      const existing = byPath.get(parent);
      if (existing && existing.type !== 'dir') {
        throw new Error(`initrd: ${parent} is a ${existing.type} but ${path} needs it to be a directory`);
      }
      if (!existing) byPath.set(parent, { type: 'dir', path: parent, mode: 0o755 });
    }
  }
  const depth = (p: string) => p.split('/').length;
  return [...byPath.values()].sort((a, b) => {
    const aDir = a.type === 'dir' ? 0 : 1;
    const bDir = b.type === 'dir' ? 0 : 1;
    if (aDir !== bDir) return aDir - bDir;
    if (aDir === 0 && depth(a.path) !== depth(b.path)) return depth(a.path) - depth(b.path);
    return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
  });
}

/** The members of hype's initrd, in archive order. */
export function initrdEntries(options: InitrdOptions = {}): CpioEntry[] {
  const busybox = options.busybox ?? DEFAULT_BUSYBOX;
  if (!existsSync(busybox)) {
    throw new Error(`busybox not found at ${busybox}: apt-get install busybox-static (or pass busybox: <path>)`);
  }
  const busyboxBytes = readFileSync(busybox);
  checkStaticX8664Elf(busyboxBytes, busybox);
  const init = options.init ?? 'shell';
  if (init !== 'shell' && init !== 'test') throw new Error(`initrd: init must be 'shell' or 'test', got ${JSON.stringify(init)}`);

  const base: CpioEntry[] = [
    ...DIRECTORIES.map((path): CpioEntry => ({ type: 'dir', path, mode: path === 'tmp' ? 0o1777 : path === 'root' ? 0o700 : 0o755 })),
    ...DEVICE_NODES,
    { type: 'file', path: 'bin/busybox', data: busyboxBytes, mode: 0o755 },
    ...busyboxApplets(busybox).map((path): CpioEntry => ({ type: 'symlink', path, target: '/bin/busybox' })),
  ];
  const ours: CpioEntry[] = [...rootfsEntries(options.rootfs, options.executables), { type: 'file', path: 'etc/hype/init-mode', data: `${init}\n`, mode: 0o644 }];
  if (options.agent !== false) {
    const agentPath = options.agent ?? ensureAgent().path;
    if (!existsSync(agentPath)) throw new Error(`initrd: the guest agent ${agentPath} does not exist`);
    const agentBytes = readFileSync(agentPath);
    checkStaticX8664Elf(agentBytes, agentPath, 'the initrd needs a static hype-agent (gcc -static)');
    ours.push({ type: 'file', path: AGENT_INITRD_PATH, data: agentBytes, mode: 0o755 });
  }
  if (options.initScript !== undefined) ours.push({ type: 'file', path: 'init', data: options.initScript, mode: 0o755 });
  return layoutEntries([base, ours, (options.files ?? []).map(toEntry)]);
}

/** hype's initrd as one uncompressed newc cpio archive. */
export function buildInitrd(options: InitrdOptions = {}): Buffer {
  return encodeNewc(initrdEntries(options));
}

/** Builds the initrd and writes it to `path` (through a temporary file and a rename). */
export function writeInitrd(path: string, options: InitrdOptions = {}): { path: string; bytes: number } {
  const archive = buildInitrd(options);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, archive);
  renameSync(tmp, path);
  return { path, bytes: archive.length };
}
