import { guestRamRegions, loadLinux, type GuestMemory } from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { MiB } from './size.js';
import type { CheckBoot } from './validate.js';

/**
 * Guest RAM that accepts every write inside the RAM regions and keeps nothing: enough for a dry run of
 * the loader, which validates before it writes and never reads back what it wrote.
 */
function discardingMemory(memBytes: number): GuestMemory {
  const regions = guestRamRegions(memBytes);
  let scratch = new ArrayBuffer(0);
  return {
    view(gpa, length) {
      if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || length < 0) return undefined;
      if (!regions.some((r) => gpa >= r.gpa && gpa + length <= r.gpa + r.size)) return undefined;
      // One scratch buffer for every write: the largest object written (kernel or initrd) sets its size.
      if (scratch.byteLength < length) scratch = new ArrayBuffer(length);
      return new DiscardingView(scratch, 0, length);
    },
  };
}

/**
 * A view whose bulk writes do nothing: copying a 17 MiB vmlinux into scratch memory that is thrown
 * away was most of the dry run's time (40 ms of hype's start-up). Small field writes still land in the
 * scratch buffer, which nobody reads.
 */
class DiscardingView extends Uint8Array {
  override set(): void {}
  override fill(): this {
    return this;
  }
}

/**
 * The boot check with @hype/linux-loader: runs `loadLinux` (header/ELF validation, host-side payload
 * unpacking, kernel and initrd placement, command line length) against discarding memory. The initrd's
 * contents do not matter to the loader, only its size, so a stand-in of that size that writes nothing is
 * used. The loader's own decompressors are used because they stop at the size it allows (no more than
 * --mem): a decompression bomb fails here without the CLI allocating its output. The unpacked payload is
 * kept for the VM's load of the same kernel bytes (`keepUnpacked`): decompressed once, not twice.
 */
export const loaderCheckBoot: CheckBoot = (check) => {
  const memBytes = check.memMiB * MiB;
  loadLinux(discardingMemory(memBytes), {
    kernel: check.kernel,
    kernelName: check.kernelName,
    keepUnpacked: true,
    ...(check.initrdBytes > 0 ? { initrd: { size: check.initrdBytes, read: () => {} }, initrdName: check.initrdName ?? 'initrd' } : {}),
    ...(check.cmdline !== undefined ? { cmdline: check.cmdline } : {}),
    memBytes,
    cpus: check.cpus,
    decompressors: nodeDecompressors,
  });
};
