// Small statistics over samples; pure.

/** The median of finite numbers (mean of the two middle values for an even count). */
export function median(values) {
  if (!Array.isArray(values) || values.length === 0) throw new RangeError('median: no samples');
  for (const v of values) if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`median: not a finite number: ${v}`);
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** { median, min, max, n, samples } of finite numbers. */
export function summarize(values) {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length, samples: [...values] };
}

/** value / baseline, or undefined when the baseline is not a positive number. */
export function ratio(value, baseline) {
  return baseline > 0 && Number.isFinite(value) ? value / baseline : undefined;
}
