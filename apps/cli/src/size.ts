const MiB = 1024 * 1024;

const UNIT_BYTES: Record<string, number> = {
  b: 1,
  k: 1024,
  m: MiB,
  g: 1024 * MiB,
  t: 1024 * 1024 * MiB,
};

/**
 * Parses a size such as `512`, `512M`, `1G`, `1.5GiB`, `64k`. Units are binary (K = 1024); a bare number
 * is MiB (like `--mem 512`). Returns bytes, or undefined if the text is not a size.
 */
export function parseSizeBytes(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([bkmgt])(?:i?b)?)?\s*$/i.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ? match[2].toLowerCase() : 'm';
  const bytes = value * UNIT_BYTES[unit];
  if (!Number.isFinite(bytes) || !Number.isInteger(bytes)) return undefined;
  return bytes;
}

/** Formats bytes as the largest binary unit that divides them exactly, e.g. 268435456 -> `256M`. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['T', UNIT_BYTES.t], ['G', UNIT_BYTES.g], ['M', MiB], ['K', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

export { MiB };
