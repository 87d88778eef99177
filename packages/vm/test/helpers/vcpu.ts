import type { VcpuRegs, VcpuSegment, VcpuSregs } from '../../src/cpu/state.js';

export function zeroRegs(over: Partial<VcpuRegs> = {}): VcpuRegs {
  return {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: 0n, rflags: 2n, ...over,
  };
}

export function segment(over: Partial<VcpuSegment> = {}): VcpuSegment {
  return { base: 0n, limit: 0xffff_ffff, selector: 0, type: 3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0, ...over };
}

/** A 64-bit kernel-mode vCPU (Linux's __KERNEL_CS 0x10, SS 0 as after an interrupt gate) with paging rooted at `cr3`. */
export function kernelSregs(cr3: bigint, over: Partial<VcpuSregs> = {}): VcpuSregs {
  return {
    cs: segment({ selector: 0x10, type: 0xb, l: 1, db: 0 }),
    ss: segment({ selector: 0, unusable: 1 }),
    ds: segment(), es: segment(), fs: segment(), gs: segment(),
    tr: segment({ selector: 0x40, type: 0xb, s: 0, g: 0, limit: 0x4087 }),
    ldt: segment({ unusable: 1, type: 2, s: 0 }),
    gdt: { base: 0xffff_fe00_0000_1000n, limit: 0x7f },
    idt: { base: 0xffff_fe00_0000_0000n, limit: 0xfff },
    cr0: 0x8005_0033n, cr2: 0n, cr3, cr4: 0x20n | 0x80n | 0x200n, cr8: 0n,
    efer: 0xd01n, apicBase: 0xfee0_0900n,
    ...over,
  };
}

export function userSregs(cr3: bigint): VcpuSregs {
  return kernelSregs(cr3, { cs: segment({ selector: 0x33, type: 0xb, l: 1, db: 0, dpl: 3 }), ss: segment({ selector: 0x2b, dpl: 3 }) });
}
