import { ChainWriter } from '@hype/virtio';
import type { BlockBackend } from './backend.js';
import { BLK_ID_BYTES, BlkStatus, type BlkStatusCode } from './layout.js';
import type { BlkRequest, ParsedRequest } from './request.js';

/** How a request ended: the status byte, and how many data bytes went into device-writable buffers. */
export interface BlkOutcome {
  status: BlkStatusCode;
  /** Data bytes written to the guest, not counting the status byte. */
  written: number;
  /** The backend failure behind an IOERR, for the log. */
  error?: unknown;
}

/**
 * Reads go through a host buffer of at most this many bytes per request, copied into the guest's buffers
 * on the JS thread only while the request still belongs to the guest: a read that finishes after a
 * device reset then cannot land in memory the guest has reused. Bounds the host memory of reads in
 * flight to queue size x this.
 */
export const READ_BOUNCE_BYTES = 128 * 1024;

/**
 * Whether the chain a request came from still belongs to the device (no reset since it was popped).
 * Checked before each copy into guest memory.
 */
export type StillOwned = () => boolean;

const ALWAYS_OWNED: StillOwned = () => true;

/** Runs a validated request against the backend. Never rejects: a backend failure becomes IOERR. */
export async function executeRequest(
  req: BlkRequest,
  backend: BlockBackend,
  deviceId: Uint8Array,
  stillOwned: StillOwned = ALWAYS_OWNED,
): Promise<BlkOutcome> {
  try {
    switch (req.kind) {
      case 'in':
        if (req.length > 0) await bouncedRead(req.offset, req.length, req.data, backend, stillOwned);
        return { status: BlkStatus.OK, written: req.length };
      case 'out':
        if (req.length > 0) await backend.write(req.offset, req.data);
        return { status: BlkStatus.OK, written: 0 };
      case 'flush':
        await backend.flush();
        return { status: BlkStatus.OK, written: 0 };
      case 'get-id':
        return { status: BlkStatus.OK, written: new ChainWriter(req.data).write(deviceId.subarray(0, BLK_ID_BYTES)) };
      case 'discard':
        if (!backend.discard) return { status: BlkStatus.UNSUPP, written: 0 };
        for (const r of req.ranges) await backend.discard(r.offset, r.length);
        return { status: BlkStatus.OK, written: 0 };
      case 'write-zeroes':
        if (!backend.writeZeroes) return { status: BlkStatus.UNSUPP, written: 0 };
        for (const r of req.ranges) await backend.writeZeroes(r.offset, r.length);
        return { status: BlkStatus.OK, written: 0 };
    }
  } catch (error) {
    // Data already transferred by a failed IN is not reported: the used length stays a lower bound.
    return { status: BlkStatus.IOERR, written: 0, error };
  }
}

/** Reads [offset, +length) into `dest` chunk by chunk through a host buffer, while `stillOwned()`. */
async function bouncedRead(offset: number, length: number, dest: readonly Uint8Array[], backend: BlockBackend, stillOwned: StillOwned): Promise<void> {
  const bounce = new Uint8Array(Math.min(length, READ_BOUNCE_BYTES));
  const writer = new ChainWriter(dest, length);
  for (let done = 0; done < length; ) {
    const n = Math.min(bounce.length, length - done);
    const chunk = bounce.subarray(0, n);
    await backend.read(offset + done, [chunk]);
    if (!stillOwned()) return;
    writer.write(chunk);
    done += n;
  }
}

/** What to write back for one chain: the status byte (if the chain has one) and the used length. */
export interface ServedChain {
  /** Where the status byte goes; absent for a chain with no usable status byte. */
  statusView?: Uint8Array;
  code: BlkStatusCode;
  /** used.len: data bytes written to device-writable buffers plus the status byte (0 without one). */
  usedLen: number;
  /** Why the request failed (guest error or backend error), for the log. */
  problem?: string;
}

/** Serves a parsed chain: runs it if valid. Does not write the status (the caller decides if it still may). */
export async function serveChain(
  parsed: ParsedRequest,
  backend: BlockBackend,
  deviceId: Uint8Array,
  stillOwned: StillOwned = ALWAYS_OWNED,
): Promise<ServedChain> {
  switch (parsed.kind) {
    case 'unanswerable':
      return { code: BlkStatus.IOERR, usedLen: 0, problem: parsed.reason };
    case 'rejected':
      return { statusView: parsed.status, code: parsed.code, usedLen: 1, problem: parsed.reason };
    default: {
      const outcome = await executeRequest(parsed, backend, deviceId, stillOwned);
      const served: ServedChain = { statusView: parsed.status, code: outcome.status, usedLen: outcome.written + 1 };
      if (outcome.status !== BlkStatus.OK) served.problem = `${parsed.kind} request failed: ${describeError(outcome.error)}`;
      return served;
    }
  }
}

/** Writes the status byte of a served chain; returns the used length to report. */
export function writeStatus(served: ServedChain): number {
  if (served.statusView) served.statusView[0] = served.code;
  return served.usedLen;
}

function describeError(e: unknown): string {
  if (e === undefined) return 'not supported by the backend';
  return e instanceof Error ? e.message : String(e);
}
