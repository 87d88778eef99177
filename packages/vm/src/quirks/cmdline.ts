/**
 * Kernel command-line additions the PVM host needs (README.md, host quirks 1, 4 and 7):
 * - `noxsave`: the CPL0 emulator has no xsave/xrstor, and PVM reports the host's XSAVE whatever
 *   KVM_SET_CPUID2 says (correctness);
 * - `clearcpuid=smap,popcnt`: clac/stac/popcnt are not emulated (correctness); `erms,fsrm` make
 *   memcpy/memset move 8 bytes per emulated step instead of 1 (speed);
 * - `random.trust_cpu=on` (~20 s), `pty.legacy_count=0` (~15 s), `rodata=off`, `lpj=5000000`
 *   (skips delay-loop calibration): speed.
 */
export const PVM_CMDLINE_ADDITIONS: readonly string[] = [
  'noxsave',
  'clearcpuid=smap,popcnt,erms,fsrm',
  'random.trust_cpu=on',
  'pty.legacy_count=0',
  'rodata=off',
  'lpj=5000000',
];

/** Parameters whose comma-separated values combine instead of the user's value winning. */
const LIST_PARAMS = new Set(['clearcpuid']);

/** Splits a kernel command line into parameters, keeping double-quoted values whole. */
export function splitCmdline(cmdline: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let has = false;
  for (const ch of cmdline) {
    if (ch === '"') {
      quoted = !quoted;
      cur += ch;
      has = true;
    } else if (!quoted && /\s/.test(ch)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

const keyOf = (param: string) => {
  const eq = param.indexOf('=');
  return eq < 0 ? param : param.slice(0, eq);
};

/**
 * Adds `additions` to `cmdline` ahead of any `--` (what follows it goes to init). A parameter the
 * command line already sets keeps its value (the user knows better), except list parameters such as
 * `clearcpuid=`, whose values are merged into the existing one.
 */
export function mergeCmdline(cmdline: string, additions: readonly string[]): string {
  const params = splitCmdline(cmdline);
  const dashdash = params.indexOf('--');
  const kernel = dashdash < 0 ? params : params.slice(0, dashdash);
  const init = dashdash < 0 ? [] : params.slice(dashdash);
  const added: string[] = [];
  for (const add of additions) {
    const key = keyOf(add);
    const existing = kernel.findIndex((p) => keyOf(p) === key);
    if (existing < 0) {
      added.push(add);
      continue;
    }
    if (LIST_PARAMS.has(key) && add.includes('=')) {
      const have = kernel[existing].slice(key.length + 1).split(',').filter(Boolean);
      const more = add.slice(key.length + 1).split(',').filter((v) => v && !have.includes(v));
      kernel[existing] = `${key}=${[...have, ...more].join(',')}`;
    }
  }
  return [...kernel, ...added, ...init].join(' ');
}
