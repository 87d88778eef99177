import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/args.js';
import { configFromJson, loadConfigFile } from '../src/config-file.js';
import { mergeOptions } from '../src/options.js';
import { UsageError } from '../src/usage-error.js';
import { jsonError } from './helpers.js';

const MiB = 1024 * 1024;

async function loadError(text: string, name = 'vm.json'): Promise<string> {
  try {
    await loadConfigFile(name, async () => text);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected loadConfigFile to fail');
}

describe('config file', () => {
  it('reads every key, resolving relative paths against the file', () => {
    const parsed = configFromJson(
      {
        $schema: './vm.schema.json',
        kernel: 'bzImage',
        initrd: '/abs/initrd.cpio',
        cmdline: 'quiet',
        mem: '1G',
        cpus: 2,
        disks: ['root.img', 'data.img,ro,serial=d1', 'mem:64M', { path: 'x.img', readOnly: true, serial: 'x' }, { mem: '8M' }, { mem: 16 }, { url: 'https://h/disk.img' }],
        console: 'serial',
      },
      'cfg/vm.json',
      '/cfg',
    );
    expect(parsed).toEqual({
      options: {
        kernel: '/cfg/bzImage',
        initrd: '/abs/initrd.cpio',
        cmdline: 'quiet',
        memMiB: 1024,
        cpus: 2,
        disks: [
          { kind: 'file', path: '/cfg/root.img' },
          { kind: 'file', path: '/cfg/data.img', readOnly: true, serial: 'd1' },
          { kind: 'memory', sizeBytes: 64 * MiB },
          { kind: 'file', path: '/cfg/x.img', readOnly: true, serial: 'x' },
          { kind: 'memory', sizeBytes: 8 * MiB },
          { kind: 'memory', sizeBytes: 16 * MiB },
          { kind: 'http', url: 'https://h/disk.img' },
        ],
        console: 'serial',
      },
      origins: {
        kernel: 'cfg/vm.json: kernel',
        initrd: 'cfg/vm.json: initrd',
        cmdline: 'cfg/vm.json: cmdline',
        memMiB: 'cfg/vm.json: mem',
        cpus: 'cfg/vm.json: cpus',
        disks: [0, 1, 2, 3, 4, 5, 6].map((i) => `cfg/vm.json: disks[${i}]`),
        console: 'cfg/vm.json: console',
      },
    });
  });

  it('mem as a number is MiB', () => {
    expect(configFromJson({ mem: 512 }, 'vm.json', '/').options.memMiB).toBe(512);
  });

  it('loads a real file from disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hype-cli-config-'));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'vm.json'), JSON.stringify({ kernel: 'k', cpus: 3 }));
    const parsed = await loadConfigFile(join(dir, 'sub', 'vm.json')).finally(() => rmSync(dir, { recursive: true, force: true }));
    expect(parsed.options).toEqual({ kernel: join(dir, 'sub', 'k'), cpus: 3 });
  });

  it('flags override the file field by field; --disk replaces the disk list', () => {
    const file = configFromJson({ kernel: 'k', mem: '1G', cpus: 2, disks: ['a.img', 'b.img'], console: 'serial' }, 'vm.json', '/c');
    const args = parseArgs(['run', '--mem', '2G', '--disk', 'z.img', '--config', 'vm.json']);
    if (args instanceof UsageError || args.command !== 'run') throw new Error('bad args');
    const merged = mergeOptions(file, args.flags);
    expect(merged.options).toEqual({
      kernel: '/c/k',
      memMiB: 2048,
      cpus: 2,
      disks: [{ kind: 'file', path: 'z.img' }],
      console: 'serial',
    });
    expect(merged.origins).toEqual({
      kernel: 'vm.json: kernel',
      memMiB: '--mem',
      cpus: 'vm.json: cpus',
      disks: ['--disk'],
      console: 'vm.json: console',
    });
  });

  it('without flags the file wins; without a file the flags stand alone', () => {
    const file = configFromJson({ cpus: 2 }, 'vm.json', '/');
    const none = { options: {}, origins: {} };
    expect(mergeOptions(file, none)).toEqual(file);
    expect(mergeOptions(undefined, file)).toEqual(file);
  });
});

describe('config file errors', () => {
  it('a missing file', async () => {
    await expect(loadConfigFile('/nonexistent/vm.json')).rejects.toThrow(new UsageError('--config /nonexistent/vm.json: no such file'));
  });

  it('a directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hype-cli-config-'));
    await expect(loadConfigFile(dir)).rejects.toThrow(new UsageError(`--config ${dir}: is a directory, not a JSON file`));
    rmSync(dir, { recursive: true, force: true });
  });

  it('an unreadable file', async () => {
    const eacces = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    await expect(loadConfigFile('vm.json', async () => { throw eacces; })).rejects.toThrow(
      new UsageError('--config vm.json: permission denied'),
    );
  });

  it.each([
    ['{"kernel": "k",}', /^vm\.json: invalid JSON: .+ at line 1, column 16$/],
    ['{\n  "kernel": "k"\n  "mem": 1\n}', /^vm\.json: invalid JSON: .+ at line 3, column 3$/],
    ['', /^vm\.json: invalid JSON: Unexpected end of JSON input$/],
  ])('invalid JSON %j says where', async (text, pattern) => {
    expect(await loadError(text)).toMatch(pattern);
  });

  it.each([
    [[], 'vm.json: the config must be a JSON object like {"kernel": "bzImage", "mem": "512M"}'],
    ['x', 'vm.json: the config must be a JSON object like {"kernel": "bzImage", "mem": "512M"}'],
    [{ disk: ['a'] }, 'vm.json: unknown key "disk"; did you mean "disks"?'],
    [{ memory: 512 }, 'vm.json: unknown key "memory"; did you mean "mem"?'],
    [{ foo: 1 }, 'vm.json: unknown key "foo"; the keys are kernel, initrd, cmdline, mem, cpus, disks, console, rng, net, mac, publish'],
    [{ kernel: 5 }, 'vm.json: kernel 5: must be a file path'],
    [{ initrd: '' }, 'vm.json: initrd "": must be a file path'],
    [{ cmdline: ['a'] }, 'vm.json: cmdline ["a"]: must be a string'],
    [{ mem: '12X' }, 'vm.json: mem "12X": not a size; give MiB or use a unit suffix, e.g. 512, 512M, 1G'],
    [{ mem: true }, 'vm.json: mem true: must be a size such as 512, "512M" or "1G"'],
    [{ mem: -1 }, 'vm.json: mem -1: guest memory must be more than 0; e.g. 256M'],
    [{ cpus: '2' }, 'vm.json: cpus "2": the number of vCPUs must be a whole number from 1 to 8'],
    [{ cpus: 16 }, 'vm.json: cpus 16: the number of vCPUs must be a whole number from 1 to 8'],
    [{ console: 'ttyS0' }, 'vm.json: console "ttyS0": the console must be "hvc" (virtio-console, hvc0) or "serial" (8250 UART, ttyS0)'],
    [{ disks: 'a.img' }, 'vm.json: disks: must be an array, e.g. ["root.img", "data.img,ro", "mem:64M"]'],
    [{ disks: [5] }, 'vm.json: disks[0]: a disk must be a string like "disk.img,ro" or an object like {"path": "disk.img", "readOnly": true}'],
    [{ disks: ['a.img', 'b.img,rw,bogus'] }, 'vm.json: disks[1] "b.img,rw,bogus": unknown disk option "rw,bogus"; options are ro and serial=ID'],
    [{ disks: [{ path: 'a', ro: true }] }, 'vm.json: disks[0]: unknown key "ro"; a disk has path, mem or url, and readOnly, serial'],
    [{ disks: [{ path: 'a', mem: '1M' }] }, 'vm.json: disks[0]: give exactly one of "path", "mem" or "url"'],
    [{ disks: [{}] }, 'vm.json: disks[0]: give exactly one of "path", "mem" or "url"'],
    [{ disks: [{ path: 'a', readOnly: 'yes' }] }, 'vm.json: disks[0]: "readOnly" must be true or false'],
    [{ disks: [{ mem: '1M', readOnly: true }] }, 'vm.json: disks[0]: a memory disk cannot be read-only (it starts empty)'],
    [{ disks: [{ mem: [] }] }, 'vm.json: disks[0]: "mem" must be a size such as "64M"'],
    [{ disks: [{ url: 'ftp://h/x' }] }, 'vm.json: disks[0]: only http(s) URLs are supported'],
    [{ disks: [{ url: 1 }] }, 'vm.json: disks[0]: "url" must be a string'],
    [{ disks: [{ path: 'a', serial: 'with space' }] }, 'vm.json: disks[0]: serial must be printable ASCII without spaces'],
  ])('%j -> %s', (json, message) => {
    expect(jsonError(json)).toBe(message);
  });
});
