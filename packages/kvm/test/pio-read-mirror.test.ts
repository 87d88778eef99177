// PioReadMirror (the table a VMM's device models publish side-effect-free register reads into) and
// Vcpu.start's pioReadMirror option, with the addon's stand-in for KVM_RUN (kvm_run.padding1[1] = N: N
// 1-byte INs from port 0x11 before each OUT to port 0x10, whose data byte is the last value read).
import { addon, layouts, pioReadMirrorLayout } from '@hype/kvm-sys';
import { describe, expect, it } from 'vitest';
import { PioReadMirror } from '../src/pio-read-mirror.js';
import { Vcpu } from '../src/vcpu.js';

describe('PioReadMirror', () => {
  it('publishes, replaces and takes away values per port', () => {
    using mirror = new PioReadMirror();
    expect(mirror.get(0x3fd)).toBeUndefined();
    expect(mirror.set(0x3fd, 0x60)).toBe(true);
    expect(mirror.get(0x3fd)).toBe(0x60);
    mirror.set(0x3fd, 0x61);
    expect(mirror.get(0x3fd)).toBe(0x61);
    mirror.set(0x3fd, undefined);
    expect(mirror.get(0x3fd)).toBeUndefined();
    expect(mirror.set(0x64, undefined)).toBe(true); // nothing to take away
    expect(() => mirror.set(0x10000, 1)).toThrow(RangeError);
    expect(() => mirror.set(0x3fd, 0x100)).toThrow(RangeError);
    expect(() => mirror.set(0x3fd, 1.5)).toThrow(RangeError);
  });

  it('holds at most pioReadMirrorLayout.entries ports; set() says when a new one does not fit', () => {
    using mirror = new PioReadMirror();
    for (let i = 0; i < pioReadMirrorLayout.entries; i++) expect(mirror.set(0x100 + i, i)).toBe(true);
    expect(mirror.set(0x200, 1)).toBe(false);
    expect(mirror.get(0x200)).toBeUndefined();
    expect(mirror.set(0x100, 0xaa)).toBe(true); // a known port still updates
    expect(mirror.get(0x100)).toBe(0xaa);
  });

  it('answers a vCPU thread\'s INs from a published port without calling the handler', async () => {
    const native = addon();
    const mapping = new native.Mapping(native.pageSize);
    const page = new Uint8Array(mapping.buffer!);
    page[layouts.kvm_run.padding1 + 1] = 2; // 2 INs from port 0x11 before each OUT
    const vcpu = new Vcpu(0, native.eventfd(0), mapping, () => {}, true);
    using mirror = new PioReadMirror();
    mirror.set(0x11, 0x21);
    const outs: number[] = [];
    let ins = 0;
    await vcpu.start(
      (run) => {
        if (run.io.direction === 'in') {
          ins++;
          run.io.data[0] = 0x99;
          return;
        }
        outs.push(run.io.data[0]);
        if (outs.length === 3) mirror.set(0x11, undefined);
        return outs.length === 4 ? 'stop' : undefined;
      },
      { pioReadMirror: mirror },
    );
    expect(outs).toEqual([0x21, 0x21, 0x21, 0x99]);
    expect(ins).toBe(2);
    expect(vcpu.pioMirrorHits).toBe(6);
    vcpu.close();
    mirror.close();
    expect(mirror.closed).toBe(true);
  });
});
