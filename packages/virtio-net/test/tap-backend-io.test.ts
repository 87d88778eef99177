// The TAP backend's logic over a scripted fd: node:fs (open/read/write/close) and @hype/kvm-sys (the
// addon's tunSetIff, FdWatcher and errno names) are replaced by fakes, so every errno path runs without
// privileges or /dev/net/tun: the one-line open errors, the per-wake-up read budget, pause/resume of the
// watcher, writes that drop and writes that close, and when callbacks run. tap-backend.test.ts runs the
// same backend against the kernel.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const fake = vi.hoisted(() => {
  const ERRNO_NAMES: Record<number, string> = {
    1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY',
    19: 'ENODEV', 22: 'EINVAL', 25: 'ENOTTY', 77: 'EBADFD', 105: 'ENOBUFS',
  };
  const errnoError = (errno: number) => Object.assign(new Error(`${ERRNO_NAMES[errno]}: fake`), { errno: -errno, code: ERRNO_NAMES[errno] });

  class FakeWatcher {
    closed = false;
    constructor(
      readonly fd: number,
      readonly drainEventfd: boolean,
      readonly callback: (result: bigint | number) => void,
    ) {
      state.watchers.push(this);
    }
    close(): void {
      this.closed = true;
    }
    ref(): void {}
    unref(): void {}
    /** The event loop saw the fd readable (1 = UV_READABLE), or a poll error (negative). */
    fire(result = 1): void {
      if (this.closed) throw new Error('a closed watcher fired');
      this.callback(result);
    }
  }

  const state = {
    fd: 42,
    /** What tunSetIff returns: -errno, or (undefined) the name with a %d numbered 7. */
    tunResult: undefined as number | undefined,
    /** errno openSync fails with, if any. */
    openErrno: undefined as number | undefined,
    /** What each readSync gives: a frame, or an errno to fail with. Empty: EAGAIN. */
    reads: [] as Array<Uint8Array | number>,
    /** errno for each writeSync in turn (0 or missing: success). */
    writeErrnos: [] as number[],
    written: [] as Uint8Array[],
    opened: [] as Array<{ path: string; flags: number }>,
    closedFds: [] as number[],
    tunCalls: [] as Array<[number, string, number]>,
    watchers: [] as FakeWatcher[],
    reset() {
      Object.assign(state, { tunResult: undefined, openErrno: undefined, reads: [], writeErrnos: [], written: [], opened: [], closedFds: [], tunCalls: [], watchers: [] });
    },
  };

  const addon = {
    tunSetIff(fd: number, name: string, flags: number) {
      state.tunCalls.push([fd, name, flags]);
      return state.tunResult ?? name.replace('%d', '7');
    },
    errnoName: (errno: number) => ERRNO_NAMES[errno] ?? `E${errno}`,
    errnoMessage: (errno: number) => `message ${errno}`,
    FdWatcher: FakeWatcher,
  };

  const fs = {
    openSync(path: string, flags: number) {
      state.opened.push({ path, flags });
      if (state.openErrno !== undefined) throw errnoError(state.openErrno);
      return state.fd;
    },
    readSync(fd: number, buffer: Uint8Array) {
      expect(fd).toBe(state.fd);
      const next = state.reads.shift();
      if (next === undefined) throw errnoError(11);
      if (typeof next === 'number') throw errnoError(next);
      buffer.set(next);
      return next.length;
    },
    writeSync(fd: number, frame: Uint8Array) {
      expect(fd).toBe(state.fd);
      const errno = state.writeErrnos.shift() ?? 0;
      if (errno !== 0) throw errnoError(errno);
      state.written.push(frame.slice());
      return frame.length;
    },
    closeSync(fd: number) {
      state.closedFds.push(fd);
    },
  };
  return { state, addon, fs };
});

vi.mock('node:fs', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:fs')>()), ...fake.fs }));
vi.mock('@hype/kvm-sys', async (importOriginal) => ({ TunFlag: (await importOriginal<typeof import('@hype/kvm-sys')>()).TunFlag, addon: () => fake.addon }));

const { TapBackend, TapError, openTapBackend } = await import('../node/index.js');
const { constants } = await import('node:fs');

const state = fake.state;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const frame = (n: number, tag: number) => new Uint8Array(n).fill(tag);

beforeEach(() => state.reset());
afterEach(() => vi.restoreAllMocks());

describe('opening', () => {
  it('opens the clone device non-blocking and attaches with IFF_TAP | IFF_NO_PI; the name is the kernel\'s', async () => {
    const tap = await openTapBackend('tap%d');
    expect(state.opened).toEqual([{ path: '/dev/net/tun', flags: constants.O_RDWR | constants.O_NONBLOCK }]);
    expect(state.tunCalls).toEqual([[42, 'tap%d', 0x0002 | 0x1000]]);
    expect(tap.name).toBe('tap7');
    expect(tap.fd).toBe(42);
    expect(tap).toBeInstanceOf(TapBackend);
    expect(state.watchers).toEqual([]); // nothing read before someone listens
    tap.close();
  });

  const attachErrors: Array<[string, number, RegExp]> = [
    ['EPERM', 1, /^virtio-net: cannot open TAP interface tap0: permission denied: creating a TAP interface needs CAP_NET_ADMIN \(run as root\), or create it beforehand with `ip tuntap add dev tap0 mode tap user \$USER` and then that user can open it$/],
    ['EACCES', 13, /tap0: permission denied: .*CAP_NET_ADMIN.*`ip tuntap add dev tap0 mode tap user \$USER`/],
    ['EBUSY', 16, /^virtio-net: cannot open TAP interface tap0: tap0 is in use by another process$/],
    ['EINVAL', 22, /tap0: tap0 exists and is not a TAP interface/],
    ['ENOTTY', 25, /tap0: TUNSETIFF failed: ENOTTY \(message 25\)$/],
  ];
  for (const [code, errno, message] of attachErrors) {
    it(`TUNSETIFF ${code}: a one-line TapError naming the interface; the fd is closed`, async () => {
      state.tunResult = -errno;
      const error = await openTapBackend('tap0').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TapError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('\n');
      expect(error).toMatchObject({ code, errno });
      expect(state.closedFds).toEqual([42]);
    });
  }

  it('open(2) errors: no device node (modprobe tun), no driver, no permission on the node', async () => {
    const message = async (errno: number, devicePath?: string) => {
      state.openErrno = errno;
      const error = (await openTapBackend('tap0', { devicePath }).catch((e: unknown) => e)) as InstanceType<typeof TapError>;
      expect(error).toBeInstanceOf(TapError);
      expect(error.errno).toBe(errno);
      return error.message;
    };
    expect(await message(2)).toBe(
      'virtio-net: cannot open TAP interface tap0: /dev/net/tun does not exist: the kernel needs the tun module (`modprobe tun`; in a container, pass the device in)',
    );
    expect(await message(2, '/x/tun')).toMatch(/: \/x\/tun does not exist: .*modprobe tun/);
    expect(await message(19)).toMatch(/no driver behind it: the kernel needs the tun module \(`modprobe tun`\)$/);
    expect(await message(13)).toMatch(/permission denied on \/dev\/net\/tun/);
    expect(await message(5)).toMatch(/cannot open \/dev\/net\/tun: EIO \(message 5\)$/);
    expect(state.tunCalls).toEqual([]);
  });
});

describe('reading', () => {
  it('watches the fd only while someone listens and it is not paused; FdWatcher without eventfd draining', async () => {
    const tap = await openTapBackend('tap0');
    const off = tap.onFrame(() => {});
    expect(state.watchers).toHaveLength(1);
    expect(state.watchers[0]).toMatchObject({ fd: 42, drainEventfd: false, closed: false });
    const off2 = tap.onFrame(() => {});
    expect(state.watchers).toHaveLength(1);
    off();
    expect(state.watchers[0].closed).toBe(false);
    off2();
    expect(state.watchers[0].closed).toBe(true);
    expect(tap.reading).toBe(false);
    tap.close();
  });

  it('reads at most framesPerWakeup frames per wake-up, each its own copy, in order', async () => {
    const tap = await openTapBackend('tap0', { framesPerWakeup: 4 });
    const got: Uint8Array[] = [];
    tap.onFrame((f) => got.push(f));
    state.reads.push(...Array.from({ length: 10 }, (_, i) => frame(60 + i, i)));
    const w = state.watchers[0];
    w.fire();
    expect(got).toHaveLength(4);
    w.fire();
    expect(got).toHaveLength(8);
    w.fire(); // 2 frames, then EAGAIN
    expect(got.map((f) => f.length)).toEqual([60, 61, 62, 63, 64, 65, 66, 67, 68, 69]);
    got.forEach((f, i) => expect(f.every((b) => b === i)).toBe(true));
    expect(new Set(got.map((f) => f.buffer)).size).toBe(10); // nobody shares the read buffer
    expect(got[0].buffer.byteLength).toBe(60);
    expect(tap.framesReceived).toBe(10);
    w.fire(); // spurious wake-up: EAGAIN at once
    expect(tap.framesReceived).toBe(10);
    expect(tap.closed).toBe(false);
    tap.close();
  });

  it('pause() from inside onFrame stops at that frame and stops the watcher; resume() starts a new one and delivers nothing itself', async () => {
    const tap = await openTapBackend('tap0');
    const got: Uint8Array[] = [];
    tap.onFrame((f) => {
      got.push(f);
      if (got.length === 2) tap.pause();
    });
    state.reads.push(frame(60, 1), frame(60, 2), frame(60, 3));
    state.watchers[0].fire();
    expect(got).toHaveLength(2);
    expect(state.watchers[0].closed).toBe(true);
    expect(tap.isPaused).toBe(true);
    tap.pause(); // twice: no-op
    tap.resume();
    expect(got).toHaveLength(2); // never from inside resume()
    expect(state.watchers).toHaveLength(2);
    tap.resume(); // not paused: no-op
    expect(state.watchers).toHaveLength(2);
    state.watchers[1].fire();
    expect(got.map((f) => f[0])).toEqual([1, 2, 3]);
    tap.close();
  });

  it('a read error other than EAGAIN closes the backend with it, on a later turn', async () => {
    const tap = await openTapBackend('tap0');
    const closes: Array<Error | undefined> = [];
    tap.onClose((e) => closes.push(e));
    tap.onFrame(() => {});
    state.reads.push(frame(60, 1), 77);
    state.watchers[0].fire();
    expect(tap.closed).toBe(true);
    expect(tap.framesReceived).toBe(1);
    expect(state.watchers[0].closed).toBe(true);
    expect(state.closedFds).toEqual([42]);
    expect(closes).toEqual([]);
    await turn();
    expect(closes).toHaveLength(1);
    expect(closes[0]).toBeInstanceOf(TapError);
    expect(closes[0]?.message).toBe('virtio-net: TAP interface tap0: read failed: EBADFD (message 77): the interface was deleted');
  });

  it('a poll error closes the backend (after reading what read(2) still gives)', async () => {
    const tap = await openTapBackend('tap0');
    const closes: Array<Error | undefined> = [];
    tap.onClose((e) => closes.push(e));
    const got: Uint8Array[] = [];
    tap.onFrame((f) => got.push(f));
    state.reads.push(frame(60, 1));
    state.watchers[0].fire(-9);
    expect(got).toHaveLength(1);
    expect(tap.closed).toBe(true);
    await turn();
    expect(closes[0]?.message).toBe('virtio-net: TAP interface tap0: poll failed: EBADF (message 9)');
  });
});

describe('writing', () => {
  it('one write(2) per frame; send() always says true and onWritable never fires', async () => {
    const tap = await openTapBackend('tap0');
    let writable = 0;
    tap.onWritable(() => writable++);
    for (let i = 0; i < 100; i++) expect(tap.send(frame(60 + i, i))).toBe(true);
    expect(state.written.map((f) => f.length)).toEqual(Array.from({ length: 100 }, (_, i) => 60 + i));
    expect(tap.framesSent).toBe(100);
    await turn();
    expect(writable).toBe(0);
    tap.close();
  });

  it('EAGAIN, ENOBUFS, EIO (interface down), ENOMEM, EINVAL: the frame is dropped and counted, the backend stays open', async () => {
    const tap = await openTapBackend('tap0');
    const closes: unknown[] = [];
    tap.onClose((e) => closes.push(e));
    state.writeErrnos.push(11, 105, 5, 12, 22, 0);
    const reasons: Array<string | undefined> = [];
    for (let i = 0; i < 6; i++) {
      expect(tap.send(frame(60, i))).toBe(true);
      reasons.push(tap.lastDropReason);
    }
    expect(reasons).toEqual(['EAGAIN', 'ENOBUFS', 'EIO', 'ENOMEM', 'EINVAL', 'EINVAL']);
    expect([tap.framesDropped, tap.framesSent, tap.closed]).toEqual([5, 1, false]);
    await turn();
    expect(closes).toEqual([]);
    tap.close();
  });

  it('any other write error closes the backend with it: onClose on a later turn, never inside send()', async () => {
    const tap = await openTapBackend('tap0');
    tap.onFrame(() => {});
    const closes: Array<Error | undefined> = [];
    tap.onClose((e) => closes.push(e));
    state.writeErrnos.push(77);
    expect(tap.send(frame(60, 1))).toBe(true);
    expect(closes).toEqual([]);
    expect([tap.closed, tap.framesDropped, tap.lastDropReason, tap.fd]).toEqual([true, 1, 'EBADFD', -1]);
    expect(state.watchers[0].closed).toBe(true);
    expect(tap.send(frame(60, 2))).toBe(true); // after close: dropped, nobody waits
    expect([tap.framesDropped, tap.lastDropReason]).toEqual([2, 'closed']);
    await turn();
    expect(closes).toHaveLength(1);
    expect(closes[0]).toMatchObject({ name: 'TapError', code: 'EBADFD', errno: 77 });
    expect(closes[0]?.message).toBe('virtio-net: TAP interface tap0: write failed: EBADFD (message 77): the interface was deleted');
    expect(state.closedFds).toEqual([42]);
  });
});

describe('close', () => {
  it('stops the watcher and closes the fd once; onClose() without an error on a later turn; listeners cleared', async () => {
    const tap = await openTapBackend('tap0');
    tap.onFrame(() => {});
    const closes: unknown[] = [];
    tap.onClose((e) => closes.push(e));
    tap.close();
    tap.close();
    expect(state.closedFds).toEqual([42]);
    expect(state.watchers[0].closed).toBe(true);
    expect(closes).toEqual([]);
    await turn();
    expect(closes).toEqual([undefined]);
    tap.resume();
    tap.onFrame(() => {});
    expect(state.watchers).toHaveLength(1); // a closed backend never watches again
    await turn();
    expect(closes).toEqual([undefined]);
  });
});

describe('options', () => {
  it('framesPerWakeup in [1, 65536], devicePath a non-empty string, checked before anything is opened', async () => {
    await expect(openTapBackend('tap0', { framesPerWakeup: 0 })).rejects.toThrow(RangeError);
    await expect(openTapBackend('tap0', { framesPerWakeup: 1.5 })).rejects.toThrow(/framesPerWakeup 1.5 must be an integer/);
    await expect(openTapBackend('tap0', { framesPerWakeup: 65537 })).rejects.toThrow(RangeError);
    await expect(openTapBackend('tap0', { devicePath: '' })).rejects.toThrow(TypeError);
    await expect(openTapBackend('a/b')).rejects.toThrow(RangeError);
    expect(state.opened).toEqual([]);
  });
});
