/**
 * Every program the repository runs must be installed by scripts/setup.sh, which installs the packages
 * of scripts/host-commands.tsv. This scans the code for the programs it starts (spawn/execFile with a
 * literal name, `tool('x')`, `which('x')`, `command -v x`, and the `# needs:` lines of shell scripts)
 * and fails, naming the program, when the table lacks one. In CI (after `setup.sh`) it also
 * checks that each listed program is really on PATH, naming the package that should have brought it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Row {
  command: string;
  package: string;
  when: string;
}

function readTable(): Row[] {
  return readFileSync(join(root, 'scripts/host-commands.tsv'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => {
      const [command, pkg, when] = line.split('\t');
      return { command: command!, package: pkg!, when: when! };
    });
}

const SOURCE_DIRS = ['scripts', '.ci', 'guest/src', 'guest/test', 'guest/tools', 'bench', 'apps', 'packages'];
const SKIP = new Set(['node_modules', 'dist', 'build', 'prebuilds', 'fixtures', '.turbo']);

function* sourceFiles(dir: string): Generator<string> {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mts|mjs|js|sh)$/.test(name) || name === 'run') yield path;
  }
}

/** The programs a file starts, by literal name. */
export function programsIn(text: string, isShell: boolean): string[] {
  const found = new Set<string>();
  const add = (name: string | undefined) => {
    if (name && !name.includes('/') && !name.startsWith('$')) found.add(name);
    else if (name?.startsWith('/usr/') || name?.startsWith('/sbin/') || name?.startsWith('/bin/')) found.add(name.split('/').pop()!);
  };
  if (isShell) {
    for (const m of text.matchAll(/command -v ("?)([A-Za-z0-9_.+-]+)\1/g)) add(m[2]);
    for (const m of text.matchAll(/^# needs: (.*)$/gm)) for (const word of m[1]!.trim().split(/\s+/)) add(word);
  } else {
    for (const m of text.matchAll(/\b(?:spawn|spawnSync|execFile|execFileSync)\(\s*'([^']+)'/g)) add(m[1]);
    for (const m of text.matchAll(/\b(?:tool|which)\('([^']+)'\)/g)) add(m[1]);
    for (const m of text.matchAll(/=\s*'(\/usr\/s?bin\/[A-Za-z0-9_.+-]+)'/g)) add(m[1]);
    for (const m of text.matchAll(/command -v ([A-Za-z0-9_.+-]+)/g)) add(m[1]);
  }
  return [...found];
}

// Programs that come with the machine rather than a package setup installs: the shell and node itself.
const BUILTIN = new Set(['sh', 'bash', 'node', 'pnpm', 'npm', 'id']);

describe('host commands (scripts/host-commands.tsv)', () => {
  const table = readTable();
  const listed = new Map(table.map((row) => [row.command, row]));

  it('has a package and a known `when` on every row', () => {
    for (const row of table) {
      expect(row.package, row.command).toMatch(/^[a-z0-9][a-z0-9.+-]+$/);
      expect(['always', 'nested', 'tests'], row.command).toContain(row.when);
    }
  });

  it('lists every program the code starts', () => {
    const unlisted: string[] = [];
    for (const dir of SOURCE_DIRS) {
      for (const file of sourceFiles(join(root, dir))) {
        if (file === fileURLToPath(import.meta.url)) continue;
        const isShell = file.endsWith('.sh') || file.endsWith('/run');
        for (const program of programsIn(readFileSync(file, 'utf8'), isShell)) {
          if (!listed.has(program) && !BUILTIN.has(program)) unlisted.push(`${program} (${relative(root, file)})`);
        }
      }
    }
    expect(unlisted, 'add these to scripts/host-commands.tsv with their Debian package').toEqual([]);
  });

  it('finds programs in the forms the code uses', () => {
    expect(programsIn("spawnSync('cpio', ['-o'])", false)).toEqual(['cpio']);
    expect(programsIn("const lz4 = '/usr/bin/lz4';", false)).toEqual(['lz4']);
    expect(programsIn("spawnSync(tool('debugfs'), [])", false)).toEqual(['debugfs']);
    expect(programsIn('command -v qemu-system-x86_64 >/dev/null\n# needs: depmod modprobe\n', true).sort()).toEqual([
      'depmod',
      'modprobe',
      'qemu-system-x86_64',
    ]);
  });

  it.runIf(process.env.CI === 'true')('finds every listed program on PATH after setup.sh (CI)', () => {
    const path = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
    const absent = table.filter((row) => {
      try {
        execFileSync('sh', ['-c', `command -v "$0"`, row.command], { env: { ...process.env, PATH: path }, stdio: 'ignore' });
        return false;
      } catch {
        return true;
      }
    });
    expect(absent.map((row) => `${row.command}: scripts/setup.sh did not install package ${row.package}`)).toEqual([]);
  });
});
