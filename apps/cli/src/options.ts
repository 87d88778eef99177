import { constants as bufferConstants } from 'node:buffer';
import { totalmem } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { DiskSpec } from '@hype/virtio-blk/node';
import type { PortForward } from '@hype/virtio-net';
import { MAX_CPUS, type ConsoleKind } from '@hype/vm';
import type { NetSpec } from './net-options.js';
import { formatSize, MiB, parseSizeBytes } from './size.js';
import { UsageError } from './usage-error.js';

/**
 * What `hype run` was asked for, from flags and/or a JSON config file. Every field is optional here:
 * missing ones get defaults (or the default guest) later.
 */
export interface RunOptions {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  memMiB?: number;
  cpus?: number;
  disks?: DiskSpec[];
  console?: ConsoleKind;
  /** Attach a virtio-rng entropy device (default true). */
  rng?: boolean;
  /** Network interfaces (--net, repeatable; default none). */
  nets?: NetSpec[];
  /** The first interface's MAC (--mac). */
  mac?: string;
  /** Host ports forwarded to the guest through the user-mode network (--publish, repeatable). */
  publish?: PortForward[];
}

export type RunOptionKey = keyof RunOptions;

/**
 * Where each option came from, as it should be named in an error message: `--kernel` for a flag,
 * `vm.json: kernel` for a config file key. `disks` has one label per disk.
 */
export interface OptionOrigins {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  memMiB?: string;
  cpus?: string;
  disks?: string[];
  console?: string;
  rng?: string;
  nets?: string;
  mac?: string;
  publish?: string;
}

export interface LabelledOptions {
  options: RunOptions;
  origins: OptionOrigins;
}

/** The largest guest RAM `--mem` accepts (1 TiB): anything above is a typo, not a VM. */
export const MAX_MEM_MIB = 1024 * 1024;
/** virtio-blk's device ID field is 20 bytes (VIRTIO_BLK_ID_BYTES). */
export const MAX_SERIAL_LENGTH = 20;

const CONSOLE_KINDS: readonly ConsoleKind[] = ['hvc', 'serial'];

/** `--mem 12X` for a flag, `vm.json: mem "12X"` for a config key. */
export function describeValue(label: string, value: unknown): string {
  if (label.startsWith('--') && value !== '') return `${label} ${String(value)}`;
  return `${label} ${JSON.stringify(value)}`;
}

export function parseMem(value: unknown, label: string): number {
  const at = describeValue(label, value);
  let bytes: number | undefined;
  if (typeof value === 'number') bytes = Number.isFinite(value) ? value * MiB : undefined;
  else if (typeof value === 'string') bytes = parseSizeBytes(value);
  else throw new UsageError(`${at}: must be a size such as 512, "512M" or "1G"`);
  if (bytes === undefined) {
    throw new UsageError(`${at}: not a size; give MiB or use a unit suffix, e.g. 512, 512M, 1G`);
  }
  if (bytes <= 0) throw new UsageError(`${at}: guest memory must be more than 0; e.g. 256M`);
  if (bytes % MiB !== 0) throw new UsageError(`${at}: guest memory must be a whole number of MiB, e.g. 256M`);
  const mib = bytes / MiB;
  if (mib > MAX_MEM_MIB) throw new UsageError(`${at}: more than the ${formatSize(MAX_MEM_MIB * MiB)} hype supports`);
  return mib;
}

export function parseCpus(value: unknown, label: string): number {
  const at = describeValue(label, value);
  // A flag's value is text; a config file must give a JSON number.
  const n = label.startsWith('--') && typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CPUS) {
    throw new UsageError(`${at}: the number of vCPUs must be a whole number from 1 to ${MAX_CPUS}`);
  }
  return n;
}

export function parseConsole(value: unknown, label: string): ConsoleKind {
  if (typeof value === 'string' && (CONSOLE_KINDS as readonly string[]).includes(value)) return value as ConsoleKind;
  throw new UsageError(
    `${describeValue(label, value)}: the console must be "hvc" (virtio-console, hvc0) or "serial" (8250 UART, ttyS0)`,
  );
}

/** `--rng on|off`; a config file may also say true/false. */
export function parseRng(value: unknown, label: string): boolean {
  if (value === 'on' || value === true) return true;
  if (value === 'off' || value === false) return false;
  throw new UsageError(`${describeValue(label, value)}: say "on" (attach a virtio-rng entropy device, the default) or "off"`);
}

export function parsePath(value: unknown, label: string, baseDir: string | undefined): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new UsageError(`${describeValue(label, value)}: must be a file path`);
  }
  return baseDir !== undefined && !isAbsolute(value) ? resolve(baseDir, value) : value;
}

export function parseCmdline(value: unknown, label: string): string {
  if (typeof value !== 'string') throw new UsageError(`${describeValue(label, value)}: must be a string`);
  if (value.includes('\0')) throw new UsageError(`${label}: the kernel command line cannot contain a NUL byte`);
  return value;
}

function parseSerial(value: unknown, at: string): string {
  if (typeof value !== 'string' || value === '') throw new UsageError(`${at}: serial must be a non-empty string`);
  if (!/^[\x21-\x7e]*$/.test(value)) throw new UsageError(`${at}: serial must be printable ASCII without spaces`);
  if (value.length > MAX_SERIAL_LENGTH) {
    throw new UsageError(`${at}: serial is ${value.length} characters; virtio-blk allows at most ${MAX_SERIAL_LENGTH}`);
  }
  return value;
}

/**
 * The largest memory disk on this host. @hype/virtio-blk's MemoryBackend holds the whole disk in one
 * host buffer, so it can be no larger than the runtime's largest buffer, nor than the host's RAM.
 */
export function maxMemoryDiskBytes(): { bytes: number; limitedBy: string } {
  const ram = totalmem();
  return ram < bufferConstants.MAX_LENGTH ? { bytes: ram, limitedBy: "the host's RAM" } : { bytes: bufferConstants.MAX_LENGTH, limitedBy: 'one host buffer' };
}

/** A size for a message about a limit, rounded down: `23.5G`, `512M`. */
function roughSize(bytes: number): string {
  const gib = bytes / (1024 * MiB);
  return gib >= 1 ? `${Math.floor(gib * 10) / 10}G` : `${Math.floor(bytes / MiB)}M`;
}

function parseDiskSize(text: string, at: string): number {
  const bytes = parseSizeBytes(text);
  if (bytes === undefined) throw new UsageError(`${at}: "${text}" is not a size; use e.g. mem:64M or mem:1G`);
  if (bytes <= 0 || bytes % 512 !== 0) {
    throw new UsageError(`${at}: a memory disk must be a positive multiple of 512 bytes, e.g. mem:64M`);
  }
  const max = maxMemoryDiskBytes();
  if (bytes > max.bytes) {
    throw new UsageError(
      `${at}: a memory disk is held in host memory; at most ${roughSize(max.bytes)} here (${max.limitedBy}); use a disk image file for more`,
    );
  }
  return bytes;
}

const URL_PREFIX = /^https?:\/\//i;

function parseUrl(text: string, at: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${at}: "${text}" is not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${at}: only http(s) URLs are supported`);
  return url.href;
}

const DISK_OPTION = /^(ro|rw|serial=.*)$/;

/**
 * Parses one `--disk` spec: `PATH[,ro][,serial=ID]`, `mem:SIZE[,serial=ID]` or `http(s)://URL[,serial=ID]`.
 * Options are taken from the end, so a URL may itself contain commas; a file path may not.
 */
export function parseDiskSpec(spec: string, label: string, baseDir: string | undefined): DiskSpec {
  const at = describeValue(label, spec);
  const segments = spec.split(',');
  const options: string[] = [];
  while (segments.length > 1 && DISK_OPTION.test(segments[segments.length - 1])) options.unshift(segments.pop()!);
  const base = segments.join(',');
  const isUrl = URL_PREFIX.test(base);
  if (!isUrl && segments.length > 1) {
    throw new UsageError(`${at}: unknown disk option "${segments.slice(1).join(',')}"; options are ro and serial=ID`);
  }
  let readOnly = false;
  let serial: string | undefined;
  for (const option of options) {
    if (option === 'ro') readOnly = true;
    else if (option === 'rw') readOnly = false;
    else if (serial !== undefined) throw new UsageError(`${at}: serial= given twice`);
    else serial = parseSerial(option.slice('serial='.length), at);
  }
  const withSerial = serial === undefined ? {} : { serial };
  if (base === '') throw new UsageError(`${at}: missing the disk file; use PATH[,ro][,serial=ID], mem:SIZE or a URL`);
  if (isUrl) return { kind: 'http', url: parseUrl(base, at), ...withSerial };
  if (base.startsWith('mem:')) {
    if (readOnly) throw new UsageError(`${at}: a memory disk cannot be read-only (it starts empty)`);
    return { kind: 'memory', sizeBytes: parseDiskSize(base.slice('mem:'.length), at), ...withSerial };
  }
  const path = baseDir !== undefined && !isAbsolute(base) ? resolve(baseDir, base) : base;
  return { kind: 'file', path, ...(readOnly ? { readOnly } : {}), ...withSerial };
}

const DISK_OBJECT_KEYS = ['path', 'mem', 'url', 'readOnly', 'serial'];

/** A disk in a JSON config: a `--disk` spec string, or `{ path, readOnly?, serial? }` / `{ mem }` / `{ url }`. */
export function parseDiskValue(value: unknown, label: string, baseDir: string | undefined): DiskSpec {
  if (typeof value === 'string') return parseDiskSpec(value, label, baseDir);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(
      `${label}: a disk must be a string like "disk.img,ro" or an object like {"path": "disk.img", "readOnly": true}`,
    );
  }
  const disk = value as Record<string, unknown>;
  for (const key of Object.keys(disk)) {
    if (!DISK_OBJECT_KEYS.includes(key)) {
      throw new UsageError(`${label}: unknown key "${key}"; a disk has path, mem or url, and readOnly, serial`);
    }
  }
  const sources = ['path', 'mem', 'url'].filter((key) => disk[key] !== undefined);
  if (sources.length !== 1) throw new UsageError(`${label}: give exactly one of "path", "mem" or "url"`);
  const serial = disk.serial === undefined ? {} : { serial: parseSerial(disk.serial, label) };
  if (disk.readOnly !== undefined && typeof disk.readOnly !== 'boolean') {
    throw new UsageError(`${label}: "readOnly" must be true or false`);
  }
  if (disk.path !== undefined) {
    const path = parsePath(disk.path, `${label}.path`, baseDir);
    return { kind: 'file', path, ...(disk.readOnly ? { readOnly: true } : {}), ...serial };
  }
  if (disk.readOnly === true && disk.mem !== undefined) {
    throw new UsageError(`${label}: a memory disk cannot be read-only (it starts empty)`);
  }
  if (disk.mem !== undefined) {
    const size = typeof disk.mem === 'number' ? `${disk.mem}` : disk.mem;
    if (typeof size !== 'string') throw new UsageError(`${label}: "mem" must be a size such as "64M"`);
    return { kind: 'memory', sizeBytes: parseDiskSize(size, label), ...serial };
  }
  if (typeof disk.url !== 'string') throw new UsageError(`${label}: "url" must be a string`);
  return { kind: 'http', url: parseUrl(disk.url, label), ...serial };
}

/** Options from the config file, overridden field by field by the flags (a `--disk` replaces all disks). */
export function mergeOptions(file: LabelledOptions | undefined, flags: LabelledOptions): LabelledOptions {
  if (!file) return flags;
  const options: RunOptions = { ...file.options };
  const origins: OptionOrigins = { ...file.origins };
  for (const key of Object.keys(flags.options) as RunOptionKey[]) {
    if (flags.options[key] === undefined) continue;
    (options as Record<string, unknown>)[key] = flags.options[key];
    (origins as Record<string, unknown>)[key] = flags.origins[key];
  }
  return { options, origins };
}
