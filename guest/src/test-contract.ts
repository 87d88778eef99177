/**
 * The host's half of the guest test contract: the exact data the guest-side checks
 * (guest/rootfs/usr/lib/hype/run-tests, test-lib.sh) write and expect, and a parser for their output.
 * guest/test/contract.test.ts runs the shell generators with busybox on the host and compares them
 * byte for byte with these.
 */

/** Lines printed by the test runner. */
export const TEST_LINE_PREFIX = 'HYPE-TEST ';
export const TEST_DONE_PREFIX = 'HYPE-TEST-DONE ';
export const CONSOLE_BEGIN = 'HYPE-CONSOLE-BEGIN';
export const CONSOLE_END = 'HYPE-CONSOLE-END';
export const CONSOLE_READY = 'HYPE-CONSOLE-READY';
export const CONSOLE_ECHO_PREFIX = 'HYPE-CONSOLE-ECHO ';

/**
 * Test names understood by `hype.test=` (plus the groups `blk` and `all`). Not in `all`: `agent`, which
 * waits for the host's half (run through the guest agent) to write its verdict to AGENT_VERDICT_PATH, and
 * `ddread`, a benchmark.
 */
export const GUEST_TESTS = ['boot', 'console', 'blk.vda', 'blk.vdb', 'blk.vdc', 'smp', 'rng', 'agent', 'ddread'] as const;

/** Where the host's half of the `agent` check writes `pass <details>` or `fail <reason>` (through the agent). */
export const AGENT_VERDICT_PATH = '/run/hype-agent-checks';
export type GuestTestName = (typeof GUEST_TESTS)[number];

/** The text the console test writes to /dev/hvc0 between BEGIN and END (64 lines, 4672 bytes). */
export function consoleTestText(): string {
  let text = '';
  for (let i = 0; i < 64; i++) {
    text += `hype-console ${String(i).padStart(4, '0')} the quick brown fox jumps over the lazy dog 0123456789\n`;
  }
  return text;
}

/**
 * The exact bytes the console test puts on /dev/hvc0 before it waits for the host's line
 * (output post-processing is off, so there is no \r).
 */
export function consoleTestTranscript(): string {
  return `${CONSOLE_BEGIN}\n${consoleTestText()}${CONSOLE_END}\n${CONSOLE_READY}\n`;
}

/** The content of `hype/input.txt` on the ext4 disk vda (128 lines, 8192 bytes). */
export function blkInputText(): string {
  let text = '';
  for (let i = 0; i < 128; i++) {
    text += `hype input line ${String(i).padStart(4, '0')}: 0123456789abcdefghijklmnopqrstuvwxyz-----\n`;
  }
  return text;
}

export const BLK_PATTERN_LINE_LENGTH = 16;

/**
 * Bytes [offset, offset+length) of the block pattern stream: line i is `hype-blk-%06x\n` (16 bytes),
 * so every 512-byte sector of it differs and a misplaced sector is caught.
 */
export function blkPattern(offset: number, length: number): Buffer {
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0) {
    throw new RangeError(`blkPattern: bad range offset=${offset} length=${length}`);
  }
  const firstLine = Math.floor(offset / BLK_PATTERN_LINE_LENGTH);
  const lastLine = Math.ceil((offset + length) / BLK_PATTERN_LINE_LENGTH);
  const lines = Buffer.alloc((lastLine - firstLine) * BLK_PATTERN_LINE_LENGTH);
  for (let i = firstLine; i < lastLine; i++) {
    lines.write(`hype-blk-${i.toString(16).padStart(6, '0')}\n`, (i - firstLine) * BLK_PATTERN_LINE_LENGTH, 'latin1');
  }
  const start = offset - firstLine * BLK_PATTERN_LINE_LENGTH;
  return lines.subarray(start, start + length);
}

/** vda: the guest writes `hype/output.bin`, this many bytes of the block pattern from offset 0. */
export const VDA_OUTPUT_PATH = '/hype/output.bin';
export const VDA_INPUT_PATH = '/hype/input.txt';
export const VDA_OUTPUT_LENGTH = 4 * 1024 * 1024;
/** vdc: the guest writes pattern bytes [VDC_WRITE_OFFSET, +VDC_WRITE_LENGTH) at that byte offset. */
export const VDC_WRITE_OFFSET = 1024 * 1024 + 3 * 512;
export const VDC_WRITE_LENGTH = 385 * 512;
/** The result each of the SMP test's two busy loops prints (sum of i % 7 for i < 1e6). */
export const SMP_BUSY_LOOP_RESULT = 2999997;

/**
 * The kernel command-line words that select the guest checks, e.g. `hype.test=boot,blk hype.cpus=2`.
 * Names: the GUEST_TESTS, or the groups `blk` and `all`.
 */
export function guestTestCmdline(tests: readonly (GuestTestName | 'blk' | 'all')[], options: { cpus?: number } = {}): string {
  const known = new Set<string>([...GUEST_TESTS, 'blk', 'all']);
  for (const t of tests) if (!known.has(t)) throw new Error(`unknown guest test ${JSON.stringify(t)} (known: ${[...known].join(', ')})`);
  if (tests.length === 0) throw new Error('guestTestCmdline: name at least one test');
  const words = [`hype.test=${tests.join(',')}`];
  if (options.cpus !== undefined) {
    if (!Number.isInteger(options.cpus) || options.cpus < 1) throw new Error(`guestTestCmdline: cpus must be a positive integer, got ${options.cpus}`);
    words.push(`hype.cpus=${options.cpus}`);
  }
  return words.join(' ');
}

export interface GuestTestResult {
  name: string;
  status: 'PASS' | 'FAIL';
  detail: string;
}

export interface GuestTestReport {
  results: GuestTestResult[];
  /** Present once the runner printed `HYPE-TEST-DONE`. */
  done?: { pass: number; fail: number };
  /** Lines the runner printed from the kernel log after a failure. */
  dmesg: string[];
  /** The text between HYPE-CONSOLE-BEGIN and -END when the console test ran on this stream. */
  consoleText?: string;
  /** The line the guest echoed back (`HYPE-CONSOLE-ECHO <line>`). */
  consoleEcho?: string;
}

/** Parses everything the guest printed (kernel log included); tolerant of \r\n line ends. */
export function parseGuestTestOutput(output: string): GuestTestReport {
  const report: GuestTestReport = { results: [], dmesg: [] };
  const begin = output.indexOf(`${CONSOLE_BEGIN}\n`);
  if (begin >= 0) {
    const textStart = begin + CONSOLE_BEGIN.length + 1;
    const end = output.indexOf(`${CONSOLE_END}\n`, textStart);
    if (end >= 0) report.consoleText = output.slice(textStart, end);
  }
  for (const rawLine of output.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    if (line.startsWith(TEST_DONE_PREFIX)) {
      const m = /^HYPE-TEST-DONE pass=(\d+) fail=(\d+)$/.exec(line);
      if (m) report.done = { pass: Number(m[1]), fail: Number(m[2]) };
    } else if (line.startsWith(TEST_LINE_PREFIX)) {
      const m = /^HYPE-TEST (\S+) (PASS|FAIL) ?(.*)$/.exec(line);
      if (m) report.results.push({ name: m[1], status: m[2] as 'PASS' | 'FAIL', detail: m[3] });
    } else if (line.startsWith(CONSOLE_ECHO_PREFIX)) {
      report.consoleEcho = line.slice(CONSOLE_ECHO_PREFIX.length);
    } else if (line.startsWith('HYPE-DMESG ')) {
      report.dmesg.push(line.slice('HYPE-DMESG '.length));
    }
  }
  return report;
}

/** `key=value` pairs of a result's detail, e.g. `kernel=6.1.0 uptime=1.2s`. */
export function resultFields(result: GuestTestResult): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const word of result.detail.split(' ')) {
    const eq = word.indexOf('=');
    if (eq > 0) fields[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return fields;
}
