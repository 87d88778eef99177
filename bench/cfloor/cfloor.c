// cfloor: a minimal C VMM, the floor hype's boot is measured against (bench/cfloor.mjs, issue 15).
//
// One vCPU on the calling thread, no other threads, no event loop: KVM_RUN in a loop, each exit completed
// in C before the next KVM_RUN. It boots a Linux ELF vmlinux on the machine hype builds for
// `hype run --rng off`: the same memory layout, boot_params, e820 map, MP table, GDT, page tables and
// 64-bit entry state as @hype/linux-loader, the same KVM set-up, CPUID policy, MSRs, FPU and LAPIC pins
// as @hype/vm, and the devices the default guest uses:
//
//   in-kernel    irqchip (PIC, IOAPIC, LAPIC) and PIT (KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2)
//   0x3f8-0x3ff  16550A UART: the register model of packages/vm/src/devices/uart8250.ts without host
//                input; THR to stdout (--console serial), IRQ 4 as a level computed after every access
//   0xd0000000   virtio-console over virtio-mmio, IRQ 5 (--console hvc, hvc0): hype's first virtio slot;
//                the transmit queue is served on the notify exit, no input
//   0xf4         hype's debug port: a byte written ends the VM with that exit status
//   0xf5         boot markers, timestamped
//   anything else: reads return all-ones, writes are dropped (port I/O and MMIO alike)
//
// What hype has and this lacks (the default guest uses none of it in a boot to its test mode): the i8042
// (reset only), the ACPI power registers (the guest kernel has no ACPI), other virtio devices, console
// input, the host-quirk layer for kvm_pvm hosts, more than one vCPU, RAM above 3 GiB, bzImage kernels.
//
// Usage: cfloor --kernel VMLINUX [--initrd FILE] [--cmdline TEXT] [--mem MIB] [--console serial|hvc]
// The guest console goes to stdout (batched: at a line end, when 4 KiB are waiting, or 2 ms after the
// first waiting byte). Timing events go to stderr, one line each, like `hype run --timings`:
//   cfloor-timing {"event":"<name>","ms":<ms since process start>[,"value":N][,"reason":"..."][,"exits":{...}]}
// for vm-ram (KVM and guest RAM ready), vm-loaded (kernel, initrd and boot tables written), vm-created,
// first-kvm-run, boot-marker (every write to 0xf5, with the exits counted so far) and
// exit. The exit status is the guest's power-off status (0xf4); 3 for a shutdown (triple fault) or a
// halt, 125 when the VMM fails. HYPE_KVM_DEVICE names the KVM device (default /dev/kvm), as for hype.
//
// Build: gcc -O2 -Wall -Wextra -Werror -o cfloor cfloor.c   (bench/cfloor.mjs does, once per source)
#define _GNU_SOURCE
#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

// ---- guest-physical layout (packages/linux-loader/src/layout.ts) ----
#define GDT_ADDR 0x500
#define IDT_ADDR 0x540
#define ZERO_PAGE 0x7000
#define BOOT_STACK 0x8ff0
#define PML4_ADDR 0x9000
#define PDPT_ADDR 0xa000
#define PD_ADDR 0xb000
#define IDENTITY_MAP_GIB 4
#define CMDLINE_ADDR 0x20000
#define CMDLINE_LIMIT 0x9fc00
#define MPTABLE_ADDR 0x9fc00
#define LOW_RAM_END 0x9fc00
#define HIGH_MEM_START 0x100000
#define PCI_HOLE_START 0xc0000000ULL
#define IOAPIC_ADDR 0xfec00000U
#define LAPIC_ADDR 0xfee00000U
#define TSS_ADDR 0xfffbd000U
#define IDENTITY_MAP_ADDR 0xfffbc000ULL
// The synthetic 2.12 setup header for an ELF vmlinux (linux-loader zero-page.ts SYNTHETIC_HEADER).
#define SYNTH_VERSION 0x020c
#define SYNTH_INITRD_ADDR_MAX 0x7fffffffU
#define SYNTH_CMDLINE_SIZE 2047
#define SYNTH_KERNEL_ALIGNMENT 0x200000
#define HEAP_END_PTR 0xfe00

// ---- devices ----
#define COM1_PORT 0x3f8
#define COM1_IRQ 4
#define DEBUG_POWEROFF_PORT 0xf4
#define DEBUG_MARKER_PORT 0xf5
#define MAX_MARKERS 1024

#define EXIT_VMM_FAILURE 125
#define EXIT_SHUTDOWN 3

static struct timespec t_origin;
static uint8_t *ram;
static uint64_t ram_size;
static int vm_fd = -1;
static bool hvc_console;  // --console hvc: the console is virtio-console (hvc0), the UART's output goes nowhere

// ms since the process started (as performance.now() in node: from a point early in start-up).
__attribute__((constructor)) static void take_origin(void) { clock_gettime(CLOCK_MONOTONIC, &t_origin); }

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t_origin.tv_sec) * 1e3 + (double)(t.tv_nsec - t_origin.tv_nsec) / 1e6;
}

static void out_flush(void);

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...) {
  out_flush();
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "cfloor: %s\n", msg);
  exit(EXIT_VMM_FAILURE);
}

/** Exits to this process so far, by kind (in the boot-marker and exit events: where the boot's time goes). */
static struct {
  unsigned long long all, pio, uart, mmio, virtio_notify, irq_line;
} count;

static void timing(const char *event, int value, const char *reason) {
  char line[512];
  int n = snprintf(line, sizeof line, "cfloor-timing {\"event\":\"%s\",\"ms\":%.3f", event, now_ms());
  if (value >= 0) n += snprintf(line + n, sizeof line - (size_t)n, ",\"value\":%d", value);
  if (reason) n += snprintf(line + n, sizeof line - (size_t)n, ",\"reason\":\"%s\"", reason);
  if (count.all > 0)
    n += snprintf(line + n, sizeof line - (size_t)n,
                  ",\"exits\":{\"all\":%llu,\"pio\":%llu,\"uart\":%llu,\"mmio\":%llu,\"virtioNotify\":%llu},\"irqLineCalls\":%llu",
                  count.all, count.pio, count.uart, count.mmio, count.virtio_notify, count.irq_line);
  n += snprintf(line + n, sizeof line - (size_t)n, "}\n");
  if (write(2, line, (size_t)n) < 0) { /* nothing to do */ }
}

// ---- console output: batched, flushed at a line end, when full, and at most ~2 ms after a byte ----
static uint8_t out_buf[4096];
static size_t out_len;
static double out_since;

static void out_flush(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t n = write(1, out_buf + off, out_len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // stdout gone: drop the output, keep the guest running
    off += (size_t)n;
  }
  out_len = 0;
}

static void out_byte(uint8_t b) {
  if (out_len == 0) {
    out_since = now_ms();
    // If the guest goes quiet after a partial line, this alarm interrupts KVM_RUN so it still goes out.
    struct itimerval once = {.it_value = {.tv_sec = 0, .tv_usec = 2000}};
    setitimer(ITIMER_REAL, &once, NULL);
  }
  out_buf[out_len++] = b;
  if (b == '\n' || out_len == sizeof out_buf) out_flush();
}

static void out_maybe_flush(void) {
  if (out_len > 0 && now_ms() - out_since >= 2.0) out_flush();
}

static struct kvm_run *vcpu_run;

// The alarm may fire just before KVM_RUN is entered: immediate_exit makes that KVM_RUN return EINTR at once.
static void on_alarm(int sig) {
  (void)sig;
  if (vcpu_run) vcpu_run->immediate_exit = 1;
}

// ---- 16550A UART (packages/vm/src/devices/uart8250.ts, without host input) ----
enum { IER_RDI = 1, IER_THRI = 2, IER_RLSI = 4, IER_MSI = 8 };
enum { IIR_NO_INT = 1, IIR_MSI = 0, IIR_THRI = 2, IIR_RDI = 4, IIR_RLSI = 6, IIR_FIFO_ENABLED = 0xc0 };
enum { FCR_ENABLE_FIFO = 1, FCR_CLEAR_RCVR = 2, FCR_CLEAR_XMIT = 4 };
enum { LCR_DLAB = 0x80 };
enum { MCR_DTR = 1, MCR_RTS = 2, MCR_OUT1 = 4, MCR_OUT2 = 8, MCR_LOOP = 0x10 };
enum { LSR_DR = 1, LSR_OE = 2, LSR_ERRORS = 0x1e, LSR_THRE = 0x20, LSR_TEMT = 0x40 };
enum { MSR_DCTS = 1, MSR_DDSR = 2, MSR_TERI = 4, MSR_DDCD = 8, MSR_DELTAS = 0x0f, MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80 };
#define UART_FIFO_SIZE 64

static struct {
  uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
  bool thr_pending, irq;
  uint8_t rx[UART_FIFO_SIZE];  // filled only in loopback mode
  unsigned rx_len;
} uart = {
    .lcr = 0x03,
    .mcr = MCR_OUT2,
    .lsr = LSR_THRE | LSR_TEMT,
    .msr = MSR_DCD | MSR_DSR | MSR_CTS,
    .dll = 0x0c,
};

static unsigned uart_rx_capacity(void) { return (uart.fcr & FCR_ENABLE_FIFO) ? UART_FIFO_SIZE : 1; }

static uint8_t uart_modem_inputs(void) {
  if (!(uart.mcr & MCR_LOOP)) return MSR_DCD | MSR_DSR | MSR_CTS;
  uint8_t v = 0;
  if (uart.mcr & MCR_RTS) v |= MSR_CTS;
  if (uart.mcr & MCR_DTR) v |= MSR_DSR;
  if (uart.mcr & MCR_OUT1) v |= MSR_RI;
  if (uart.mcr & MCR_OUT2) v |= MSR_DCD;
  return v;
}

static uint8_t uart_iir(void) {
  if ((uart.ier & IER_RLSI) && (uart.lsr & LSR_ERRORS)) return IIR_RLSI;
  if ((uart.ier & IER_RDI) && (uart.lsr & LSR_DR)) return IIR_RDI;
  if ((uart.ier & IER_THRI) && uart.thr_pending) return IIR_THRI;
  if ((uart.ier & IER_MSI) && (uart.msr & MSR_DELTAS)) return IIR_MSI;
  return IIR_NO_INT;
}

static void irq_line(uint32_t irq, bool level) {
  struct kvm_irq_level l = {.irq = irq, .level = level ? 1 : 0};
  count.irq_line++;
  if (ioctl(vm_fd, KVM_IRQ_LINE, &l) < 0) die("KVM_IRQ_LINE: %s", strerror(errno));
}

static void uart_update_irq(void) {
  bool level = uart_iir() != IIR_NO_INT;
  if (level != uart.irq) {
    uart.irq = level;
    irq_line(COM1_IRQ, level);
  }
}

static uint8_t uart_read_reg(unsigned reg) {
  switch (reg) {
    case 0:
      if (uart.lcr & LCR_DLAB) return uart.dll;
      {
        uint8_t byte = 0;
        if (uart.rx_len > 0) {
          byte = uart.rx[0];
          memmove(uart.rx, uart.rx + 1, --uart.rx_len);
        }
        if (uart.rx_len == 0) uart.lsr &= (uint8_t)~LSR_DR;
        return byte;
      }
    case 1:
      return (uart.lcr & LCR_DLAB) ? uart.dlm : uart.ier;
    case 2: {
      uint8_t iir = uart_iir();
      if ((iir & 0x0f) == IIR_THRI) uart.thr_pending = false;
      return iir | ((uart.fcr & FCR_ENABLE_FIFO) ? IIR_FIFO_ENABLED : 0);
    }
    case 3:
      return uart.lcr;
    case 4:
      return uart.mcr;
    case 5: {
      uint8_t lsr = uart.lsr;
      uart.lsr &= (uint8_t)~LSR_ERRORS;
      return lsr;
    }
    case 6: {
      uint8_t msr = uart.msr;
      uart.msr &= (uint8_t)~MSR_DELTAS;
      return msr;
    }
    case 7:
      return uart.scr;
    default:
      return 0xff;
  }
}

static void uart_transmit(uint8_t byte) {
  uart.thr_pending = false;
  if (uart.mcr & MCR_LOOP) {
    if (uart.rx_len < uart_rx_capacity()) uart.rx[uart.rx_len++] = byte;
    else uart.lsr |= LSR_OE;
    uart.lsr |= LSR_DR;
  } else if (!hvc_console) {
    out_byte(byte);  // with --console hvc the UART's output goes nowhere, as in hype
  }
  // Sent at once: THR is empty again.
  if (uart.ier & IER_THRI) uart.thr_pending = true;
}

static void uart_write_reg(unsigned reg, uint8_t value) {
  switch (reg) {
    case 0:
      if (uart.lcr & LCR_DLAB) uart.dll = value;
      else uart_transmit(value);
      return;
    case 1:
      if (uart.lcr & LCR_DLAB) {
        uart.dlm = value;
      } else {
        uint8_t changed = (uart.ier ^ value) & IER_THRI;
        uart.ier = value & 0x0f;
        // Enabling THRI with THR empty raises the THRE interrupt again (Linux's THRE probes rely on it).
        if (changed) uart.thr_pending = (uart.ier & IER_THRI) && (uart.lsr & LSR_THRE);
      }
      return;
    case 2: {
      bool clear = ((uart.fcr ^ value) & FCR_ENABLE_FIFO) || (value & FCR_CLEAR_RCVR);
      if (clear) {
        uart.rx_len = 0;
        uart.lsr &= (uint8_t)~LSR_DR;
      }
      uart.fcr = value & (uint8_t)~(FCR_CLEAR_RCVR | FCR_CLEAR_XMIT);
      return;
    }
    case 3:
      uart.lcr = value;
      return;
    case 4: {
      uint8_t before = uart_modem_inputs();
      uart.mcr = value & 0x1f;
      uint8_t after = uart_modem_inputs();
      uint8_t deltas = 0;
      if ((before ^ after) & MSR_CTS) deltas |= MSR_DCTS;
      if ((before ^ after) & MSR_DSR) deltas |= MSR_DDSR;
      if ((before & MSR_RI) && !(after & MSR_RI)) deltas |= MSR_TERI;
      if ((before ^ after) & MSR_DCD) deltas |= MSR_DDCD;
      uart.msr = after | (uart.msr & MSR_DELTAS) | deltas;
      return;
    }
    case 7:
      uart.scr = value;
      return;
    default:
      return;  // LSR, MSR: read-only
  }
}

// ---- virtio-console over virtio-mmio (hvc0; --console hvc) ----
// virtio 1.2 §4.2.2 (MMIO v2), §2.7 (split virtqueues), §5.3 (console). One port, no input: the transmit
// queue is served synchronously on the notify exit (the guest's hvc driver spins until the buffer is
// used), the receive queue's buffers are never used. Offered features: VERSION_1 only (hype also offers
// INDIRECT_DESC, EVENT_IDX and EMERG_WRITE; the console driver sends direct single buffers and gets no
// input here, so the guest's path is the same).
#define VIRTIO_BASE 0xd0000000ULL  // hype's first virtio-mmio slot (packages/vm/src/machine/virtio-slots.ts)
#define VIRTIO_IRQ 5
#define VIRTIO_QUEUE_MAX 256
enum { VQ_RX = 0, VQ_TX = 1, VQ_COUNT = 2 };
enum { VRING_DESC_F_NEXT = 1, VRING_DESC_F_WRITE = 2, VRING_AVAIL_F_NO_INTERRUPT = 1 };

static struct {
  uint32_t status, dev_features_sel, drv_features_sel, queue_sel, interrupt_status;
  uint64_t drv_features;
  struct {
    uint32_t num, ready;
    uint64_t desc, driver, device;
    uint16_t last_avail;
  } q[VQ_COUNT];
} vio;

static void *gpa(uint64_t addr, uint64_t len, const char *what);

static void virtio_interrupt(void) {
  vio.interrupt_status |= 1;  // used buffer notification
  irq_line(VIRTIO_IRQ, true);  // an edge, as hype's irqfd
  irq_line(VIRTIO_IRQ, false);
}

static void virtio_transmit(void) {
  typeof(vio.q[0]) *q = &vio.q[VQ_TX];
  if (!q->ready || q->num == 0 || !(vio.status & 4)) return;
  volatile uint16_t *avail = gpa(q->driver, 4 + 2 * (uint64_t)q->num, "avail ring");
  volatile uint16_t *used = gpa(q->device, 4 + 8 * (uint64_t)q->num, "used ring");
  uint8_t *desc = gpa(q->desc, 16 * (uint64_t)q->num, "descriptor table");
  bool any = false;
  while (q->last_avail != avail[1]) {
    uint16_t head = avail[2 + q->last_avail % q->num];
    uint16_t i = head;
    for (unsigned hops = 0; hops < q->num; hops++) {
      if (i >= q->num) die("virtio-console: descriptor %u out of range", i);
      uint64_t addr;
      uint32_t len;
      uint16_t flags, next;
      memcpy(&addr, desc + 16 * i, 8);
      memcpy(&len, desc + 16 * i + 8, 4);
      memcpy(&flags, desc + 16 * i + 12, 2);
      memcpy(&next, desc + 16 * i + 14, 2);
      if (!(flags & VRING_DESC_F_WRITE)) {
        const uint8_t *bytes = gpa(addr, len, "transmit buffer");
        for (uint32_t b = 0; b < len; b++) out_byte(bytes[b]);
      }
      if (!(flags & VRING_DESC_F_NEXT)) break;
      i = next;
    }
    uint16_t u = used[1];
    volatile uint32_t *elem = (volatile uint32_t *)(used + 2) + 2 * (u % q->num);
    elem[0] = head;
    elem[1] = 0;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    used[1] = (uint16_t)(u + 1);
    q->last_avail++;
    any = true;
  }
  if (any && !(avail[0] & VRING_AVAIL_F_NO_INTERRUPT)) virtio_interrupt();
}

static uint32_t virtio_read(uint64_t off) {
  typeof(vio.q[0]) *q = vio.queue_sel < VQ_COUNT ? &vio.q[vio.queue_sel] : NULL;
  switch (off) {
    case 0x000: return 0x74726976;  // "virt"
    case 0x004: return 2;  // version
    case 0x008: return 3;  // console
    case 0x00c: return 0;  // vendor
    case 0x010: return vio.dev_features_sel == 1 ? 1 : 0;  // VERSION_1 (bit 32)
    case 0x034: return q ? VIRTIO_QUEUE_MAX : 0;
    case 0x044: return q ? q->ready : 0;
    case 0x060: return vio.interrupt_status;
    case 0x070: return vio.status;
    case 0x0fc: return 0;  // config generation
    default: return 0;  // config space (cols, rows: not offered) and write-only registers
  }
}

static void set_half(uint64_t *v, bool high, uint32_t x) {
  *v = high ? (*v & 0xffffffffULL) | ((uint64_t)x << 32) : (*v & ~0xffffffffULL) | x;
}

static void virtio_write(uint64_t off, uint32_t v) {
  typeof(vio.q[0]) *q = vio.queue_sel < VQ_COUNT ? &vio.q[vio.queue_sel] : NULL;
  switch (off) {
    case 0x014: vio.dev_features_sel = v; return;
    case 0x020: if (vio.drv_features_sel < 2) set_half(&vio.drv_features, vio.drv_features_sel == 1, v); return;
    case 0x024: vio.drv_features_sel = v; return;
    case 0x030: vio.queue_sel = v; return;
    case 0x038: if (q && v <= VIRTIO_QUEUE_MAX && v > 0 && !(v & (v - 1))) q->num = v; return;
    case 0x044: if (q) q->ready = v & 1; return;
    case 0x050:
      count.virtio_notify++;
      if (v == VQ_TX) virtio_transmit();
      return;  // receive: no input to give
    case 0x064: vio.interrupt_status &= ~v; return;
    case 0x070:
      if (v == 0) memset(&vio, 0, sizeof vio);  // reset
      else vio.status = v;
      if (vio.status & 4) virtio_transmit();
      return;
    case 0x080: if (q) set_half(&q->desc, false, v); return;
    case 0x084: if (q) set_half(&q->desc, true, v); return;
    case 0x090: if (q) set_half(&q->driver, false, v); return;
    case 0x094: if (q) set_half(&q->driver, true, v); return;
    case 0x0a0: if (q) set_half(&q->device, false, v); return;
    case 0x0a4: if (q) set_half(&q->device, true, v); return;
    default: return;  // config space writes (emerg_wr: not offered)
  }
}

static void mmio(uint64_t addr, bool is_write, uint8_t *data, uint32_t len) {
  if (hvc_console && addr >= VIRTIO_BASE && addr + len <= VIRTIO_BASE + 0x1000 && len <= 4) {
    uint64_t off = addr - VIRTIO_BASE;
    if (off >= 0x100) {  // device config: bytewise, reads 0
      if (!is_write) memset(data, 0, len);
      return;
    }
    if (len != 4) {  // registers are 32-bit
      if (!is_write) memset(data, 0xff, len);
      return;
    }
    uint32_t v;
    if (is_write) memcpy(&v, data, 4), virtio_write(off, v);
    else v = virtio_read(off), memcpy(data, &v, 4);
    return;
  }
  if (!is_write) memset(data, 0xff, len);  // no device: all-ones
}

// ---- the end of the VM ----
static unsigned markers;

__attribute__((noreturn)) static void finish(int status, const char *reason) {
  out_flush();
  timing("exit", -1, reason);
  exit(status);
}

// ---- port I/O and MMIO ----
/** One element of a port-I/O exit: `size` bytes at `data`, to the device whose range holds all of them. */
static void pio(uint16_t port, bool is_write, uint8_t *data, unsigned size) {
  if (port >= COM1_PORT && port + size <= COM1_PORT + 8) {
    for (unsigned i = 0; i < size; i++) {
      if (is_write) uart_write_reg(port - COM1_PORT + i, data[i]);
      else data[i] = uart_read_reg(port - COM1_PORT + i);
    }
    uart_update_irq();
    return;
  }
  if (port >= DEBUG_POWEROFF_PORT && port + size <= DEBUG_MARKER_PORT + 1) {
    if (!is_write) {
      memset(data, 0xff, size);
    } else if (port == DEBUG_POWEROFF_PORT) {
      char reason[64];
      snprintf(reason, sizeof reason, "poweroff status %u", data[0]);
      finish(data[0], reason);
    } else if (markers < MAX_MARKERS) {
      markers++;
      timing("boot-marker", data[0], NULL);
    }
    return;
  }
  if (!is_write) memset(data, 0xff, size);  // no device: all-ones
}

// ---- boot set-up (packages/linux-loader/src/boot.ts) ----
static void *gpa(uint64_t addr, uint64_t len, const char *what) {
  if (addr > ram_size || len > ram_size - addr) die("%s at 0x%llx (+0x%llx) lies outside guest RAM", what, (unsigned long long)addr, (unsigned long long)len);
  return ram + addr;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void pread_all(int fd, void *dst, size_t len, off_t off, const char *name) {
  uint8_t *p = dst;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("%s: read failed: %s", name, n < 0 ? strerror(errno) : "file too short");
    p += n;
    len -= (size_t)n;
    off += n;
  }
}

/** Loads an ELF64 x86-64 vmlinux at its physical addresses; returns the physical entry point and the image end. */
static uint64_t load_elf(const char *path, uint64_t *end) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("kernel %s: %s", path, strerror(errno));
  Elf64_Ehdr eh;
  pread_all(fd, &eh, sizeof eh, 0, path);
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC)
    die("kernel %s: not an x86-64 ELF vmlinux", path);
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64) die("kernel %s: bad program headers", path);
  Elf64_Phdr ph[64];
  pread_all(fd, ph, sizeof(Elf64_Phdr) * eh.e_phnum, (off_t)eh.e_phoff, path);
  uint64_t entry = 0, lo = UINT64_MAX, hi = 0;
  bool entry_found = false;
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0) continue;
    if (ph[i].p_filesz > ph[i].p_memsz) die("kernel %s: segment %u p_filesz > p_memsz", path, i);
    uint8_t *dst = gpa(ph[i].p_paddr, ph[i].p_memsz, "kernel segment");
    pread_all(fd, dst, ph[i].p_filesz, (off_t)ph[i].p_offset, path);
    memset(dst + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
    if (ph[i].p_paddr < lo) lo = ph[i].p_paddr;
    if (ph[i].p_paddr + ph[i].p_memsz > hi) hi = ph[i].p_paddr + ph[i].p_memsz;
  }
  if (lo < HIGH_MEM_START) die("kernel %s: loads below 1 MiB", path);
  // vmlinux links ENTRY(phys_startup_64): e_entry is physical; otherwise translate through its segment.
  for (unsigned i = 0; i < eh.e_phnum && !entry_found; i++) {
    if (ph[i].p_type != PT_LOAD) continue;
    if (eh.e_entry >= ph[i].p_paddr && eh.e_entry < ph[i].p_paddr + ph[i].p_memsz) entry = eh.e_entry, entry_found = true;
  }
  for (unsigned i = 0; i < eh.e_phnum && !entry_found; i++) {
    if (ph[i].p_type != PT_LOAD) continue;
    if (eh.e_entry >= ph[i].p_vaddr && eh.e_entry < ph[i].p_vaddr + ph[i].p_memsz) entry = ph[i].p_paddr + (eh.e_entry - ph[i].p_vaddr), entry_found = true;
  }
  if (!entry_found) die("kernel %s: entry point in no loadable segment", path);
  close(fd);
  *end = hi;
  return entry;
}

/** The initrd at the highest page-aligned address below min(RAM end, initrd_addr_max + 1). */
static void load_initrd(const char *path, uint64_t kernel_end, uint64_t *addr, uint64_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("initrd %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size == 0) die("initrd %s: empty or unreadable", path);
  uint64_t top = ram_size < (uint64_t)SYNTH_INITRD_ADDR_MAX + 1 ? ram_size : (uint64_t)SYNTH_INITRD_ADDR_MAX + 1;
  if ((uint64_t)st.st_size > top) die("initrd %s does not fit in guest RAM", path);
  uint64_t at = (top - (uint64_t)st.st_size) & ~0xfffULL;
  if (at < ((kernel_end + 0xfff) & ~0xfffULL)) die("initrd %s does not fit above the kernel: use more --mem", path);
  pread_all(fd, gpa(at, (uint64_t)st.st_size, "initrd"), (size_t)st.st_size, 0, path);
  close(fd);
  *addr = at;
  *size = (uint64_t)st.st_size;
}

static void write_boot_params(uint64_t initrd_addr, uint64_t initrd_size) {
  struct boot_params *bp = gpa(ZERO_PAGE, sizeof *bp, "zero page");
  memset(bp, 0, sizeof *bp);
  bp->hdr.boot_flag = 0xaa55;
  bp->hdr.header = 0x53726448;  // "HdrS"
  bp->hdr.version = SYNTH_VERSION;
  bp->hdr.loadflags = LOADED_HIGH | CAN_USE_HEAP;
  bp->hdr.initrd_addr_max = SYNTH_INITRD_ADDR_MAX;
  bp->hdr.kernel_alignment = SYNTH_KERNEL_ALIGNMENT;
  bp->hdr.cmdline_size = SYNTH_CMDLINE_SIZE;
  bp->hdr.type_of_loader = 0xff;
  bp->hdr.heap_end_ptr = HEAP_END_PTR;
  bp->hdr.cmd_line_ptr = CMDLINE_ADDR;
  bp->ext_cmd_line_ptr = 0;  // the kernel reads the command line up to its NUL
  bp->hdr.ramdisk_image = (uint32_t)initrd_addr;
  bp->hdr.ramdisk_size = (uint32_t)initrd_size;
  bp->ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
  bp->ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
  // e820 (linux-loader e820.ts): RAM below the EBDA, the EBDA and BIOS hole reserved, RAM from 1 MiB.
  struct boot_e820_entry *e = bp->e820_table;
  e[0] = (struct boot_e820_entry){.addr = 0, .size = LOW_RAM_END, .type = 1};
  e[1] = (struct boot_e820_entry){.addr = LOW_RAM_END, .size = HIGH_MEM_START - LOW_RAM_END, .type = 2};
  e[2] = (struct boot_e820_entry){.addr = HIGH_MEM_START, .size = ram_size - HIGH_MEM_START, .type = 1};
  bp->e820_entries = 3;
}

static uint8_t checksum(const uint8_t *p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; i++) s = (uint8_t)(s + p[i]);
  return (uint8_t)(0x100 - s);
}

/** The MP floating pointer and configuration table for one vCPU (linux-loader mptable.ts). */
static void write_mptable(void) {
  const unsigned cpus = 1, irqs = 24, ioapic_id = cpus;
  const size_t size = 16 + 44 + cpus * 20 + 8 + 8 + irqs * 8 + 2 * 8;
  uint8_t *b = gpa(MPTABLE_ADDR, size, "MP table");
  memset(b, 0, size);
  uint8_t *table = b + 16, *p = table + 44;
  unsigned entries = 0;
  for (unsigned id = 0; id < cpus; id++, p += 20, entries++) {
    p[0] = 0;  // MP_PROCESSOR
    p[1] = (uint8_t)id;
    p[2] = 0x14;  // APIC version
    p[3] = 1 | (id == 0 ? 2 : 0);  // enabled, boot processor
    put32(p + 4, 0x600);  // family 6
    put32(p + 8, 0x201);  // APIC, FPU
  }
  p[0] = 1;  // MP_BUS
  memcpy(p + 2, "ISA   ", 6);
  p += 8, entries++;
  p[0] = 2;  // MP_IOAPIC
  p[1] = (uint8_t)ioapic_id;
  p[2] = 0x14;
  p[3] = 1;  // usable
  put32(p + 4, IOAPIC_ADDR);
  p += 8, entries++;
  for (unsigned irq = 0; irq < irqs; irq++, p += 8, entries++) {
    p[0] = 3;  // MP_INTSRC, mp_INT, default polarity, ISA bus 0
    p[5] = (uint8_t)irq;
    p[6] = (uint8_t)ioapic_id;
    p[7] = (uint8_t)irq;
  }
  p[0] = 4, p[1] = 3, p[6] = 0, p[7] = 0;  // MP_LINTSRC: ExtINT on LINT0 of the boot CPU
  p += 8, entries++;
  p[0] = 4, p[1] = 1, p[6] = 0xff, p[7] = 1;  // NMI on LINT1 of every CPU
  p += 8, entries++;
  memcpy(table, "PCMP", 4);
  put16(table + 4, (uint16_t)(p - table));
  table[6] = 4;  // spec 1.4
  memcpy(table + 8, "HYPE    ", 8);
  memcpy(table + 16, "HYPE VM     ", 12);
  put16(table + 34, (uint16_t)entries);
  put32(table + 36, LAPIC_ADDR);
  table[7] = checksum(table, (size_t)(p - table));
  memcpy(b, "_MP_", 4);
  put32(b + 4, MPTABLE_ADDR + 16);
  b[8] = 1;  // length in paragraphs
  b[9] = 4;
  b[10] = checksum(b, 16);
}

/** GDT (null, unused, code64 0x10, data 0x18, TSS 0x20/0x28), empty IDT, identity page tables (gdt.ts, paging.ts). */
static void write_gdt_and_page_tables(void) {
  const uint64_t gdt[6] = {0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL, 0x008f8b000000ffffULL, 0};
  memcpy(gpa(GDT_ADDR, sizeof gdt, "GDT"), gdt, sizeof gdt);
  memset(gpa(IDT_ADDR, 8, "IDT"), 0, 8);
  uint8_t *pml4 = gpa(PML4_ADDR, 0x1000, "PML4"), *pdpt = gpa(PDPT_ADDR, 0x1000, "PDPT");
  uint8_t *pd = gpa(PD_ADDR, IDENTITY_MAP_GIB * 0x1000, "page directories");
  memset(pml4, 0, 0x1000);
  memset(pdpt, 0, 0x1000);
  put64(pml4, PDPT_ADDR | 3);
  for (unsigned g = 0; g < IDENTITY_MAP_GIB; g++) put64(pdpt + g * 8, (PD_ADDR + g * 0x1000) | 3);
  for (uint64_t i = 0; i < IDENTITY_MAP_GIB * 512; i++) put64(pd + i * 8, (i << 21) | 0x83);
}

// ---- vCPU set-up (packages/vm/src/machine/vcpu-setup.ts, cpu/cpuid.ts, cpu/msrs.ts) ----
#define MAX_CPUID 256

static struct kvm_cpuid_entry2 *find_cpuid(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index) {
  for (uint32_t i = 0; i < c->nent; i++) {
    struct kvm_cpuid_entry2 *e = &c->entries[i];
    if (e->function == fn && (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index)) return e;
  }
  return NULL;
}

static void remove_leaf(struct kvm_cpuid2 *c, uint32_t fn) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < c->nent; i++)
    if (c->entries[i].function != fn) c->entries[n++] = c->entries[i];
  c->nent = n;
}

static struct kvm_cpuid_entry2 *add_leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index, uint32_t flags) {
  if (c->nent >= MAX_CPUID) die("CPUID table full");
  struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
  memset(e, 0, sizeof *e);
  e->function = fn, e->index = index, e->flags = flags;
  return e;
}

/** guestCpuid() for vCPU 0 of 1: the same edits hype makes to KVM's supported set. */
static void guest_cpuid(struct kvm_cpuid2 *c) {
  struct kvm_cpuid_entry2 *l0 = find_cpuid(c, 0, 0);
  char vendor[13] = {0};
  if (l0) memcpy(vendor, &l0->ebx, 4), memcpy(vendor + 4, &l0->edx, 4), memcpy(vendor + 8, &l0->ecx, 4);
  bool intel = strcmp(vendor, "GenuineIntel") == 0;
  bool amd = strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0;
  struct kvm_cpuid_entry2 *l1 = find_cpuid(c, 1, 0);
  if (!l1) die("KVM_GET_SUPPORTED_CPUID returned no leaf 0x1");
  l1->ebx = (l1->ebx & 0x000000ffU) | (8U << 8) | (1U << 16) | (0U << 24);  // CLFLUSH 64, 1 logical CPU, APIC ID 0
  l1->ecx |= (1U << 31) | (1U << 24);  // hypervisor, TSC deadline
  l1->ecx &= ~((1U << 3) | (1U << 5) | (1U << 15) | (1U << 27));  // MONITOR, VMX, PDCM, OSXSAVE
  l1->edx &= ~(1U << 28);  // HTT
  const uint32_t share_mask = 0xfffU << 14;  // EAX[25:14]: sharing; all 0 with one vCPU
  for (uint32_t i = 0; i < c->nent; i++) {
    struct kvm_cpuid_entry2 *e = &c->entries[i];
    bool cache = (intel && e->function == 4) || (amd && e->function == 0x8000001d);
    if (!cache || (e->eax & 0x1f) == 0) continue;
    uint32_t level = (e->eax >> 5) & 7;
    if (level >= 1 && level <= 3) e->eax &= ~share_mask;
    if (intel) e->eax &= ~(0x3fU << 26);  // cores per package - 1 = 0
  }
  struct kvm_cpuid_entry2 *e;
  if (intel && (e = find_cpuid(c, 6, 0))) e->eax &= ~(1U << 1), e->ecx &= ~(1U << 3);
  if ((e = find_cpuid(c, 7, 0))) {
    if (intel) e->ecx &= ~(1U << 5), e->ebx |= (1U << 6) | (1U << 13);
    if (amd) e->edx &= ~(1U << 29);
  }
  if ((e = find_cpuid(c, 0xa, 0))) e->eax = e->ebx = e->ecx = e->edx = 0;
  for (uint32_t fn = 0xb; fn != 0; fn = fn == 0xb ? 0x1f : 0) {
    if (!find_cpuid(c, fn, 0)) continue;
    remove_leaf(c, fn);
    e = add_leaf(c, fn, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
    e->eax = 0, e->ebx = 1, e->ecx = (1U << 8) | 0, e->edx = 0;  // SMT: 1 thread
    e = add_leaf(c, fn, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
    e->eax = 0, e->ebx = 1, e->ecx = (2U << 8) | 1, e->edx = 0;  // core: 1 core
  }
  if (amd) {
    if ((e = find_cpuid(c, 0x80000001, 0))) e->ecx &= ~(1U << 1);  // CmpLegacy
    if ((e = find_cpuid(c, 0x80000008, 0))) e->ecx &= ~(0xffU | (0xfU << 12));  // NC = 0, ApicIdSize = 0
    if ((e = find_cpuid(c, 0x8000001e, 0))) e->eax = 0, e->ebx = 0, e->ecx = 0;
  }
  if (!(e = find_cpuid(c, 0x40000000, 0))) e = add_leaf(c, 0x40000000, 0, 0);
  if (e->eax < 0x40000001) e->eax = 0x40000001;
  e->ebx = 0x4b4d564b, e->ecx = 0x564b4d56, e->edx = 0x4d;  // "KVMKVMKVM\0\0\0"
  if (!(e = find_cpuid(c, 0x40000001, 0))) e = add_leaf(c, 0x40000001, 0, 0);
  e->edx = 0;  // no hints
}

static void kvm_segment_from(struct kvm_segment *s, uint16_t selector, uint8_t type, uint8_t s_bit, uint8_t db, uint8_t l) {
  *s = (struct kvm_segment){
      .base = 0, .limit = 0xffffffff, .selector = selector, .type = type, .present = 1, .dpl = 0,
      .db = db, .s = s_bit, .l = l, .g = 1, .avl = 0, .unusable = 0,
  };
}

static void setup_vcpu(int kvm_fd, int vcpu_fd, uint64_t entry) {
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + MAX_CPUID * sizeof(struct kvm_cpuid_entry2));
  if (!cpuid) die("out of memory");
  cpuid->nent = MAX_CPUID - 8;  // room for the leaves added above
  if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
  guest_cpuid(cpuid);
  if (ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2: %s", strerror(errno));
  struct kvm_cpuid_entry2 *l1 = find_cpuid(cpuid, 1, 0);
  bool mtrr = (l1->edx >> 12) & 1;
  free(cpuid);

  struct {
    struct kvm_msrs h;
    struct kvm_msr_entry e[11];
  } msrs = {0};
  const uint32_t zero[] = {0x174, 0x175, 0x176, 0xc0000081, 0xc0000083, 0xc0000102, 0xc0000084, 0xc0000082, 0x10};
  unsigned n = 0;
  for (unsigned i = 0; i < sizeof zero / sizeof zero[0]; i++) msrs.e[n++] = (struct kvm_msr_entry){.index = zero[i], .data = 0};
  msrs.e[n++] = (struct kvm_msr_entry){.index = 0x1a0, .data = 1};  // MISC_ENABLE: fast strings
  if (mtrr) msrs.e[n++] = (struct kvm_msr_entry){.index = 0x2ff, .data = (1 << 11) | 6};  // MTRRdefType: on, WB
  msrs.h.nmsrs = n;
  if (ioctl(vcpu_fd, KVM_SET_MSRS, &msrs) != (int)n) die("KVM_SET_MSRS failed");

  struct kvm_fpu fpu;
  if (ioctl(vcpu_fd, KVM_GET_FPU, &fpu) < 0) die("KVM_GET_FPU: %s", strerror(errno));
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0) die("KVM_SET_FPU: %s", strerror(errno));

  // LINT0 delivers the 8259's ExtINT, LINT1 NMIs, as the MP table says.
  struct kvm_lapic_state lapic;
  if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0) die("KVM_GET_LAPIC: %s", strerror(errno));
  uint32_t lvt;
  memcpy(&lvt, lapic.regs + 0x350, 4);
  lvt = (lvt & ~(7U << 8)) | (7U << 8);
  memcpy(lapic.regs + 0x350, &lvt, 4);
  memcpy(&lvt, lapic.regs + 0x360, 4);
  lvt = (lvt & ~(7U << 8)) | (4U << 8);
  memcpy(lapic.regs + 0x360, &lvt, 4);
  if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0) die("KVM_SET_LAPIC: %s", strerror(errno));

  // 64-bit entry (boot.rst): flat segments from the boot GDT, paging on, RSI = boot_params.
  struct kvm_sregs sregs;
  if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS: %s", strerror(errno));
  kvm_segment_from(&sregs.cs, 0x10, 0xb, 1, 0, 1);
  kvm_segment_from(&sregs.ds, 0x18, 0x3, 1, 1, 0);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  kvm_segment_from(&sregs.tr, 0x20, 0xb, 0, 0, 0);
  sregs.gdt = (struct kvm_dtable){.base = GDT_ADDR, .limit = 6 * 8 - 1};
  sregs.idt = (struct kvm_dtable){.base = IDT_ADDR, .limit = 7};
  sregs.cr0 = 0x80000011;  // PG, ET, PE
  sregs.cr3 = PML4_ADDR;
  sregs.cr4 = 0x20;  // PAE
  sregs.efer = 0x500;  // LME, LMA
  if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS: %s", strerror(errno));
  struct kvm_regs regs = {.rsi = ZERO_PAGE, .rsp = BOOT_STACK, .rbp = BOOT_STACK, .rip = entry, .rflags = 2};
  if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS: %s", strerror(errno));
}

static void usage(void) {
  fprintf(stderr, "usage: cfloor --kernel VMLINUX [--initrd FILE] [--cmdline TEXT] [--mem MIB] [--console serial|hvc]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *kernel = NULL, *initrd = NULL, *cmdline = "";
  unsigned long mem_mib = 256;
  static const struct option opts[] = {
      {"kernel", required_argument, 0, 'k'}, {"initrd", required_argument, 0, 'i'},
      {"cmdline", required_argument, 0, 'c'}, {"mem", required_argument, 0, 'm'},
      {"console", required_argument, 0, 'C'}, {0, 0, 0, 0},
  };
  for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
    if (o == 'k') kernel = optarg;
    else if (o == 'i') initrd = optarg;
    else if (o == 'c') cmdline = optarg;
    else if (o == 'm') mem_mib = strtoul(optarg, NULL, 10);
    else if (o == 'C' && (strcmp(optarg, "hvc") == 0 || strcmp(optarg, "serial") == 0)) hvc_console = optarg[0] == 'h';
    else usage();
  }
  if (!kernel || optind != argc) usage();
  if (mem_mib < 16 || mem_mib * 1024 * 1024 > PCI_HOLE_START) die("--mem %lu: use 16 to 3072 MiB", mem_mib);
  size_t cmdline_len = strlen(cmdline);
  if (cmdline_len > SYNTH_CMDLINE_SIZE || CMDLINE_ADDR + cmdline_len + 1 > CMDLINE_LIMIT) die("command line too long");

  struct sigaction sa = {.sa_handler = on_alarm};  // no SA_RESTART: the alarm interrupts KVM_RUN
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  const char *kvm_device = getenv("HYPE_KVM_DEVICE");  // as hype: the KVM device, default /dev/kvm
  if (!kvm_device || !*kvm_device) kvm_device = "/dev/kvm";
  int kvm_fd = open(kvm_device, O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0) die("%s: %s", kvm_device, strerror(errno));
  if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) die("KVM API version mismatch");
  vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
  if (vm_fd < 0) die("KVM_CREATE_VM: %s", strerror(errno));
  if (ioctl(vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0) die("KVM_SET_TSS_ADDR: %s", strerror(errno));
  uint64_t identity = IDENTITY_MAP_ADDR;
  if (ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) die("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
  if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP: %s", strerror(errno));
  struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
  if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2: %s", strerror(errno));

  ram_size = (uint64_t)mem_mib << 20;
  ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) die("guest RAM: %s", strerror(errno));
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uint64_t)(uintptr_t)ram};
  if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
  timing("vm-ram", -1, NULL);

  uint64_t kernel_end;
  uint64_t entry = load_elf(kernel, &kernel_end);
  uint64_t initrd_addr = 0, initrd_size = 0;
  if (initrd) load_initrd(initrd, kernel_end, &initrd_addr, &initrd_size);
  memcpy(gpa(CMDLINE_ADDR, cmdline_len + 1, "command line"), cmdline, cmdline_len + 1);
  write_boot_params(initrd_addr, initrd_size);
  write_mptable();
  write_gdt_and_page_tables();
  timing("vm-loaded", -1, NULL);

  int vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
  if (vcpu_fd < 0) die("KVM_CREATE_VCPU: %s", strerror(errno));
  int run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run)) die("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
  struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
  if (run == MAP_FAILED) die("mmap kvm_run: %s", strerror(errno));
  setup_vcpu(kvm_fd, vcpu_fd, entry);
  vcpu_run = run;

  timing("vm-created", -1, NULL);
  timing("first-kvm-run", -1, NULL);
  for (;;) {
    if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        run->immediate_exit = 0;
        out_flush();
        continue;
      }
      die("KVM_RUN: %s", strerror(errno));
    }
    count.all++;
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        count.pio++;
        if (run->io.port >= COM1_PORT && run->io.port < COM1_PORT + 8) count.uart++;
        uint8_t *data = (uint8_t *)run + run->io.data_offset;
        for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
          pio(run->io.port, run->io.direction == KVM_EXIT_IO_OUT, data, run->io.size);
        break;
      }
      case KVM_EXIT_MMIO:
        count.mmio++;
        mmio(run->mmio.phys_addr, run->mmio.is_write, run->mmio.data, run->mmio.len);
        break;
      case KVM_EXIT_INTR:
        break;
      case KVM_EXIT_HLT:  // only without an in-kernel LAPIC
        finish(EXIT_SHUTDOWN, "halt");
      case KVM_EXIT_SHUTDOWN:
        finish(EXIT_SHUTDOWN, "shutdown (triple fault)");
      case KVM_EXIT_SYSTEM_EVENT:
        finish(run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? 0 : EXIT_SHUTDOWN, "system event");
      case KVM_EXIT_FAIL_ENTRY:
        die("KVM_EXIT_FAIL_ENTRY: reason 0x%llx", (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
      case KVM_EXIT_INTERNAL_ERROR:
        die("KVM_EXIT_INTERNAL_ERROR: suberror %u", run->internal.suberror);
      default:
        die("unexpected exit reason %u", run->exit_reason);
    }
    out_maybe_flush();
  }
}
