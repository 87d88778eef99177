/**
 * Storage behind one virtio block device. Offsets and lengths are in bytes; the device only ever calls
 * with ranges it has already checked against `size` (rounded down to whole sectors), so a backend may
 * treat an out-of-range call as a bug and reject it.
 *
 * `read`/`write` take the guest's buffers as a list of live views into guest memory: a backend should
 * transfer straight into/out of them (no copy) and may complete them in any order relative to other
 * calls. A rejected promise becomes VIRTIO_BLK_S_IOERR for that request (and is reported to the
 * device's `onError` hook); it never escapes the device.
 */
export interface BlockBackend {
  /** Size in bytes. The device exposes floor(size / 512) sectors. */
  readonly size: number;
  /** A read-only backend makes the device offer VIRTIO_BLK_F_RO and fail every write-type request. */
  readonly readOnly: boolean;
  /** Fill `dest` (in order, contiguously) with the bytes at [offset, offset + total length). */
  read(offset: number, dest: readonly Uint8Array[]): Promise<void>;
  /** Store `src` (in order, contiguously) at [offset, offset + total length). Never called when readOnly. */
  write(offset: number, src: readonly Uint8Array[]): Promise<void>;
  /** Make every completed write durable (e.g. fdatasync). Called for FLUSH, also on read-only disks. */
  flush(): Promise<void>;
  /**
   * Optional: advise that [offset, offset + length) is unused. The device offers VIRTIO_BLK_F_DISCARD
   * only when this exists. Reads of a discarded range may return anything afterwards.
   */
  discard?(offset: number, length: number): Promise<void>;
  /**
   * Optional: make [offset, offset + length) read back as zeroes. The device offers
   * VIRTIO_BLK_F_WRITE_ZEROES only when this exists and the backend is writable.
   */
  writeZeroes?(offset: number, length: number): Promise<void>;
  /** True if writeZeroes may deallocate (config write_zeroes_may_unmap). Default false. */
  readonly writeZeroesMayUnmap?: boolean;
  /** Release host resources. The device never calls the backend after its owner closed it. */
  close(): Promise<void>;
}

/** Total byte length of a list of views. */
export function totalLength(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.byteLength;
  return n;
}

/** Throws if [offset, offset + length) is not inside a backend of `size` bytes. */
export function checkRange(what: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`${what}: range [${offset}, ${offset}+${length}) outside a ${size}-byte disk`);
  }
}
