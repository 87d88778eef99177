import { checkLinux } from '@hype/linux-loader';
import { nodeDecompressors } from '@hype/linux-loader/node';
import { MiB } from './size.js';
import type { CheckBoot } from './validate.js';

/**
 * The boot check with @hype/linux-loader's `checkLinux`: everything the load validates (header/ELF,
 * host-side payload unpacking, kernel and initrd placement, command line length) without guest memory
 * and without reading an ELF's segments. The initrd's contents do not matter to the loader, only its
 * size, so a stand-in of that size is used. The loader's own decompressors are used because they stop at
 * the size it allows (no more than --mem): a decompression bomb fails here without the CLI allocating its
 * output. The unpacked payload is kept for the VM's load of the same kernel (`keepUnpacked`): decompressed
 * once, not twice.
 */
export const loaderCheckBoot: CheckBoot = (check) => {
  const memBytes = check.memMiB * MiB;
  checkLinux({
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
