import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  parseCmdline,
  parseConsole,
  parseCpus,
  parseDiskValue,
  parseMem,
  parsePath,
  parseRng,
  type LabelledOptions,
} from './options.js';
import { parseMac, parseNetSpec, parsePublish } from './net-options.js';
import { UsageError } from './usage-error.js';

/** The keys a `--config` JSON file may have; each takes the same values as the flag of the same name. */
export const CONFIG_KEYS = ['kernel', 'initrd', 'cmdline', 'mem', 'cpus', 'disks', 'console', 'rng', 'net', 'mac', 'publish'] as const;

/** Likely mistakes, for "did you mean". A Map: a key such as `__proto__` or `constructor` must not find Object.prototype's. */
const KEY_SUGGESTIONS = new Map<string, string>([
  ['disk', 'disks'],
  ['memory', 'mem'],
  ['memMiB', 'mem'],
  ['cpu', 'cpus'],
  ['vcpus', 'cpus'],
  ['append', 'cmdline'],
  ['kernelCmdline', 'cmdline'],
  ['bzImage', 'kernel'],
  ['initramfs', 'initrd'],
  ['nets', 'net'],
  ['network', 'net'],
  ['ports', 'publish'],
]);

function errnoText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a JSON file';
  return (error as Error).message;
}

/** 1-based line and column of a character offset. */
function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before[before.length - 1].length + 1}`;
}

function jsonErrorText(error: Error, text: string): string {
  // V8: `Unexpected token } in JSON at position 42` or `Expected ',' or '}' after property value in JSON at
  // position 42`; newer V8 appends the offending input, which can be long: keep the first sentence.
  const position = /at position (\d+)/.exec(error.message);
  const reason = error.message.replace(/ in JSON at position \d+.*$/s, '').replace(/, ".*$/s, '');
  return position ? `${reason} at ${lineAndColumn(text, Number(position[1]))}` : reason;
}

/**
 * Validates the parsed JSON of a config file into options. `name` is how the file is named in errors;
 * relative paths inside it are resolved against `baseDir` (the file's directory).
 */
export function configFromJson(json: unknown, name: string, baseDir: string): LabelledOptions {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UsageError(`${name}: the config must be a JSON object like {"kernel": "bzImage", "mem": "512M"}`);
  }
  const config = json as Record<string, unknown>;
  const result: LabelledOptions = { options: {}, origins: {} };
  const { options, origins } = result;
  for (const key of Object.keys(config)) {
    if (key === '$schema' || (CONFIG_KEYS as readonly string[]).includes(key)) continue;
    const suggestion = KEY_SUGGESTIONS.get(key);
    throw new UsageError(
      `${name}: unknown key "${key}"` +
        (suggestion ? `; did you mean "${suggestion}"?` : `; the keys are ${CONFIG_KEYS.join(', ')}`),
    );
  }
  const label = (key: string) => `${name}: ${key}`;
  if (config.kernel !== undefined) {
    options.kernel = parsePath(config.kernel, label('kernel'), baseDir);
    origins.kernel = label('kernel');
  }
  if (config.initrd !== undefined) {
    options.initrd = parsePath(config.initrd, label('initrd'), baseDir);
    origins.initrd = label('initrd');
  }
  if (config.cmdline !== undefined) {
    options.cmdline = parseCmdline(config.cmdline, label('cmdline'));
    origins.cmdline = label('cmdline');
  }
  if (config.mem !== undefined) {
    options.memMiB = parseMem(config.mem, label('mem'));
    origins.memMiB = label('mem');
  }
  if (config.cpus !== undefined) {
    options.cpus = parseCpus(config.cpus, label('cpus'));
    origins.cpus = label('cpus');
  }
  if (config.disks !== undefined) {
    if (!Array.isArray(config.disks)) {
      throw new UsageError(`${label('disks')}: must be an array, e.g. ["root.img", "data.img,ro", "mem:64M"]`);
    }
    const labels = config.disks.map((_, index) => `${name}: disks[${index}]`);
    options.disks = config.disks.map((disk, index) => parseDiskValue(disk, labels[index], baseDir));
    origins.disks = labels;
  }
  if (config.console !== undefined) {
    options.console = parseConsole(config.console, label('console'));
    origins.console = label('console');
  }
  if (config.rng !== undefined) {
    options.rng = parseRng(config.rng, label('rng'));
    origins.rng = label('rng');
  }
  // "net": "user" or ["user", "tap=tap0"]; "publish": "8080:80" or a list.
  const list = (value: unknown) => (Array.isArray(value) ? value : [value]);
  if (config.net !== undefined) {
    options.nets = list(config.net).map((spec, index) => parseNetSpec(spec, Array.isArray(config.net) ? `${name}: net[${index}]` : label('net')));
    origins.nets = label('net');
  }
  if (config.mac !== undefined) {
    options.mac = parseMac(config.mac, label('mac'));
    origins.mac = label('mac');
  }
  if (config.publish !== undefined) {
    options.publish = list(config.publish).map((spec, index) =>
      parsePublish(spec, Array.isArray(config.publish) ? `${name}: publish[${index}]` : label('publish')),
    );
    origins.publish = label('publish');
  }
  return result;
}

/** A config file's text (small: read at once; node:fs/promises would bring node:readline and the file streams into every start). */
async function readTextFile(path: string): Promise<string> {
  return readFileSync(path, 'utf8');
}

/** Reads and validates a `--config` file. Throws a UsageError naming the file and what is wrong. */
export async function loadConfigFile(path: string, read: (path: string) => Promise<string> = readTextFile): Promise<LabelledOptions> {
  let text: string;
  try {
    text = await read(path);
  } catch (error) {
    throw new UsageError(`--config ${path}: ${errnoText(error)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path}: invalid JSON: ${jsonErrorText(error as Error, text)}`);
  }
  return configFromJson(json, path, dirname(resolve(path)));
}
