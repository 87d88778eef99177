#!/usr/bin/env node
/**
 * Command-line entry for the guest artifacts (built to guest/dist/build.js):
 *   node guest/dist/build.js kernel [--json]           build or reuse the kernel, print where it is
 *   node guest/dist/build.js initrd OUT [--init shell|test] [--no-agent]   write hype's initrd to OUT
 *   node guest/dist/build.js agent [--json]            compile or reuse the guest agent, print where it is
 */
import { ensureAgent } from './agent.js';
import { ensureKernel } from './kernel.js';
import { writeInitrd, type InitMode } from './initrd.js';

const USAGE = 'usage: build.js kernel [--json] | build.js initrd OUT [--init shell|test] [--no-agent] | build.js agent [--json]';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'kernel') {
    const json = rest.includes('--json');
    const unknown = rest.filter((a) => a !== '--json');
    if (unknown.length > 0) throw new Error(`unknown argument ${unknown[0]}; ${USAGE}`);
    const kernel = await ensureKernel({ onProgress: (p) => process.stderr.write(`[hype guest] ${p.phase}: ${p.message}\n`) });
    process.stdout.write(json ? `${JSON.stringify(kernel, null, 2)}\n` : `bzImage ${kernel.bzImage}\nvmlinux ${kernel.vmlinux}\nconfig  ${kernel.config}\n`);
    return 0;
  }
  if (command === 'agent') {
    const json = rest.includes('--json');
    const unknown = rest.filter((a) => a !== '--json');
    if (unknown.length > 0) throw new Error(`unknown argument ${unknown[0]}; ${USAGE}`);
    const agent = ensureAgent();
    process.stdout.write(json ? `${JSON.stringify(agent, null, 2)}\n` : `hype-agent ${agent.path}${agent.cached ? ' (cached)' : ''}\n`);
    return 0;
  }
  if (command === 'initrd') {
    let out: string | undefined;
    let init: InitMode = 'shell';
    let agent = true;
    for (let i = 0; i < rest.length; i++) {
      const arg = rest[i];
      if (arg === '--no-agent') {
        agent = false;
      } else if (arg === '--init') {
        const value = rest[++i];
        if (value !== 'shell' && value !== 'test') throw new Error(`--init must be shell or test, got ${value ?? 'nothing'}`);
        init = value;
      } else if (arg.startsWith('-')) {
        throw new Error(`unknown flag ${arg}; ${USAGE}`);
      } else if (out === undefined) {
        out = arg;
      } else {
        throw new Error(`unexpected argument ${arg}; ${USAGE}`);
      }
    }
    if (out === undefined) throw new Error(`initrd needs an output path; ${USAGE}`);
    const written = writeInitrd(out, { init, ...(agent ? {} : { agent: false as const }) });
    process.stdout.write(`${written.path} (${written.bytes} bytes, init: ${init})\n`);
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  throw new Error(`unknown command ${command}; ${USAGE}`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`hype guest: ${error.message}\n`);
    process.exit(1);
  },
);
