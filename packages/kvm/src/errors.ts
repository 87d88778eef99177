import { addon, ioctlName } from '@hype/kvm-sys';

/** A failed KVM ioctl or system call: `ioctl KVM_SET_SREGS failed: EINVAL (Invalid argument)`. */
export class KvmError extends Error {
  override readonly name = 'KvmError';
  /** Positive errno. */
  readonly errno: number;
  /** `EINVAL`, ... */
  readonly code: string;
  /** What failed: `ioctl KVM_SET_SREGS`, `eventfd write`, ... */
  readonly operation: string;

  /** `message` replaces the default `<operation> failed: ECODE (description)[: detail]`. */
  constructor(operation: string, errno: number, options: { detail?: string; message?: string } = {}) {
    const native = addon();
    const code = native.errnoName(errno);
    const detail = options.detail ? `: ${options.detail}` : '';
    super(options.message ?? `${operation} failed: ${code} (${native.errnoMessage(errno)})${detail}`);
    this.errno = errno;
    this.code = code;
    this.operation = operation;
  }
}

/** Throws a KvmError for a negative (-errno) result of a native call; returns the result otherwise. */
export function check(result: number, operation: string, detail?: string): number {
  if (result < 0) throw new KvmError(operation, -result, { detail });
  return result;
}

/** ioctl through the allow-listed native entry point, throwing `ioctl KVM_... failed: ...` on error. */
export function ioctl(fd: number, request: number, arg?: number | bigint | ArrayBufferView): number {
  let result = addon().ioctl(fd, request, arg);
  // A signal arriving meanwhile (a profiler's, a child's SIGCHLD) makes some ioctls fail with EINTR having
  // done nothing, KVM_CREATE_VM among them: they are made again. (KVM_RUN does not come through here.)
  for (let retries = 0; result === -EINTR && retries < MAX_EINTR_RETRIES; retries++) result = addon().ioctl(fd, request, arg);
  if (result < 0) throw new KvmError(`ioctl ${ioctlName(request)}`, -result);
  return result;
}

const EINTR = 4;
const MAX_EINTR_RETRIES = 100;

/** Thrown for use of a closed Kvm/Vm/Vcpu/EventFd. */
export function closedError(what: string): Error {
  return new Error(`${what} is closed`);
}
