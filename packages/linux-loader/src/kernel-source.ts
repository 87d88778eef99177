import { LoaderError, hex } from './errors.js';

/**
 * A kernel image that is read on demand instead of held in memory: an ELF vmlinux's headers are read to
 * plan the load and its segments go from the file straight into guest RAM (a 17 MiB vmlinux holds ~11 MiB
 * to load; reading the whole file into the VMM first was most of hype's start-up under emulation).
 * `@hype/linux-loader/node` makes one from a file (`kernelFile`).
 */
export interface KernelSource {
  /** The image's size in bytes. */
  readonly size: number;
  /** Fills `into` with the image's bytes from `position` on (all of `into`), or throws a LoaderError naming the image. */
  readAt(into: Uint8Array, position: number): void;
  /**
   * Optional: runs `use` with the image held open, so that the readAt calls inside it share one open file
   * (the loader makes a dozen; each opening and checking the file again was tens of ms of start-up under
   * emulation). Returns what `use` returns; its errors pass through unchanged.
   */
  batch?<T>(use: () => T): T;
}

/** `use()`, inside `image.batch` when the image is a source that has one. */
export function inBatch<T>(image: KernelImage, use: () => T): T {
  return isKernelSource(image) && image.batch !== undefined ? image.batch(use) : use();
}

/** A kernel given as bytes or as a source. */
export type KernelImage = Uint8Array | KernelSource;

export function isKernelSource(image: KernelImage): image is KernelSource {
  return !ArrayBuffer.isView(image);
}

/** Bytes [position, position + length) of the image, in a new array (a subarray of bytes). */
export function imageBytes(image: KernelImage, position: number, length: number, name: string): Uint8Array {
  if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > imageSize(image)) {
    throw new LoaderError('format', `kernel ${name}: truncated (${length} bytes at ${hex(position)} are past the ${imageSize(image)}-byte file)`);
  }
  if (!isKernelSource(image)) return image.subarray(position, position + length);
  const into = new Uint8Array(length);
  image.readAt(into, position);
  return into;
}

export function imageSize(image: KernelImage): number {
  return isKernelSource(image) ? image.size : image.length;
}
