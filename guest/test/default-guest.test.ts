/**
 * ensureDefaultGuest's usual start (kernel and initrd both cached) is answered from the files recorded
 * with the last answer (recall), not by resolving and hashing everything again; a missing or changed
 * file sends it back the slow way. Runs against a scratch cache whose kernel entry links to the real
 * one (the kernel is built by `pnpm --filter @hype/guest kernel`, which the test command runs first).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_SOURCE_PATH, DEFAULT_BUSYBOX, ensureDefaultGuest, findCachedKernel, guestPath, KERNEL_FRAGMENT_PATH, type KernelArtifacts } from '@hype/guest';

function realKernel(): KernelArtifacts | undefined {
  try {
    return findCachedKernel();
  } catch {
    return undefined; // no kernel source on this machine
  }
}

const kernel = realKernel();
if (kernel === undefined) console.warn('[hype] the default guest kernel is not built (pnpm --filter @hype/guest kernel): skipping the default-guest recall tests');

const scratch = mkdtempSync(join(tmpdir(), 'hype-default-guest-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

type Memo = Record<string, { files: string; value: { inputs?: string[]; value?: unknown } }>;

describe.skipIf(kernel === undefined)('ensureDefaultGuest', () => {
  it('answers a fully cached start from the recorded files, and takes the slow path again when one of them is gone', async () => {
    const cacheDir = join(scratch, 'cache');
    const entry = join(cacheDir, basename(kernel!.dir));
    mkdirSync(entry, { recursive: true });
    for (const name of ['bzImage', 'vmlinux', 'config', 'build.json']) symlinkSync(join(kernel!.dir, name), join(entry, name));
    const memo = (): Memo => JSON.parse(readFileSync(join(cacheDir, 'memo.json'), 'utf8')) as Memo;
    const recordedKey = () => Object.keys(memo()).find((key) => key.startsWith('default guest '));
    const call = async () => {
      const lines: string[] = [];
      const files = await ensureDefaultGuest({ cacheDir, reportCached: true, progress: (line) => lines.push(line) });
      return { files, lines };
    };

    const built = await call(); // the agent and the initrd are built here: nothing recorded
    expect(built.lines.some((line) => line.startsWith('guest initrd: built '))).toBe(true);
    expect(recordedKey()).toBeUndefined();
    const slow = await call(); // both cached, found the slow way: recorded
    expect(slow.files).toEqual(built.files);
    expect(slow.lines).toEqual([expect.stringMatching(/^guest kernel: kernel \w+ \(.+\) cached in /), `guest initrd: cached in ${slow.files.initrd}`]);
    const key = recordedKey()!;
    expect(key).toBeDefined();
    const inputs = memo()[key].value.inputs!;
    for (const file of [KERNEL_FRAGMENT_PATH, AGENT_SOURCE_PATH, DEFAULT_BUSYBOX, guestPath('rootfs'), guestPath('rootfs', 'init'), slow.files.kernel, slow.files.initrd]) {
      expect(inputs).toContain(file);
    }

    // The slow way consults its own memo entry for the initrd; the recalled answer does not.
    const initrdKey = Object.keys(memo()).find((name) => name.startsWith('default initrd in '))!;
    const withoutInitrdEntry = memo();
    delete withoutInitrdEntry[initrdKey];
    writeFileSync(join(cacheDir, 'memo.json'), JSON.stringify(withoutInitrdEntry));
    const recalled = await call();
    expect(recalled).toEqual(slow);
    expect(memo()[initrdKey]).toBeUndefined();

    // The answer's initrd removed: found missing, built again, never returned as a name of nothing.
    rmSync(slow.files.initrd);
    const rebuilt = await call();
    expect(existsSync(rebuilt.files.initrd)).toBe(true);
    expect(rebuilt.lines.some((line) => line.startsWith('guest initrd: built '))).toBe(true);
    expect(memo()[initrdKey]).toBeDefined();
  }, 120_000);
});
