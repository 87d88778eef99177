import { ChainWriter } from '@hype/virtio';
import { type BlockBackend, checkRange, totalLength } from './backend.js';

/** Largest range fetched (and held in host memory) at once for one read. */
const MAX_FETCH = 8 << 20;

/** The part of a WHATWG `ReadableStreamDefaultReader` this backend uses. */
export interface BodyReaderLike {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(reason?: unknown): Promise<void>;
}

/** The part of a WHATWG `Response` this backend uses. */
export interface HttpResponseLike {
  status: number;
  headers: { get(name: string): string | null };
  /** Only used for a response without a readable `body` stream; its length is then checked after the fact. */
  arrayBuffer(): Promise<ArrayBuffer>;
  /** Read as a stream with a running count, so a body longer than the range asked for is cut off early. */
  body?: { cancel(reason?: unknown): Promise<void>; getReader?(): BodyReaderLike } | null;
}

/** The part of WHATWG `fetch` this backend uses (global `fetch` in Node 18+ and browsers fits). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<HttpResponseLike>;

export interface HttpBackendOptions {
  /** Defaults to the global `fetch`. */
  fetch?: FetchLike;
  /** Bytes fetched per cache block (read-ahead granularity). Default 64 KiB; must be a multiple of 512. */
  cacheBlockSize?: number;
  /** Blocks kept in the LRU cache. Default 64 (4 MiB with the default block size); 0 disables the cache. */
  cacheBlocks?: number;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
}

/**
 * A read-only disk served over HTTP(S) with Range requests. The size comes from the Content-Range of a
 * one-byte probe, which also proves the server honours ranges (206); every later answer must be a 206
 * for exactly the range asked, and carry the same ETag/Last-Modified as the probe (a changed image is an
 * I/O error, not silently mixed data).
 */
export class HttpBackend implements BlockBackend {
  readonly readOnly = true;
  private readonly cache = new Map<number, Promise<Uint8Array>>();
  private closed = false;

  private constructor(
    readonly url: string,
    readonly size: number,
    private readonly validator: { etag: string | null; lastModified: string | null },
    private readonly fetchFn: FetchLike,
    private readonly blockSize: number,
    private readonly maxBlocks: number,
    private readonly timeoutMs: number,
    private readonly headers: Record<string, string>,
  ) {}

  static async open(url: string, options: HttpBackendOptions = {}): Promise<HttpBackend> {
    const fetchFn = options.fetch ?? defaultFetch();
    const blockSize = options.cacheBlockSize ?? 64 * 1024;
    const maxBlocks = options.cacheBlocks ?? 64;
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0 || blockSize % 512 !== 0) {
      throw new RangeError(`http disk ${url}: cacheBlockSize ${blockSize} must be a positive multiple of 512`);
    }
    if (!Number.isSafeInteger(maxBlocks) || maxBlocks < 0) throw new RangeError(`http disk ${url}: cacheBlocks ${maxBlocks} must be >= 0`);
    const headers = { ...(options.headers ?? {}) };
    const probe = new Exchange(`http disk ${url}`, timeoutMs);
    try {
      let res: HttpResponseLike;
      try {
        res = await fetchFn(url, { method: 'GET', headers: { ...headers, Range: 'bytes=0-0' }, signal: probe.signal });
      } catch (e) {
        throw probe.error('cannot reach the server', e);
      }
      const contentRange = res.headers.get('content-range');
      let size: number;
      if (res.status === 206) {
        const parsed = parseContentRange(contentRange);
        if (!parsed || parsed.total === undefined) {
          throw new Error(`http disk ${url}: 206 answer without a usable Content-Range (got ${JSON.stringify(contentRange)}); cannot learn the size`);
        }
        size = parsed.total;
        // The one byte asked for; a longer body is cut off, not buffered.
        await probe.readExactly(res, new Uint8Array(1), 'GET bytes=0-0 (size probe)');
      } else if (res.status === 416) {
        // An empty file: "bytes */0".
        const m = /^bytes \*\/(\d+)$/.exec(contentRange ?? '');
        if (!m) throw new Error(`http disk ${url}: 416 Range Not Satisfiable for bytes=0-0 without a size`);
        size = Number(m[1]);
      } else if (res.status === 200) {
        throw new Error(`http disk ${url}: the server ignores Range requests (200 instead of 206 Partial Content); serve the image from a server that supports ranges`);
      } else {
        throw new Error(`http disk ${url}: HTTP ${res.status} for the size probe`);
      }
      if (!Number.isSafeInteger(size)) throw new Error(`http disk ${url}: size ${size} is too large`);
      const validator = { etag: res.headers.get('etag'), lastModified: res.headers.get('last-modified') };
      return new HttpBackend(url, size, validator, fetchFn, blockSize, maxBlocks, timeoutMs, headers);
    } finally {
      // Ends the exchange: stops the timer and tears down a body that was not read to the end.
      probe.close();
    }
  }

  async read(offset: number, dest: readonly Uint8Array[]): Promise<void> {
    if (this.closed) throw new Error(`http disk ${this.url}: read after close`);
    const length = totalLength(dest);
    checkRange(`http disk ${this.url} read`, offset, length, this.size);
    const out = new ChainWriter(dest, length);
    const end = offset + length;
    let pos = offset;
    // A window at a time, so a huge guest request never holds more than MAX_FETCH bytes of host memory.
    while (pos < end) {
      if (this.maxBlocks === 0) {
        const n = Math.min(end - pos, MAX_FETCH);
        out.write(await this.fetchRange(pos, n));
        pos += n;
        continue;
      }
      const first = Math.floor(pos / this.blockSize);
      const last = Math.min(Math.floor((end - 1) / this.blockSize), first + Math.max(1, Math.floor(MAX_FETCH / this.blockSize)) - 1);
      const blocks = await Promise.all(this.blocksFor(first, last));
      for (let b = first; b <= last; b++) {
        const block = blocks[b - first];
        const blockStart = b * this.blockSize;
        const to = Math.min(end, blockStart + this.blockSize);
        if (blockStart + block.byteLength < to) throw new Error(`http disk ${this.url}: block ${b} is short (${block.byteLength} bytes)`);
        out.write(block.subarray(pos - blockStart, to - blockStart));
        pos = to;
      }
    }
  }

  async write(): Promise<void> {
    throw new Error(`http disk ${this.url}: read-only`);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
  }

  /** Promises for blocks first..last, fetching each run of missing blocks with one range request. */
  private blocksFor(first: number, last: number): Promise<Uint8Array>[] {
    const out: Promise<Uint8Array>[] = [];
    let b = first;
    while (b <= last) {
      const cached = this.cache.get(b);
      if (cached) {
        this.cache.delete(b); // re-insert: most recently used last
        this.cache.set(b, cached);
        out.push(cached);
        b++;
        continue;
      }
      let runEnd = b;
      while (runEnd + 1 <= last && !this.cache.has(runEnd + 1)) runEnd++;
      const start = b * this.blockSize;
      const stop = Math.min(this.size, (runEnd + 1) * this.blockSize);
      const run = this.fetchRange(start, stop - start);
      for (let k = b; k <= runEnd; k++) {
        const rel = (k - b) * this.blockSize;
        const p = run.then((bytes) => bytes.subarray(rel, Math.min(rel + this.blockSize, bytes.byteLength)));
        // A failed fetch must not stay cached: the next read retries.
        p.catch(() => {
          if (this.cache.get(k) === p) this.cache.delete(k);
        });
        this.cache.set(k, p);
        out.push(p);
      }
      b = runEnd + 1;
    }
    while (this.cache.size > this.maxBlocks) {
      const oldest = this.cache.keys().next().value as number;
      this.cache.delete(oldest);
    }
    return out;
  }

  private async fetchRange(offset: number, length: number): Promise<Uint8Array> {
    const range = `bytes=${offset}-${offset + length - 1}`;
    const exchange = new Exchange(`http disk ${this.url}: GET ${range}`, this.timeoutMs);
    try {
      let res: HttpResponseLike;
      try {
        res = await this.fetchFn(this.url, { method: 'GET', headers: { ...this.headers, Range: range }, signal: exchange.signal });
      } catch (e) {
        throw exchange.error('request failed', e);
      }
      if (res.status !== 206) {
        throw new Error(`http disk ${this.url}: GET ${range} answered HTTP ${res.status} instead of 206 Partial Content`);
      }
      const cr = parseContentRange(res.headers.get('content-range'));
      if (!cr || cr.start !== offset || cr.end !== offset + length - 1 || (cr.total !== undefined && cr.total !== this.size)) {
        throw new Error(`http disk ${this.url}: GET ${range} answered Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
      }
      const etag = res.headers.get('etag');
      const lastModified = res.headers.get('last-modified');
      if ((this.validator.etag && etag && etag !== this.validator.etag) || (this.validator.lastModified && lastModified && lastModified !== this.validator.lastModified)) {
        throw new Error(`http disk ${this.url}: the image changed on the server since it was opened`);
      }
      const bytes = new Uint8Array(length);
      await exchange.readExactly(res, bytes);
      return bytes;
    } finally {
      exchange.close();
    }
  }
}

/** `bytes START-END/TOTAL` (TOTAL may be `*`). */
function parseContentRange(v: string | null): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((v ?? '').trim());
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return { start, end, total: m[3] === '*' ? undefined : Number(m[3]) };
}

/**
 * One request and its body: a timeout covering both (a server that stalls mid-body is caught too), an
 * abort for a body that runs past what was asked, and errors in the backend's `http disk <url>: ...`
 * style rather than the runtime's bare `terminated` or timeout DOMException.
 */
class Exchange {
  private readonly controller = new AbortController();
  private readonly timer: ReturnType<typeof setTimeout>;
  private timedOut = false;

  /** `label` starts every message, e.g. `http disk <url>: GET bytes=0-511`. */
  constructor(
    private readonly label: string,
    private readonly timeoutMs: number,
  ) {
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** `<label>: <what>: <cause>`, naming the timeout when it is what ended the exchange. */
  error(what: string, cause: unknown): Error {
    const why = this.timedOut ? `timed out after ${this.timeoutMs} ms` : errorText(cause);
    return new Error(`${this.label}: ${what}: ${why}`, { cause });
  }

  /**
   * Fills `dest` with the body, which must be exactly dest's length. A Content-Length that says otherwise
   * fails before any byte is read; a body that runs past it is aborted at the chunk that does.
   */
  async readExactly(res: HttpResponseLike, dest: Uint8Array, what = ''): Promise<void> {
    const label = what ? `${this.label}: ${what}` : this.label;
    const want = dest.byteLength;
    const declared = declaredLength(res);
    if (declared !== undefined && declared !== want) {
      throw new Error(`${label}: Content-Length ${declared} for ${want} bytes asked for`);
    }
    let got = 0;
    const reader = res.body?.getReader?.();
    try {
      if (res.body === null) {
        got = 0;
      } else if (reader === undefined) {
        const all = new Uint8Array(await res.arrayBuffer());
        if (all.byteLength > want) throw new BodyTooLong();
        dest.set(all);
        got = all.byteLength;
      } else {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (!(value instanceof Uint8Array)) throw new TypeError('body chunk is not bytes');
          if (got + value.byteLength > want) throw new BodyTooLong();
          dest.set(value, got);
          got += value.byteLength;
        }
      }
    } catch (e) {
      if (e instanceof BodyTooLong) {
        this.close();
        reader?.cancel().catch(() => {});
        throw new Error(`${label}: the body is longer than the ${want} bytes asked for`);
      }
      throw this.error(what ? `${what}: reading the body failed` : 'reading the body failed', e);
    }
    if (got !== want) throw new Error(`${label}: returned ${got} bytes instead of ${want}`);
  }

  /** Stops the timer and aborts whatever of the exchange is still open (a no-op once the body is read). */
  close(): void {
    clearTimeout(this.timer);
    if (!this.controller.signal.aborted) this.controller.abort(new Error('exchange closed'));
  }
}

class BodyTooLong extends Error {}

/** The Content-Length of an unencoded body (an encoded one counts the encoded bytes), if the server gave one. */
function declaredLength(res: HttpResponseLike): number | undefined {
  const encoding = res.headers.get('content-encoding');
  if (encoding !== null && encoding.trim().toLowerCase() !== 'identity') return undefined;
  const v = res.headers.get('content-length')?.trim();
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

function defaultFetch(): FetchLike {
  const f = (globalThis as { fetch?: unknown }).fetch;
  if (typeof f !== 'function') throw new Error('http disk: no global fetch in this runtime; pass options.fetch');
  return f as FetchLike;
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}
