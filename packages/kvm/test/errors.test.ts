import { describe, expect, it } from 'vitest';
import { Kvm, KvmError } from '../src/index.js';

describe('KvmError', () => {
  it('names the operation and the errno', () => {
    const error = new KvmError('ioctl KVM_SET_SREGS', 22);
    expect(error.message).toBe('ioctl KVM_SET_SREGS failed: EINVAL (Invalid argument)');
    expect(error).toMatchObject({ errno: 22, code: 'EINVAL', operation: 'ioctl KVM_SET_SREGS', name: 'KvmError' });
    expect(new KvmError('ioctl KVM_RUN', 14, { detail: 'vCPU 0' }).message).toBe(
      'ioctl KVM_RUN failed: EFAULT (Bad address): vCPU 0',
    );
  });
});

describe('Kvm.open errors', () => {
  it('explains a missing /dev/kvm', () => {
    expect(() => Kvm.open('/nonexistent/kvm')).toThrow(
      '/nonexistent/kvm not found: this host has no KVM (load kvm_intel/kvm_amd or run on a host with virtualization)',
    );
  });

  it('explains a permission problem', () => {
    // A read-only sysfs file refuses O_RDWR with EACCES even for root.
    let error: unknown;
    try {
      Kvm.open('/sys/kernel/notes');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(KvmError);
    expect((error as KvmError).code).toBe('EACCES');
    expect((error as KvmError).message).toMatch(/permission denied: add your user to the kvm group/);
  });

  it('reports other open errors with errno', () => {
    expect(() => Kvm.open('/etc/passwd/kvm')).toThrow('open /etc/passwd/kvm failed: ENOTDIR (Not a directory)');
  });

  it('names the ioctl when the device is not KVM', () => {
    expect(() => Kvm.open('/dev/null')).toThrow(
      'ioctl KVM_GET_API_VERSION failed: ENOTTY (Inappropriate ioctl for device)',
    );
  });
});
