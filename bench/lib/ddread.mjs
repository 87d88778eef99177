// Reading the guest's `hype.test=ddread` output and hype's marker events; pure.

/**
 * The guest's `HYPE-TEST ddread PASS bytes=N runs=R uptime-cs=a,b,c ...` line (guest/rootfs/usr/lib/
 * hype/run-tests): { bytes, runs, uptimeCs: number[] }, or undefined if there is none (or it failed).
 */
export function parseDdreadLine(stdout) {
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.startsWith('HYPE-TEST ddread PASS ')) continue;
    const fields = Object.fromEntries(
      line
        .slice('HYPE-TEST ddread PASS '.length)
        .split(/\s+/)
        .filter((kv) => kv.includes('='))
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    const bytes = Number(fields.bytes);
    const runs = Number(fields.runs);
    const uptimeCs = (fields['uptime-cs'] ?? '').split(',').filter(Boolean).map(Number);
    if (!Number.isInteger(bytes) || bytes <= 0 || !Number.isInteger(runs) || runs <= 0) return undefined;
    if (uptimeCs.length !== runs || uptimeCs.some((cs) => !Number.isInteger(cs) || cs < 0)) return undefined;
    return { bytes, runs, uptimeCs };
  }
  return undefined;
}

/**
 * Durations (ms, hype's clock) between each boot-marker 2 and the next boot-marker 3, in order. A 2
 * without a following 3 (or a 3 without a 2) is not counted.
 */
export function markerIntervals(events) {
  const intervals = [];
  let start;
  for (const e of events) {
    if (e.event !== 'boot-marker') continue;
    if (e.value === 2) start = e.ms;
    else if (e.value === 3 && start !== undefined) {
      intervals.push(e.ms - start);
      start = undefined;
    }
  }
  return intervals;
}
