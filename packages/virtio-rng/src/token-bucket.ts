/** A rate limit as a token bucket: one token per byte. */
export interface RateLimit {
  /** Refill rate: bytes per second, a positive finite number. */
  readonly bytesPerSecond: number;
  /** Bucket size: the most bytes served at once after an idle period, a finite number >= 1. */
  readonly burstBytes: number;
}

/** Checks a RateLimit; throws a RangeError naming the bad option. */
export function checkRateLimit(limit: RateLimit, optionName = 'rateLimit'): void {
  if (typeof limit !== 'object' || limit === null) throw new RangeError(`virtio-rng: ${optionName} must be { bytesPerSecond, burstBytes }`);
  const { bytesPerSecond, burstBytes } = limit;
  if (typeof bytesPerSecond !== 'number' || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) {
    throw new RangeError(`virtio-rng: ${optionName}.bytesPerSecond must be a positive finite number of bytes per second (got ${String(bytesPerSecond)})`);
  }
  if (typeof burstBytes !== 'number' || !Number.isFinite(burstBytes) || burstBytes < 1) {
    throw new RangeError(`virtio-rng: ${optionName}.burstBytes must be a finite number of bytes, at least 1 (got ${String(burstBytes)})`);
  }
}

/** Rounding slack so that refills computed in floating point reach whole byte counts. */
const EPSILON = 1e-9;

/**
 * A token bucket over an injectable millisecond clock. Starts full. A clock that goes backwards adds
 * nothing (tokens accrue again once it passes the latest time seen).
 */
export class TokenBucket {
  /** Whole bytes the bucket holds when full. */
  readonly capacity: number;
  private readonly ratePerMs: number;
  private tokens: number;
  private last: number;

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number,
  ) {
    checkRateLimit(limit);
    this.capacity = Math.floor(limit.burstBytes);
    this.ratePerMs = limit.bytesPerSecond / 1000;
    this.tokens = limit.burstBytes;
    const start = now();
    this.last = Number.isFinite(start) ? start : 0;
  }

  private refill(): void {
    const t = this.now();
    if (!Number.isFinite(t) || !(t > this.last)) return;
    this.tokens = Math.min(this.limit.burstBytes, this.tokens + (t - this.last) * this.ratePerMs);
    this.last = t;
  }

  /** Whole bytes that may be served now. */
  available(): number {
    this.refill();
    return Math.max(0, Math.floor(this.tokens + EPSILON));
  }

  /** Spend `bytes` (at most `available()`). */
  take(bytes: number): void {
    this.tokens = Math.max(0, this.tokens - bytes);
  }

  /** Milliseconds until `bytes` (at most `capacity`) are available; 0 if they are now. */
  delayFor(bytes: number): number {
    this.refill();
    const missing = Math.min(bytes, this.capacity) - this.tokens - EPSILON;
    return missing <= 0 ? 0 : Math.ceil(missing / this.ratePerMs);
  }
}
