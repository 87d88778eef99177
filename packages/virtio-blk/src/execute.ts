import type { BlockBackend } from './backend.js';
import { BLK_ID_BYTES, BlkStatus, type BlkStatusCode } from './layout.js';
import type { BlkRequest, ParsedChain } from './request.js';

/** How a request ended: the status byte, and how many data bytes went into device-writable buffers. */
export interface BlkOutcome {
  status: BlkStatusCode;
  /** Data bytes written to the guest, not counting the status byte. */
  written: number;
  /** The backend failure behind an IOERR, for the log. */
  error?: unknown;
}

/** Runs a validated request against the backend. Never rejects: a backend failure becomes IOERR. */
export async function executeRequest(req: BlkRequest, backend: BlockBackend, deviceId: Uint8Array): Promise<BlkOutcome> {
  try {
    switch (req.kind) {
      case 'in':
        if (req.length > 0) await backend.read(req.offset, req.data);
        return { status: BlkStatus.OK, written: req.length };
      case 'out':
        if (req.length > 0) await backend.write(req.offset, req.data);
        return { status: BlkStatus.OK, written: 0 };
      case 'flush':
        await backend.flush();
        return { status: BlkStatus.OK, written: 0 };
      case 'get-id':
        return { status: BlkStatus.OK, written: scatter(deviceId.subarray(0, BLK_ID_BYTES), req.data) };
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

/** Copies `src` across `dest` views in order; returns the number of bytes copied. */
function scatter(src: Uint8Array, dest: readonly Uint8Array[]): number {
  let done = 0;
  for (const d of dest) {
    if (done === src.byteLength) break;
    const n = Math.min(d.byteLength, src.byteLength - done);
    d.set(src.subarray(done, done + n));
    done += n;
  }
  return done;
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
export async function serveChain(parsed: ParsedChain, backend: BlockBackend, deviceId: Uint8Array): Promise<ServedChain> {
  switch (parsed.kind) {
    case 'unanswerable':
      return { code: BlkStatus.IOERR, usedLen: 0, problem: parsed.reason };
    case 'rejected':
      return { statusView: parsed.status, code: parsed.code, usedLen: 1, problem: parsed.reason };
    default: {
      const outcome = await executeRequest(parsed, backend, deviceId);
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
