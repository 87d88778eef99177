"""Run the boot vCPU state written by emulate-boot.mjs in Unicorn; print what the guest writes to COM1.

Unicorn stops at CPU exceptions instead of delivering them, so this delivers them itself through the
guest's IDT (the early #PF handler builds Linux's direct map on demand). Ports: COM1 output is printed,
its LSR reads "transmitter empty", every other port reads all ones (absent).
"""
import json
import struct
import sys

from unicorn import Uc, UcError, UC_ARCH_X86, UC_MODE_64, UC_HOOK_INSN, UC_HOOK_INTR
from unicorn.x86_const import *
from unicorn.unicorn_py3.unicorn import UcContext

ram_path, state_path = sys.argv[1], sys.argv[2]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 3_000_000_000
state = json.load(open(state_path))['cpu']
ram = open(ram_path, 'rb').read()

uc = Uc(UC_ARCH_X86, UC_MODE_64)
uc.mem_map(0, len(ram))
uc.mem_write(0, ram)
uc.mem_map(0xfec00000, 0x1000)  # IOAPIC and LAPIC pages: reads return 0
uc.mem_map(0xfee00000, 0x1000)

s, r = state['sregs'], state['regs']
uc.reg_write(UC_X86_REG_GDTR, (0, s['gdt']['base'], s['gdt']['limit'], 0))
uc.reg_write(UC_X86_REG_IDTR, (0, s['idt']['base'], s['idt']['limit'], 0))
uc.reg_write(UC_X86_REG_CR3, s['cr3'])
uc.reg_write(UC_X86_REG_CR4, s['cr4'])
uc.msr_write(0xC0000080, s['efer'])
uc.reg_write(UC_X86_REG_CR0, s['cr0'])
for name, reg in (('cs', UC_X86_REG_CS), ('ds', UC_X86_REG_DS), ('es', UC_X86_REG_ES), ('ss', UC_X86_REG_SS)):
    uc.reg_write(reg, s[name]['selector'])
for name, reg in (('rax', UC_X86_REG_RAX), ('rbx', UC_X86_REG_RBX), ('rcx', UC_X86_REG_RCX), ('rdx', UC_X86_REG_RDX),
                  ('rsi', UC_X86_REG_RSI), ('rdi', UC_X86_REG_RDI), ('rsp', UC_X86_REG_RSP), ('rbp', UC_X86_REG_RBP),
                  ('rflags', UC_X86_REG_RFLAGS)):
    uc.reg_write(reg, r[name])

line = bytearray()
lcr = [0]


def port_in(uc, port, size, _):
    if port == 0x3fd:
        return 0x60
    if 0x3f8 <= port <= 0x3ff:
        return 0
    return (1 << (8 * size)) - 1


def port_out(uc, port, size, value, _):
    if port == 0x3fb:
        lcr[0] = value
    elif port == 0x3f8 and not lcr[0] & 0x80:
        line.append(value & 0xff)
        if value == 10:
            sys.stdout.write(line.decode('latin1'))
            sys.stdout.flush()
            line.clear()


uc.hook_add(UC_HOOK_INSN, port_in, None, 1, 0, UC_X86_INS_IN)
uc.hook_add(UC_HOOK_INSN, port_out, None, 1, 0, UC_X86_INS_OUT)


def virt_to_phys(va):
    table = uc.reg_read(UC_X86_REG_CR3) & 0x000ffffffffff000
    for shift in (39, 30, 21, 12):
        e = struct.unpack('<Q', bytes(uc.mem_read(table + ((va >> shift) & 511) * 8, 8)))[0]
        if not e & 1:
            raise RuntimeError('0x%x not mapped' % va)
        addr = e & 0x000ffffffffff000
        if shift in (30, 21) and e & 0x80:
            return (addr & ~((1 << shift) - 1)) | (va & ((1 << shift) - 1))
        table = addr
    return table | (va & 0xfff)


# QEMU's "exception while delivering an exception" state (env->old_exception) is only cleared by its own
# delivery, which Unicorn skips: find that field in the saved context and clear it after each delivery,
# or the second #PF is turned into a double fault.
initial_context = bytes(uc.context_save())
old_exception_offsets = []


def clear_old_exception(intno):
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    if not old_exception_offsets:
        old_exception_offsets.extend(
            o for o in range(0, len(raw) - 4, 4)
            if struct.unpack_from('<i', initial_context, o)[0] == -1 and struct.unpack_from('<i', raw, o)[0] == intno)
    for o in old_exception_offsets:
        struct.pack_into('<i', raw, o, -1)
    patched = UcContext.__new__(UcContext)
    patched.__setstate__((bytes(raw), ctx.size, ctx.arch, ctx.mode))
    uc.context_restore(patched)


WITH_ERROR_CODE = {8, 10, 11, 12, 13, 14, 17}


def deliver(uc, intno, _):
    if intno == 8:
        intno = 14  # see clear_old_exception: the first delivery may still be reported as a double fault
    _, base, _, _ = uc.reg_read(UC_X86_REG_IDTR)
    lo, _sel, _ist, kind, mid, hi, _ = struct.unpack('<HHBBHII', bytes(uc.mem_read(virt_to_phys(base + intno * 16), 16)))
    if not kind & 0x80:
        print('[emulate-boot] exception %d with no IDT gate at rip 0x%x' % (intno, uc.reg_read(UC_X86_REG_RIP)))
        uc.emu_stop()
        return
    rsp = uc.reg_read(UC_X86_REG_RSP)
    frame = [uc.reg_read(UC_X86_REG_SS), rsp, uc.reg_read(UC_X86_REG_RFLAGS), uc.reg_read(UC_X86_REG_CS),
             uc.reg_read(UC_X86_REG_RIP)]
    if intno in WITH_ERROR_CODE:
        frame.append(0)
    top = (rsp & ~0xf) - 8 * len(frame)
    uc.mem_write(virt_to_phys(top), struct.pack('<%dQ' % len(frame), *reversed(frame)))
    uc.reg_write(UC_X86_REG_RSP, top)
    uc.reg_write(UC_X86_REG_RFLAGS, frame[2] & ~0x200)
    uc.reg_write(UC_X86_REG_RIP, lo | (mid << 16) | (hi << 32))
    clear_old_exception(intno)


uc.hook_add(UC_HOOK_INTR, deliver)

try:
    uc.emu_start(r['rip'], 0xffffffffffffffff, count=limit)
    why = 'stopped'
except UcError as e:
    why = str(e)
sys.stdout.write(line.decode('latin1'))
print('\n[emulate-boot] %s at rip 0x%x' % (why, uc.reg_read(UC_X86_REG_RIP)))
