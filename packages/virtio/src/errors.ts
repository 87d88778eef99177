/**
 * What can be wrong with a descriptor chain the guest made available. A chain with one of these is
 * returned to the device as an `InvalidChain` value (never thrown); the usual answer is to put its head
 * back on the used ring with length 0 (`SplitQueue.popChain` does that) so the guest can reclaim it.
 */
export type ChainErrorKind =
  /** A `next` field (or the head, in an indirect table) points outside the descriptor table. */
  | 'next-out-of-range'
  /** The chain has more descriptors than its table: it loops. */
  | 'loop'
  /** `flags` has bits other than NEXT, WRITE, INDIRECT. */
  | 'unknown-flags'
  /** INDIRECT used but VIRTIO_F_INDIRECT_DESC was not negotiated. */
  | 'indirect-not-negotiated'
  /** INDIRECT together with NEXT (§2.7.5.3.1: the driver MUST NOT). */
  | 'indirect-with-next'
  /** INDIRECT inside an indirect table. */
  | 'nested-indirect'
  /** Indirect table length 0 or not a multiple of 16. */
  | 'indirect-bad-length'
  /** Indirect table with more entries than a chain may have (the queue size, §2.7.5.3.1). */
  | 'indirect-too-large'
  /** Indirect table not entirely inside guest RAM. */
  | 'indirect-table-outside-memory'
  /** A buffer not entirely inside guest RAM. */
  | 'buffer-outside-memory'
  /** A device-readable buffer after a device-writable one (§2.7.4.2). */
  | 'readable-after-writable'
  /** Total length of the chain's buffers exceeds 2^32 - 1 bytes. */
  | 'chain-too-long'
  /** More buffers than a chain may have (the queue size, or the device's own lower limit). */
  | 'too-many-buffers';

export interface ChainError {
  readonly kind: ChainErrorKind;
  /** One line with the context (queue, head, descriptor index, address, length). */
  readonly message: string;
}

/**
 * What makes a whole queue unusable. The queue stops (pop returns null from then on) and the transport
 * sets DEVICE_NEEDS_RESET: the guest must reset the device to recover.
 */
export type QueueErrorKind =
  /** avail.idx moved more than the queue size ahead of the device's last_avail_idx. */
  | 'avail-idx-jump'
  /** An avail ring entry names a head descriptor >= queue size: it cannot be returned on the used ring. */
  | 'head-out-of-range'
  /**
   * An avail ring entry names a head that is still in flight (made available again before the device
   * used it; Cloud Hypervisor's QueueDuplicatedHeadIndex). Refusing it bounds the chains in flight by
   * the queue size.
   */
  | 'head-in-flight';

export interface QueueError {
  readonly kind: QueueErrorKind;
  readonly message: string;
}

/** Why a queue's configuration (as the driver wrote it to the transport) cannot be used. */
export type QueueConfigErrorKind =
  | 'size-zero'
  | 'size-not-power-of-two'
  | 'size-too-large'
  | 'desc-misaligned'
  | 'avail-misaligned'
  | 'used-misaligned'
  | 'desc-outside-memory'
  | 'avail-outside-memory'
  | 'used-outside-memory';

export interface QueueConfigError {
  readonly kind: QueueConfigErrorKind;
  readonly message: string;
}
