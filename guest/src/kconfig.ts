/**
 * Kconfig files (`.config` and fragments): parsing, and checking that a fragment survived
 * `make olddefconfig` (which silently drops or flips options whose dependencies are not met).
 */

/** An option's value: `n` for `# CONFIG_X is not set`; otherwise the text after `=` (quotes kept). */
export type KconfigValue = string;

const SET_LINE = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_LINE = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/**
 * Parses a .config or a fragment into option -> value. Comments and blank lines are skipped; any other
 * line is an error naming the line, as is an option given twice with different values.
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
