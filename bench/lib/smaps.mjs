// /proc/<pid>/smaps and smaps_rollup: parsing and the VMM's resident memory without guest RAM; pure
// except readProcessMemory().
import { readFileSync } from 'node:fs';

const HEADER = /^([0-9a-f]+)-([0-9a-f]+)\s+([r-][w-][x-][sp])\s+([0-9a-f]+)\s+([0-9a-f]+:[0-9a-f]+)\s+(\d+)\s*(.*)$/;
const FIELD = /^([A-Za-z_]+):\s+(\d+)(?:\s+kB)?\s*$/;
const FLAGS = /^VmFlags:\s*(.*)$/;

/**
 * Mappings of an smaps (or smaps_rollup) text: { start, end, size (bytes), perms, path, fields
 * (kB values by name: Rss, Pss, Anonymous, ...), vmFlags: string[] }.
 */
export function parseSmaps(text) {
  const mappings = [];
  let current;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const header = HEADER.exec(line);
    if (header) {
      const start = BigInt(`0x${header[1]}`);
      const end = BigInt(`0x${header[2]}`);
      current = { start, end, size: Number(end - start), perms: header[3], path: header[7].trim(), fields: /** @type {Record<string, number>} */ ({}), vmFlags: [] };
      mappings.push(current);
      continue;
    }
    if (!current) throw new Error(`smaps: a field before the first mapping: ${JSON.stringify(line)}`);
    const flags = FLAGS.exec(line);
    if (flags) {
      current.vmFlags = flags[1].trim().split(/\s+/).filter(Boolean);
      continue;
    }
    const field = FIELD.exec(line);
    if (field) current.fields[field[1]] = Number(field[2]);
    // Other lines (e.g. ProtectionKey on some kernels) carry nothing we use.
  }
  return mappings;
}

/** The totals of an smaps_rollup text (kB values by name). */
export function parseSmapsRollup(text) {
  const [rollup] = parseSmaps(text);
  if (!rollup || rollup.fields.Rss === undefined) throw new Error('smaps_rollup: no Rss total');
  return rollup.fields;
}

/** A private anonymous read-write mapping, the kind @hype/kvm-sys allocates guest RAM as. */
function isAnonymousRw(m) {
  return m.path === '' && m.perms === 'rw-p';
}

/**
 * The mapping holding guest RAM of `memBytes` (kvm-sys: one anonymous MAP_NORESERVE mapping per
 * memslot): { mapping, excessBytes } or throws naming the candidates.
 * - exactly one anonymous rw mapping of that size: it (if several have that size, the one with the
 *   VmFlags of guest RAM: "dc" for MADV_DONTFORK, "nr" for MAP_NORESERVE);
 * - else the smallest anonymous rw MAP_NORESERVE mapping larger than that: the kernel may have merged
 *   guest RAM with an adjacent anonymous mapping of the same flags. Its `excessBytes` of other memory
 *   may then be counted as guest RAM (the caller reports that as the uncertainty).
 */
export function findGuestRam(mappings, memBytes) {
  const anon = mappings.filter(isAnonymousRw);
  let exact = anon.filter((m) => m.size === memBytes);
  // kvm-sys maps guest RAM MAP_NORESERVE ("nr") and madvises it MADV_DONTFORK ("dc").
  for (const flag of ['dc', 'nr']) {
    const flagged = exact.filter((m) => m.vmFlags.includes(flag));
    if (exact.length > 1 && flagged.length > 0) exact = flagged;
  }
  if (exact.length === 1) return { mapping: exact[0], excessBytes: 0 };
  const describe = (list) => list.map((m) => `${m.start.toString(16)} ${m.size} B${m.vmFlags.includes('nr') ? ' nr' : ''}`).join(', ') || 'none';
  if (exact.length > 1) throw new Error(`guest RAM: ${exact.length} anonymous mappings of ${memBytes} bytes, cannot tell which: ${describe(exact)}`);
  const larger = anon.filter((m) => m.size > memBytes && m.vmFlags.includes('nr')).sort((a, b) => a.size - b.size);
  if (larger.length > 0) return { mapping: larger[0], excessBytes: larger[0].size - memBytes };
  const big = anon.filter((m) => m.size >= memBytes / 2);
  throw new Error(`guest RAM: no anonymous read-write mapping of ${memBytes} bytes (large ones: ${describe(big)})`);
}

/**
 * Resident memory split into guest RAM and the rest (kB): { rssKiB, guestRamRssKiB, vmmRssKiB,
 * uncertaintyKiB, guestRamMapping }. `uncertaintyKiB` bounds how much VMM memory may be hidden in a
 * merged guest RAM mapping (0 when the mapping is exactly guest RAM).
 */
export function vmmMemory(rollupText, smapsText, memBytes) {
  const totals = parseSmapsRollup(rollupText);
  const { mapping, excessBytes } = findGuestRam(parseSmaps(smapsText), memBytes);
  const guestRamRssKiB = mapping.fields.Rss ?? 0;
  return {
    rssKiB: totals.Rss,
    guestRamRssKiB,
    vmmRssKiB: totals.Rss - guestRamRssKiB,
    uncertaintyKiB: Math.min(guestRamRssKiB, excessBytes / 1024),
    guestRamMapping: { start: `0x${mapping.start.toString(16)}`, sizeBytes: mapping.size, vmFlags: mapping.vmFlags.join(' ') },
  };
}

/** Resident memory (kB totals of smaps_rollup) of a process with no guest RAM. */
export function processRss(rollupText) {
  return parseSmapsRollup(rollupText).Rss;
}

/** Reads /proc/<pid>/smaps_rollup and /proc/<pid>/smaps (the process must be alive). */
export function readProcessMemory(pid) {
  return {
    rollup: readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'),
    smaps: readFileSync(`/proc/${pid}/smaps`, 'utf8'),
  };
}
