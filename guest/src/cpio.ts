/**
 * A writer for the SVR4 "newc" cpio format, the only format the Linux initramfs unpacker reads
 * (Documentation/driver-api/early-userspace/buffer-format.rst, `init/initramfs.c`).
 *
 * Each member: a 110-byte ASCII header, the NUL-terminated name padded so that header+name is a
 * multiple of 4 bytes, then the data padded to a multiple of 4. The archive ends with a member named
 * `TRAILER!!!`.
 */

/** The header fields in order; each is 8 ASCII hex digits after the 6-byte magic. */
export const NEWC_FIELDS = [
  'ino',
  'mode',
  'uid',
  'gid',
  'nlink',
  'mtime',
  'filesize',
  'devmajor',
  'devminor',
  'rdevmajor',
  'rdevminor',
  'namesize',
  'check',
] as const;
export type NewcField = (typeof NEWC_FIELDS)[number];

export const NEWC_MAGIC = '070701';
export const NEWC_MAGIC_LENGTH = 6;
export const NEWC_FIELD_LENGTH = 8;
export const NEWC_HEADER_LENGTH = NEWC_MAGIC_LENGTH + NEWC_FIELDS.length * NEWC_FIELD_LENGTH; // 110
export const NEWC_ALIGNMENT = 4;
export const NEWC_TRAILER_NAME = 'TRAILER!!!';

/** File type bits of `st_mode` (include/uapi/linux/stat.h). */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type CpioEntry =
  | { type: 'file'; path: string; data: Uint8Array | string; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { type: 'dir'; path: string; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { type: 'symlink'; path: string; target: string; uid?: number; gid?: number; mtime?: number }
  | {
      type: 'chardev' | 'blockdev';
      path: string;
      major: number;
      minor: number;
      mode?: number;
      uid?: number;
      gid?: number;
      mtime?: number;
    }
  | { type: 'fifo'; path: string; mode?: number; uid?: number; gid?: number; mtime?: number };

const MAX_FIELD = 0xffff_ffff;

export function alignUp(n: number, alignment = NEWC_ALIGNMENT): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Archive member names are relative (`bin/sh`), the way `cpio -o` and the kernel's gen_init_cpio write them. */
export function normalizeArchivePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new Error(`cpio: path ${JSON.stringify(path)} contains '..'`);
  if (parts.length === 0) return '.';
  const name = parts.join('/');
  if (name === NEWC_TRAILER_NAME) throw new Error(`cpio: ${NEWC_TRAILER_NAME} is reserved for the archive trailer`);
  if (name.includes('\0')) throw new Error(`cpio: path ${JSON.stringify(path)} contains a NUL byte`);
  return name;
}

export interface NewcHeader {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  filesize: number;
  devmajor: number;
  devminor: number;
  rdevmajor: number;
  rdevminor: number;
  namesize: number;
  check: number;
}

export function encodeNewcHeader(header: NewcHeader): string {
  let out = NEWC_MAGIC;
  for (const field of NEWC_FIELDS) {
    const value = header[field];
    if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) {
      throw new Error(`cpio: header field ${field}=${value} does not fit 8 hex digits`);
    }
    out += value.toString(16).toUpperCase().padStart(NEWC_FIELD_LENGTH, '0');
  }
  return out;
}

/** Parses one header (for tests and for reading archives back); throws on a bad magic or digit. */
export function decodeNewcHeader(bytes: Uint8Array, offset = 0): NewcHeader {
  if (offset + NEWC_HEADER_LENGTH > bytes.length) throw new Error(`cpio: truncated header at offset ${offset}`);
  const text = new TextDecoder('latin1').decode(bytes.subarray(offset, offset + NEWC_HEADER_LENGTH));
  if (!text.startsWith(NEWC_MAGIC)) throw new Error(`cpio: bad magic ${JSON.stringify(text.slice(0, 6))} at offset ${offset}`);
  const header = {} as NewcHeader;
  NEWC_FIELDS.forEach((field, i) => {
    const start = NEWC_MAGIC_LENGTH + i * NEWC_FIELD_LENGTH;
    const digits = text.slice(start, start + NEWC_FIELD_LENGTH);
    if (!/^[0-9a-fA-F]{8}$/.test(digits)) throw new Error(`cpio: field ${field} is not hex (${digits}) at offset ${offset}`);
    header[field] = parseInt(digits, 16);
  });
  return header;
}

function modeOf(entry: CpioEntry): number {
  switch (entry.type) {
    case 'file':
      return S_IFREG | ((entry.mode ?? 0o644) & 0o7777);
    case 'dir':
      return S_IFDIR | ((entry.mode ?? 0o755) & 0o7777);
    case 'symlink':
      return S_IFLNK | 0o777;
    case 'chardev':
      return S_IFCHR | ((entry.mode ?? 0o600) & 0o7777);
    case 'blockdev':
      return S_IFBLK | ((entry.mode ?? 0o600) & 0o7777);
    case 'fifo':
      return S_IFIFO | ((entry.mode ?? 0o644) & 0o7777);
  }
}

function dataOf(entry: CpioEntry): Uint8Array {
  if (entry.type === 'file') return typeof entry.data === 'string' ? Buffer.from(entry.data, 'utf8') : entry.data;
  if (entry.type === 'symlink') {
    if (entry.target.length === 0) throw new Error(`cpio: symlink ${entry.path} has an empty target`);
    return Buffer.from(entry.target, 'utf8');
  }
  return new Uint8Array(0);
}

export interface NewcOptions {
  /** Inode number of the first member; members get consecutive numbers (the trailer gets 0). */
  firstIno?: number;
  /** Default mtime (seconds) for members that do not set one. 0 keeps archives reproducible. */
  mtime?: number;
}

/**
 * Encodes members into one newc archive. Members are written in the order given, so parents must
 * come before their children (the kernel creates each member as it reads it). Duplicate paths are
 * rejected: the kernel would silently let the later one win.
 */
export function encodeNewc(entries: readonly CpioEntry[], options: NewcOptions = {}): Buffer {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const push = (chunk: Uint8Array) => {
    chunks.push(chunk);
    length += chunk.length;
  };
  const pad = () => {
    const padding = alignUp(length) - length;
    if (padding > 0) push(new Uint8Array(padding));
  };
  const member = (name: string, header: Omit<NewcHeader, 'namesize' | 'filesize' | 'check'>, data: Uint8Array) => {
    const nameBytes = Buffer.from(name + '\0', 'utf8');
    push(
      Buffer.from(
        encodeNewcHeader({ ...header, filesize: data.length, namesize: nameBytes.length, check: 0 }),
        'latin1',
      ),
    );
    push(nameBytes);
    pad();
    if (data.length > 0) {
      push(data);
      pad();
    }
  };

  const seen = new Set<string>();
  let ino = options.firstIno ?? 1;
  for (const entry of entries) {
    const name = normalizeArchivePath(entry.path);
    if (seen.has(name)) throw new Error(`cpio: duplicate member ${name}`);
    seen.add(name);
    const isDevice = entry.type === 'chardev' || entry.type === 'blockdev';
    if (isDevice) {
      for (const [what, n] of [['major', entry.major], ['minor', entry.minor]] as const) {
        if (!Number.isInteger(n) || n < 0 || n > MAX_FIELD) throw new Error(`cpio: ${name} has a bad device ${what} ${n}`);
      }
    }
    member(
      name,
      {
        ino: ino++,
        mode: modeOf(entry),
        uid: entry.uid ?? 0,
        gid: entry.gid ?? 0,
        nlink: entry.type === 'dir' ? 2 : 1,
        mtime: entry.mtime ?? options.mtime ?? 0,
        devmajor: 0,
        devminor: 0,
        rdevmajor: isDevice ? entry.major : 0,
        rdevminor: isDevice ? entry.minor : 0,
      },
      dataOf(entry),
    );
  }
  member(
    NEWC_TRAILER_NAME,
    { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0 },
    new Uint8Array(0),
  );
  return Buffer.concat(chunks, length);
}

export interface DecodedMember {
  name: string;
  header: NewcHeader;
  data: Buffer;
}

/** Reads a newc archive back into members (stops at the trailer). Used by tests and tooling. */
export function decodeNewc(archive: Uint8Array): DecodedMember[] {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const members: DecodedMember[] = [];
  let offset = 0;
  for (;;) {
    const header = decodeNewcHeader(buf, offset);
    const nameStart = offset + NEWC_HEADER_LENGTH;
    const nameEnd = nameStart + header.namesize;
    if (header.namesize === 0 || nameEnd > buf.length) throw new Error(`cpio: bad name size at offset ${offset}`);
    if (buf[nameEnd - 1] !== 0) throw new Error(`cpio: name at offset ${offset} is not NUL-terminated`);
    const name = buf.toString('utf8', nameStart, nameEnd - 1);
    const dataStart = alignUp(nameEnd);
    const dataEnd = dataStart + header.filesize;
    if (dataEnd > buf.length) throw new Error(`cpio: member ${name} runs past the end of the archive`);
    if (name === NEWC_TRAILER_NAME) return members;
    members.push({ name, header, data: buf.subarray(dataStart, dataEnd) });
    offset = alignUp(dataEnd);
  }
}
