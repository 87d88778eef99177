// The one convention between bench/run.mjs and each benchmark script (bench/README.md):
// a benchmark prints exactly one line `BENCH-RESULT <json>` on stdout, the JSON on that single line.
//
//   { "bench": "<name>", "title": "<what it measures>", "status": "ok" | "skipped",
//     "reason": "<why it was skipped>",                       (status "skipped" only)
//     "rows": [ { "metric": "<what>", "value": n, "unit": "ms" | "MB/s" | ...,
//                 "better": "lower" | "higher",
//                 "baseline": { "name": "<what it is>", "value": n },   (optional, same unit)
//                 "ratio": value / baseline.value,                     (with a baseline)
//                 "note": "<short extra>" }                            (optional)
//             | { "metric": "<what>", "skipped": "<why this part cannot run here>" } ],
//     "data": { ... } }                                        (raw samples and parameters)
//
// Everything else a benchmark prints (progress, its own tables) is free text; run.mjs relays it.

export const RESULT_PREFIX = 'BENCH-RESULT ';

const STATUSES = new Set(['ok', 'skipped']);

/** Checks a result object against the convention; returns the problems (empty = valid). */
export function resultProblems(result) {
  const problems = [];
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return ['not a JSON object'];
  if (typeof result.bench !== 'string' || result.bench === '') problems.push('"bench" must be a non-empty string');
  if (!STATUSES.has(result.status)) problems.push(`"status" must be "ok" or "skipped", got ${JSON.stringify(result.status)}`);
  if (result.status === 'skipped' && (typeof result.reason !== 'string' || result.reason === '')) {
    problems.push('a skipped result needs a "reason"');
  }
  if (result.status === 'ok') {
    if (!Array.isArray(result.rows)) {
      problems.push('"rows" must be an array');
    } else {
      result.rows.forEach((row, i) => {
        const where = `rows[${i}]`;
        if (typeof row?.metric !== 'string' || row.metric === '') problems.push(`${where}.metric must be a non-empty string`);
        if (row?.skipped !== undefined) {
          if (typeof row.skipped !== 'string' || row.skipped === '') problems.push(`${where}.skipped must be a non-empty string (the reason)`);
          return;
        }
        if (typeof row?.value !== 'number' || !Number.isFinite(row.value)) problems.push(`${where}.value must be a finite number`);
        if (typeof row?.unit !== 'string') problems.push(`${where}.unit must be a string`);
        if (row?.better !== undefined && row.better !== 'lower' && row.better !== 'higher') problems.push(`${where}.better must be "lower" or "higher"`);
        if (row?.baseline !== undefined) {
          if (typeof row.baseline?.name !== 'string' || typeof row.baseline?.value !== 'number' || !Number.isFinite(row.baseline.value)) {
            problems.push(`${where}.baseline must be { name: string, value: finite number }`);
          }
        }
        if (row?.ratio !== undefined && (typeof row.ratio !== 'number' || !Number.isFinite(row.ratio))) problems.push(`${where}.ratio must be a finite number`);
      });
    }
  }
  return problems;
}

/** A row with its ratio computed from the baseline (left out when the baseline is 0). */
export function row(metric, value, unit, better, baseline, note) {
  const r = { metric, value, unit, better };
  if (baseline) {
    r.baseline = baseline;
    if (baseline.value > 0) r.ratio = value / baseline.value;
  }
  if (note) r.note = note;
  return r;
}

/** The result line for `result` (validated: a malformed result is a bug in the benchmark). */
export function formatResultLine(result) {
  const problems = resultProblems(result);
  if (problems.length > 0) throw new Error(`benchmark result does not follow bench/README.md: ${problems.join('; ')}`);
  return RESULT_PREFIX + JSON.stringify(result);
}

/** A row for a part of a benchmark that cannot run on this host. */
export function skippedRow(metric, reason) {
  return { metric, skipped: reason };
}

/** Prints the result line on stdout. */
export function emitResult(result) {
  process.stdout.write(`${formatResultLine(result)}\n`);
}

/** Prints a skipped result (the benchmark cannot run on this host) on stdout. */
export function emitSkipped(bench, title, reason) {
  emitResult({ bench, title, status: 'skipped', reason });
}

/**
 * The result lines found in a benchmark's stdout: { results, problems }. More than one line, or a
 * malformed one, is a problem (the caller reports the benchmark as broken).
 */
export function parseResultLines(stdout) {
  const results = [];
  const problems = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.startsWith(RESULT_PREFIX)) continue;
    let parsed;
    try {
      parsed = JSON.parse(line.slice(RESULT_PREFIX.length));
    } catch (e) {
      problems.push(`a ${RESULT_PREFIX.trim()} line is not valid JSON: ${e.message}`);
      continue;
    }
    const p = resultProblems(parsed);
    if (p.length > 0) problems.push(...p);
    else results.push(parsed);
  }
  if (results.length > 1) problems.push(`${results.length} ${RESULT_PREFIX.trim()} lines, expected one`);
  return { results, problems };
}
