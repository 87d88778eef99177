// StreamResync: the decoder finds the framing again after a peer cut a frame short (Debian 12's passt
// drops the rest of a partly written frame when its socket buffer is full).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StreamFrameDecoder, encodeStreamFrame } from '../src/index.js';

const PEER = Uint8Array.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
const GUEST = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/** A frame from the peer: dst guest, src PEER, IPv4 ethertype, then `length - 14` bytes of `fill`. */
function peerFrame(length: number, fill: number): Uint8Array {
  const frame = new Uint8Array(length).fill(fill);
  frame.set(GUEST, 0);
  frame.set(PEER, 6);
  frame[12] = 0x08;
  frame[13] = 0x00;
  return frame;
}

function decodeAll(decoder: StreamFrameDecoder, bytes: Uint8Array, chunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += chunk) {
    decoder.push(bytes.slice(at, at + chunk));
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) out.push(f);
  }
  return out;
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe('stream decoder with resync', () => {
  it('an intact stream decodes exactly as without resync, however it is chunked', () => {
    const frames = [60, 1514, 14, 900, 65535].map((n, i) => peerFrame(n, i + 1));
    const bytes = concat(frames.map(encodeStreamFrame));
    for (const chunk of [1, 7, 16, 1000, bytes.length]) {
      const decoder = new StreamFrameDecoder(undefined, { sourceMac: PEER });
      expect(decodeAll(decoder, bytes, chunk)).toEqual(frames);
      expect(decoder.resyncs).toBe(0);
    }
  });

  it('a frame cut short: the frames after the next intact start are delivered again, one resync counted', () => {
    const frames = Array.from({ length: 8 }, (_, i) => peerFrame(1514, 0x11 * (i + 1)));
    const encoded = frames.map(encodeStreamFrame);
    // Frame 2 loses everything after its first 700 bytes (length prefix included in those 700).
    const broken = concat([...encoded.slice(0, 2), encoded[2].subarray(0, 700), ...encoded.slice(3)]);
    const decoder = new StreamFrameDecoder(undefined, { sourceMac: PEER });
    const out = decodeAll(decoder, broken, 333);
    expect(out.slice(0, 2)).toEqual(frames.slice(0, 2));
    // Frame 2 as decoded is damaged (its tail is frame 3's start), frame 3 is lost, 4..7 arrive intact.
    expect(out.slice(-4)).toEqual(frames.slice(4));
    expect(decoder.resyncs).toBe(1);
    expect(decoder.skippedBytes).toBeGreaterThan(0);
  });

  it('garbage lengths never throw: bytes are skipped until a frame from the peer starts', () => {
    const decoder = new StreamFrameDecoder(undefined, { sourceMac: PEER });
    const frame = peerFrame(100, 9);
    const bytes = concat([Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13), encodeStreamFrame(frame)]);
    expect(decodeAll(decoder, bytes, 5)).toEqual([frame]);
    expect(decoder.resyncs).toBe(1);
    expect(decoder.skippedBytes).toBe(17);
  });

  it('property: after any cut, every frame that starts past what the cut frame swallowed arrives intact', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 14, max: 3000 }), { minLength: 4, maxLength: 12 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 4096 }),
        (lengths, whichSeed, cutSeed, chunk) => {
          const frames = lengths.map((n, i) => peerFrame(n, (i * 37 + 5) & 0xff));
          const encoded = frames.map(encodeStreamFrame);
          const which = whichSeed % (frames.length - 2);
          const cut = 1 + (cutSeed % (encoded[which].length - 1)); // keep 1..len-1 bytes of it
          const bytes = concat([...encoded.slice(0, which), encoded[which].subarray(0, cut), ...encoded.slice(which + 1)]);
          const out = decodeAll(new StreamFrameDecoder(undefined, { sourceMac: PEER }), bytes, chunk);
          expect(out.slice(0, which)).toEqual(frames.slice(0, which));
          if (cut < 16) {
            // Cut inside its length prefix or MACs: it is not taken as a frame; what follows is a suffix.
            const rest = out.slice(which);
            expect(rest).toEqual(frames.slice(frames.length - rest.length));
            expect(rest.length).toBeGreaterThan(0);
            return;
          }
          // The cut frame claims its whole length, so it swallows what follows up to there; every frame
          // starting from that point on (in the broken stream) arrives intact.
          let start = encoded.slice(0, which).reduce((n, e) => n + e.length, 0);
          const swallowedTo = start + encoded[which].length;
          start += cut;
          let first = which + 1;
          while (first < frames.length && start < swallowedTo) start += encoded[first++].length;
          if (bytes.length < swallowedTo) {
            expect(out).toEqual(frames.slice(0, which)); // the stream ended inside what the cut frame claims
            return;
          }
          const tail = frames.slice(first);
          expect(out.length).toBe(which + 1 + tail.length);
          expect(out.slice(which + 1)).toEqual(tail);
        },
      ),
      { numRuns: 300 },
    );
  });
});
