// The readable report table printed by bench/run.mjs; pure.

/** A number with about 3-4 significant digits, fixed notation. */
export function formatNumber(value) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100 || abs === 0) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

export function formatValue(value, unit) {
  return unit ? `${formatNumber(value)} ${unit}` : formatNumber(value);
}

export function formatRatio(ratio) {
  return ratio === undefined ? '' : `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}x`;
}

const COLUMNS = ['bench', 'metric', 'hype', 'baseline', 'ratio', 'better'];
const RATIO = COLUMNS.indexOf('ratio');

/**
 * Table lines for the benchmark entries of a report. A line is either all columns, or its first
 * columns followed by free text (a skipped or crashed benchmark or part) that does not widen the rest.
 */
export function formatTable(benchmarks) {
  const lines = [];
  const notes = [];
  for (const b of benchmarks) {
    if (b.status !== 'ok') {
      lines.push({ cols: [b.bench], text: b.status === 'skipped' ? `skipped: ${b.reason}` : `${b.status.toUpperCase()}: ${b.reason}` });
      continue;
    }
    if (b.rows.length === 0) lines.push({ cols: [b.bench], text: 'no rows' });
    for (const r of b.rows) {
      if (r.skipped !== undefined) {
        lines.push({ cols: [b.bench, r.metric], text: `skipped: ${r.skipped}` });
        continue;
      }
      const baseline = r.baseline ? `${formatValue(r.baseline.value, r.unit)} ${r.baseline.name}` : '';
      lines.push({ cols: [b.bench, r.metric, formatValue(r.value, r.unit), baseline, formatRatio(r.ratio), r.better ?? ''] });
      if (r.note) notes.push(`${b.bench} / ${r.metric}: ${r.note}`);
    }
  }
  const widths = COLUMNS.map((c) => c.length);
  for (const l of lines) l.cols.forEach((text, i) => (widths[i] = Math.max(widths[i], text.length)));
  const render = (cols, text) => {
    const parts = cols.map((t, i) => (i === RATIO ? t.padStart(widths[i]) : t.padEnd(widths[i])));
    if (text !== undefined) parts.push(text);
    return parts.join('  ').trimEnd();
  };
  const out = [render(COLUMNS), render(widths.map((w) => '-'.repeat(w)))];
  for (const l of lines) out.push(render(l.cols, l.text));
  if (notes.length > 0) out.push('', 'notes:', ...notes.map((n) => `  ${n}`));
  out.push('', 'ratio = hype / baseline, both measured in this run; "better" is the direction that is good for the hype value.');
  return out.join('\n');
}
