#!/usr/bin/env node
// Runs a command in the nested rig N times in a row and reports, per run, its exit status, wall time
// and how many L1s the rig replaced after a stall or panic. The measurement behind scripts/README.md's
// stall figures:
//   node scripts/rig-soak.mjs [--runs 20] [--attempts 3] [-- command ...]
// Default command: the KVM test files (as scripts/kvm-tests.mjs runs them).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KVM_TEST_FILES } from './kvm-test-files.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    attempts: { type: 'string', default: '3' },
    // Each run's whole output (L1's console included: a soft lockup's backtrace lands here) goes to DIR/run-N.log.
    logs: { type: 'string', default: '/tmp/rig-soak' },
  },
  allowPositionals: true,
});
const command = positionals.length > 0 ? positionals : ['pnpm', 'vitest', 'run', ...KVM_TEST_FILES];
const runs = Number(values.runs);

mkdirSync(values.logs, { recursive: true });

function once(n) {
  return new Promise((resolve) => {
    const started = performance.now();
    const log = createWriteStream(join(values.logs, `run-${n}.log`));
    const child = spawn('bash', [join(root, 'scripts/kvm-in-qemu.sh'), ...command], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KVM_IN_QEMU_ATTEMPTS: values.attempts },
    });
    child.stdout.pipe(log);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
      log.write(chunk);
    });
    child.on('close', (code) => {
      const replaced = stderr.split('\n').filter((line) => /^kvm-in-qemu: attempt \d+ of \d+:/.test(line));
      resolve({ code, seconds: (performance.now() - started) / 1000, replaced });
    });
  });
}

let stalls = 0;
let failures = 0;
for (let i = 1; i <= runs; i++) {
  const r = await once(i);
  stalls += r.replaced.length;
  if (r.code !== 0) failures++;
  console.log(`run ${i}/${runs}: exit ${r.code}, ${r.seconds.toFixed(0)} s, L1 replaced ${r.replaced.length}x${r.replaced.map((l) => `\n    ${l}`).join('')}`);
}
console.log(`rig-soak: ${runs} runs, ${stalls} stalled or panicked L1s replaced, ${failures} runs failed`);
process.exit(failures === 0 ? 0 : 1);
