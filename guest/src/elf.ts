/** ELF checks for the programs the initrd carries (busybox, hype-agent). */
const PT_INTERP = 3;

/** Throws unless `bytes` is an x86-64 ELF executable without a program interpreter (i.e. static). */
export function checkStaticX8664Elf(
  bytes: Uint8Array,
  what: string,
  hint = 'the initrd needs a static busybox (apt-get install busybox-static)',
): void {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${what} is not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${what} is not a 64-bit little-endian ELF file`);
  if (b.readUInt16LE(18) !== 62) throw new Error(`${what} is not an x86-64 binary`);
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  if (phoff + phnum * phentsize > b.length) throw new Error(`${what}: program headers run past the end of the file`);
  for (let i = 0; i < phnum; i++) {
    if (b.readUInt32LE(phoff + i * phentsize) === PT_INTERP) {
      throw new Error(`${what} is dynamically linked; ${hint}`);
    }
  }
}
