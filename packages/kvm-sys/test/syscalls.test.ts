// Native entry points that need no /dev/kvm: errno reporting, the ioctl allow list and buffer checks,
// guest-memory mappings, eventfds and the fd watcher.
import { describe, expect, it } from 'vitest';
import { addon, ioctls } from '../src/index.js';

const native = addon();
const EAGAIN = 11;
const ENOENT = 2;
const ENOTTY = 25;

describe('errno helpers', () => {
  it('name and describe errno values', () => {
    expect(native.errnoName(22)).toBe('EINVAL');
    expect(native.errnoMessage(22)).toBe('Invalid argument');
    expect(native.errnoName(ENOENT)).toBe('ENOENT');
  });

  it('open returns -errno', () => {
    expect(native.open('/nonexistent/kvm')).toBe(-ENOENT);
  });
});

describe('ioctl allow list', () => {
  const fd = native.eventfd(0);

  it('refuses requests that are not KVM ioctls hype uses', () => {
    expect(() => native.ioctl(fd, 0x5401 /* TCGETS */, new Uint8Array(64))).toThrow(/not on @hype\/kvm-sys's allow list/);
  });

  it('refuses KVM_RUN and KVM_SET_USER_MEMORY_REGION (host pointer)', () => {
    expect(() => native.ioctl(fd, ioctls.KVM_RUN)).toThrow(/allow list/);
    expect(() => native.ioctl(fd, ioctls.KVM_SET_USER_MEMORY_REGION, new Uint8Array(32))).toThrow(/allow list/);
  });

  it('requires a buffer as large as the struct', () => {
    expect(() => native.ioctl(fd, ioctls.KVM_GET_REGS, new Uint8Array(143))).toThrow(/holds 143 bytes, the kernel uses 144/);
    expect(() => native.ioctl(fd, ioctls.KVM_GET_REGS, 5)).toThrow(TypeError);
  });

  it('sizes variable-length structs from their count', () => {
    const msrs = new Uint8Array(8 + 16);
    new DataView(msrs.buffer).setUint32(0, 2, true); // nmsrs = 2 needs 8 + 2*16 bytes
    expect(() => native.ioctl(fd, ioctls.KVM_GET_MSRS, msrs)).toThrow(/holds 24 bytes, the kernel uses 40/);
    const cpuid = new Uint8Array(8 + 40 * 3);
    new DataView(cpuid.buffer).setUint32(0, 4, true);
    expect(() => native.ioctl(fd, ioctls.KVM_SET_CPUID2, cpuid)).toThrow(/the kernel uses 168/);
  });

  it('refuses KVM_ENABLE_CAP for capabilities whose arguments are host pointers', () => {
    const cap = new Uint8Array(104);
    new DataView(cap.buffer).setUint32(0, 163, true); // KVM_CAP_HYPERV_ENLIGHTENED_VMCS
    expect(() => native.ioctl(fd, ioctls.KVM_ENABLE_CAP, cap)).toThrow(/takes a host pointer and is refused/);
    new DataView(cap.buffer).setUint32(0, 204, true); // KVM_CAP_EXIT_ON_EMULATION_FAILURE: passed on
    expect(native.ioctl(fd, ioctls.KVM_ENABLE_CAP, cap)).toBe(-ENOTTY);
  });

  it('returns -errno from the kernel (an eventfd is not a KVM fd)', () => {
    expect(native.ioctl(fd, ioctls.KVM_GET_REGS, new Uint8Array(144))).toBe(-ENOTTY);
    expect(native.ioctl(fd, ioctls.KVM_CHECK_EXTENSION, 0)).toBe(-ENOTTY);
    expect(native.ioctl(fd, ioctls.KVM_GET_API_VERSION)).toBe(-ENOTTY);
  });
});

describe('Mapping (guest memory)', () => {
  const page = native.pageSize;

  it('maps zeroed memory that JS can write and read', () => {
    const mapping = new native.Mapping(2 * 1024 * 1024);
    const bytes = new Uint8Array(mapping.buffer!);
    expect(bytes.length).toBe(2 * 1024 * 1024);
    expect(bytes[12345]).toBe(0);
    bytes[12345] = 0xab;
    bytes[bytes.length - 1] = 0xcd;
    expect(new Uint8Array(mapping.buffer!)[12345]).toBe(0xab);
    expect(mapping.buffer).toBe(mapping.buffer); // one ArrayBuffer per mapping
    mapping.close();
  });

  it('close() detaches every view before unmapping, and is idempotent', () => {
    const mapping = new native.Mapping(page);
    const buffer = mapping.buffer!;
    const bytes = new Uint8Array(buffer);
    bytes[0] = 1;
    mapping.close();
    expect(mapping.closed).toBe(true);
    expect(mapping.buffer).toBeUndefined();
    expect(buffer.byteLength).toBe(0);
    expect(bytes.length).toBe(0);
    expect(bytes[0]).toBeUndefined(); // reads nothing rather than freed memory
    expect(() => mapping.close()).not.toThrow();
  });

  it('maps exactly 4 GiB (the Node 20 limit) lazily', () => {
    const size = 4 * 1024 * 1024 * 1024;
    const mapping = new native.Mapping(size);
    const bytes = new Uint8Array(mapping.buffer!);
    expect(bytes.length).toBe(size);
    bytes[size - 1] = 7;
    expect(bytes[size - 1]).toBe(7);
    mapping.close();
  });

  it('rejects sizes that are zero, above 4 GiB or not page multiples', () => {
    expect(() => new native.Mapping(0)).toThrow(RangeError);
    expect(() => new native.Mapping(4 * 1024 * 1024 * 1024 + page)).toThrow(/4 GiB/);
    expect(() => new native.Mapping(page + 1)).toThrow(/multiple of the page size/);
  });

  it('reports mmap failures with errno', () => {
    expect(() => new native.Mapping(page, 987654)).toThrow(/mmap failed: EBADF/);
  });

  it('registers only addon Mappings as guest memory', () => {
    const fake = { buffer: new ArrayBuffer(page), size: page, closed: false, close() {} };
    expect(() => native.setUserMemoryRegion(0, 0, 0, 0, fake)).toThrow(/setUserMemoryRegion: mapping must be a Mapping created by @hype\/kvm-sys/);
    const mapping = new native.Mapping(page);
    const eventFd = native.eventfd(0);
    expect(native.setUserMemoryRegion(eventFd, 0, 0, 0, mapping)).toBe(-ENOTTY);
    native.removeUserMemoryRegion(mapping); // nothing registered: no-op
    mapping.close();
    expect(() => native.setUserMemoryRegion(eventFd, 0, 0, 0, mapping)).toThrow(/open anonymous Mapping/);
    native.close(eventFd);
  });
});

describe('eventfd', () => {
  it('accumulates writes and reads (then resets) the counter', () => {
    const fd = native.eventfd(0);
    expect(fd).toBeGreaterThan(2);
    expect(native.eventfdRead(fd)).toBe(-EAGAIN);
    expect(native.eventfdWrite(fd, 3)).toBe(0);
    expect(native.eventfdWrite(fd, 4n)).toBe(0);
    expect(native.eventfdRead(fd)).toBe(7n);
    expect(native.eventfdRead(fd)).toBe(-EAGAIN);
    expect(native.close(fd)).toBe(0);
    expect(native.eventfdWrite(fd, 1)).toBe(-9); // EBADF
  });

  it('starts from an initial value', () => {
    const fd = native.eventfd(5);
    expect(native.eventfdRead(fd)).toBe(5n);
    native.close(fd);
  });
});

describe('FdWatcher', () => {
  it('delivers each wake-up of an eventfd with its drained count', async () => {
    const fd = native.eventfd(0);
    const seen: (bigint | number)[] = [];
    let wake: () => void = () => {};
    const watcher = new native.FdWatcher(fd, true, (value) => {
      seen.push(value);
      wake();
    });
    const next = () => new Promise<void>((resolve) => (wake = resolve));
    let arrived = next();
    native.eventfdWrite(fd, 2);
    native.eventfdWrite(fd, 3);
    await arrived;
    expect(seen).toEqual([5n]);
    arrived = next();
    native.eventfdWrite(fd, 1);
    await arrived;
    expect(seen).toEqual([5n, 1n]);
    expect(native.eventfdRead(fd)).toBe(-EAGAIN); // drained by the watcher
    watcher.close();
    expect(watcher.closed).toBe(true);
    native.eventfdWrite(fd, 9);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual([5n, 1n]);
    expect(native.eventfdRead(fd)).toBe(9n);
    native.close(fd);
  });

  it('runs microtasks queued by the callback right after it', async () => {
    const fd = native.eventfd(0);
    const order: string[] = [];
    const done = new Promise<void>((resolve) => {
      const watcher = new native.FdWatcher(fd, true, () => {
        order.push('callback');
        void Promise.resolve().then(() => {
          order.push('microtask');
          watcher.close();
          resolve();
        });
      });
    });
    native.eventfdWrite(fd, 1);
    await done;
    expect(order).toEqual(['callback', 'microtask']);
    native.close(fd);
  });

  it('passes poll events when not draining', async () => {
    const fd = native.eventfd(1);
    const events = await new Promise<bigint | number>((resolve) => {
      const watcher = new native.FdWatcher(fd, false, (value) => {
        watcher.close();
        resolve(value);
      });
    });
    expect(events).toBe(1); // UV_READABLE
    native.close(fd);
  });
});
