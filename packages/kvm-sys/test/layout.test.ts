// The TypeScript struct layouts, ioctl numbers and constants against what the C compiler computed from
// <linux/kvm.h> when the addon was built. Needs no /dev/kvm.
import { describe, expect, it } from 'vitest';
import { addon, constantsByMacroName, ioctlName, ioctls, layouts, pioReadMirrorLayout, pioReadMirrorWord } from '../src/index.js';

describe('struct layouts match <linux/kvm.h>', () => {
  const native = addon().layout();

  it('covers the same structs', () => {
    expect(Object.keys(layouts).sort()).toEqual(Object.keys(native).sort());
  });

  for (const [struct, fields] of Object.entries(layouts)) {
    it(`${struct}: size and every field offset`, () => {
      expect(fields).toEqual(native[struct]);
    });
  }
});

describe('ioctl numbers match the KVM_* macros', () => {
  const native = addon().ioctls();

  it('covers the same ioctls', () => {
    expect(Object.keys(ioctls).sort()).toEqual(Object.keys(native).sort());
  });

  for (const [name, number] of Object.entries(ioctls)) {
    it(`${name} = 0x${number.toString(16)}`, () => {
      expect(number).toBe(native[name]);
    });
  }

  it('names request numbers for error messages', () => {
    expect(ioctlName(ioctls.KVM_SET_SREGS)).toBe('KVM_SET_SREGS');
    expect(ioctlName(0x1234)).toBe('0x1234');
  });
});

describe('constants match the KVM_* macros', () => {
  it('every constant, under its macro name', () => {
    expect(constantsByMacroName()).toEqual(addon().constants());
  });
});

describe('the port-I/O read mirror layout matches native/pio_read_mirror.h', () => {
  it('every number', () => {
    expect({ ...pioReadMirrorLayout }).toEqual(addon().pioReadMirrorLayout);
  });

  it('packs valid bit, port and value into one word', () => {
    expect(pioReadMirrorWord(0x3fd, 0x60) >>> 0).toBe(0x8003_fd60);
    expect(pioReadMirrorWord(0xffff, 0x1ff) >>> 0).toBe(0x80ff_ffff);
  });
});
