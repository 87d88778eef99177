/**
 * Kconfig files (`.config` and fragments): parsing, resolving a fragment's Linux-version blocks
 * (`#if linux < 6.5` ... `#else` ... `#endif`), and checking that a fragment survived
 * `make olddefconfig` (which silently drops or flips options whose dependencies are not met).
 */
import { compareLinuxVersions } from './linux-source.js';

/** An option's value: `n` for `# CONFIG_X is not set`; otherwise the text after `=` (quotes kept). */
export type KconfigValue = string;

const SET_LINE = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_LINE = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;
/** `#if`, `#else`, `#endif` (and `#elif`, which is refused): `#` directly followed by the word. */
const DIRECTIVE_LINE = /^#(if|elif|else|endif)(?:\s|$)/;
const IF_LINE = /^#if\s+linux\s*(<|>=)\s*(\d+(?:\.\d+)*)$/;
const VERSION = /^\d+(?:\.\d+)*$/;

/**
 * Parses a .config or a fragment into option -> value. Comments and blank lines are skipped; any other
 * line is an error naming the line, as is an option given twice with different values, and so is a
 * `#if`/`#else`/`#endif` line: a fragment with version blocks goes through {@link resolveKconfigFragment}
 * first.
 */
export function parseKconfig(text: string, source = 'kconfig'): Map<string, KconfigValue> {
  const options = new Map<string, KconfigValue>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    let option: string;
    let value: string;
    const set = SET_LINE.exec(line);
    const unset = UNSET_LINE.exec(line);
    if (set) {
      option = set[1];
      value = set[2];
      if (value === '') throw new Error(`${source}:${index + 1}: ${option} has an empty value`);
    } else if (unset) {
      option = unset[1];
      value = 'n';
    } else if (DIRECTIVE_LINE.test(line)) {
      throw new Error(`${source}:${index + 1}: ${line.split(/\s/)[0]} belongs to a Linux-version block: resolve the fragment for a version first (resolveKconfigFragment)`);
    } else if (line === '' || line.startsWith('#')) {
      return;
    } else {
      throw new Error(`${source}:${index + 1}: not a Kconfig line: ${raw}`);
    }
    const previous = options.get(option);
    if (previous !== undefined && previous !== value) {
      throw new Error(`${source}:${index + 1}: ${option} set twice (${previous} and ${value})`);
    }
    options.set(option, value);
  });
  return options;
}

export interface ResolvedKconfigFragment {
  /**
   * The fragment for one Linux version: the lines of the blocks that apply, as they were; the directive
   * lines and the lines of the blocks that do not apply are blanked, so line numbers stay those of the file.
   */
  text: string;
  /** The fragment has `#if linux` blocks: what it asks for depends on the version. */
  versionDependent: boolean;
}

/**
 * Resolves the Linux-version blocks of a config fragment for `linuxVersion` (`6.1`, `6.12.3`):
 *
 * ```
 * #if linux < 6.5
 * CONFIG_SLAB=y
 * #else
 * CONFIG_SLUB=y
 * #endif
 * ```
 *
 * `#if linux < V` holds for versions before V and all its point releases (6.1.192 < 6.5; 6.5.3 is not
 * < 6.5), `#if linux >= V` for the others; versions compare number by number (6.12 > 6.9). `#else` is
 * optional; blocks do not nest. Kconfig itself reads these lines as comments, so a fragment with blocks
 * must be resolved before `merge_config.sh` sees it. A fragment without blocks comes back unchanged, for
 * any version including `unknown`; one with blocks needs a known version. Errors name the line.
 */
export function resolveKconfigFragment(text: string, linuxVersion: string, source = 'fragment'): ResolvedKconfigFragment {
  const lines = text.split('\n');
  const out: string[] = [];
  let block: { line: number; holds: boolean; inElse: boolean } | undefined;
  let versionDependent = false;
  lines.forEach((raw, index) => {
    const line = raw.trim();
    const where = `${source}:${index + 1}`;
    const directive = DIRECTIVE_LINE.exec(line)?.[1];
    if (directive === undefined) {
      out.push(block === undefined || block.holds !== block.inElse ? raw : '');
      return;
    }
    out.push('');
    if (directive === 'if') {
      if (block !== undefined) throw new Error(`${where}: #if inside the #if of line ${block.line} (blocks do not nest)`);
      const condition = IF_LINE.exec(line);
      if (!condition) throw new Error(`${where}: not a version condition: ${line} (expected '#if linux < 6.5' or '#if linux >= 6.5')`);
      if (!VERSION.test(linuxVersion)) {
        throw new Error(
          `${where}: ${line} needs the Linux version of the source, which is unknown ` +
            `(it is read from the tarball's name: linux-source-<version>.tar.* or linux-<version>.tar.*)`,
        );
      }
      const before = compareLinuxVersions(linuxVersion, condition[2]) < 0;
      block = { line: index + 1, holds: condition[1] === '<' ? before : !before, inElse: false };
      versionDependent = true;
    } else if (directive === 'else') {
      if (block === undefined) throw new Error(`${where}: #else without #if`);
      if (block.inElse) throw new Error(`${where}: a second #else for the #if of line ${block.line}`);
      block.inElse = true;
    } else if (directive === 'endif') {
      if (block === undefined) throw new Error(`${where}: #endif without #if`);
      block = undefined;
    } else {
      throw new Error(`${where}: #${directive} is not supported (use #if ... #else ... #endif)`);
    }
  });
  if (block !== undefined) throw new Error(`${source}:${block.line}: #if without #endif`);
  return { text: out.join('\n'), versionDependent };
}

export interface KconfigMismatch {
  option: string;
  wanted: KconfigValue;
  /** `undefined` when the option is absent from the final .config (its dependencies are unmet). */
  got: KconfigValue | undefined;
}

/**
 * The fragment options whose value differs in the final config. An option the fragment disables counts
 * as satisfied when it is absent from the final config (Kconfig omits options whose menu is hidden).
 */
export function kconfigMismatches(fragment: Map<string, KconfigValue>, final: Map<string, KconfigValue>): KconfigMismatch[] {
  const mismatches: KconfigMismatch[] = [];
  for (const [option, wanted] of fragment) {
    const got = final.get(option);
    const satisfied = wanted === 'n' ? got === undefined || got === 'n' : got === wanted;
    if (!satisfied) mismatches.push({ option, wanted, got });
  }
  return mismatches;
}

function describe(value: KconfigValue | undefined): string {
  if (value === undefined) return 'absent (dependencies not met)';
  return value === 'n' ? 'is not set' : `=${value}`;
}

/** Throws one error listing every option of the fragment that did not land in the final config. */
export function verifyKconfig(fragment: Map<string, KconfigValue>, final: Map<string, KconfigValue>, finalPath = '.config'): void {
  const mismatches = kconfigMismatches(fragment, final);
  if (mismatches.length === 0) return;
  const lines = mismatches.map((m) => `  ${m.option}: wanted ${describe(m.wanted)}, got ${describe(m.got)}`);
  throw new Error(
    `kernel config: ${mismatches.length} option(s) of the fragment did not survive olddefconfig in ${finalPath} ` +
      `(fix guest/kernel/hype.config; check dependencies with 'make menuconfig', key '/'):\n${lines.join('\n')}`,
  );
}
