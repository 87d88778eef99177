/**
 * A minimal AML encoder (ACPI 6.5 §20.2): just the terms a microVM's DSDT needs. Every function returns
 * the encoded bytes of one term, so terms nest by passing their results to the enclosing term.
 *
 * Integers get the smallest encoding (Zero/One/Ones, then Byte/Word/DWord/QWord prefixes), as iasl emits
 * them with its default optimizations; names and paths are encoded as written (iasl may shorten `\_SB_`
 * to `_SB_` at the root, which means the same thing).
 */
import { ascii, concat } from './bytes.js';

/** AML opcodes and prefixes used here (§20.3). */
export const AmlOp = {
  Zero: 0x00,
  One: 0x01,
  Name: 0x08,
  BytePrefix: 0x0a,
  WordPrefix: 0x0b,
  DWordPrefix: 0x0c,
  StringPrefix: 0x0d,
  QWordPrefix: 0x0e,
  Scope: 0x10,
  Buffer: 0x11,
  Package: 0x12,
  Method: 0x14,
  DualNamePrefix: 0x2e,
  MultiNamePrefix: 0x2f,
  ExtOpPrefix: 0x5b,
  /** Follows ExtOpPrefix. */
  Device: 0x82,
  RootChar: 0x5c,
  ParentPrefixChar: 0x5e,
  Arg0: 0x68,
  Return: 0xa4,
  Ones: 0xff,
  NullName: 0x00,
} as const;

/** An already-encoded AML term (what every function here returns). */
export type AmlTerm = Uint8Array;
/** Data for Name, Package and Return: numbers and bigints become integers, strings become strings. */
export type AmlData = number | bigint | string | AmlTerm;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

export const ZERO: AmlTerm = Uint8Array.of(AmlOp.Zero);
export const ONE: AmlTerm = Uint8Array.of(AmlOp.One);
/** All ones: 0xFFFFFFFFFFFFFFFF in a table of revision 2 or later (64-bit integers). */
export const ONES: AmlTerm = Uint8Array.of(AmlOp.Ones);

/** A 4-character NameSeg (§20.2.2); shorter names are padded with '_', as ASL does. */
export function nameSeg(name: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(name)) throw new RangeError(`invalid AML NameSeg "${name}"`);
  return ascii(name, 4, '_');
}

/** A NameString: `\` for the root, `^` per parent, then NameSegs separated by '.' (e.g. `\_SB_.COM1`). */
export function nameString(path: string): Uint8Array {
  let i = 0;
  const prefix: number[] = [];
  if (path.startsWith('\\')) {
    prefix.push(AmlOp.RootChar);
    i = 1;
  } else {
    while (path[i] === '^') {
      prefix.push(AmlOp.ParentPrefixChar);
      i++;
    }
  }
  const rest = path.slice(i);
  const segs = rest === '' ? [] : rest.split('.').map(nameSeg);
  let head: number[];
  if (segs.length === 0) head = [AmlOp.NullName];
  else if (segs.length === 1) head = [];
  else if (segs.length === 2) head = [AmlOp.DualNamePrefix];
  else if (segs.length <= 255) head = [AmlOp.MultiNamePrefix, segs.length];
  else throw new RangeError(`AML path "${path}" has more than 255 segments`);
  return concat([Uint8Array.from(prefix), Uint8Array.from(head), ...segs]);
}

/**
 * PkgLength (§20.2.4) for `contentLength` bytes that follow it. The encoded length counts its own bytes:
 * one byte up to 63 in all, else a lead byte (bits 7-6: how many bytes follow, bits 3-0: the low nibble)
 * and 1-3 more bytes, for up to 2^28 - 1.
 */
export function pkgLength(contentLength: number): Uint8Array {
  if (!Number.isInteger(contentLength) || contentLength < 0) throw new RangeError(`invalid PkgLength ${contentLength}`);
  if (contentLength + 1 <= 0x3f) return Uint8Array.of(contentLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = contentLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0x0f);
      for (let k = 1; k <= extra; k++) out[k] = (total >>> (4 + 8 * (k - 1))) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML package of ${contentLength} bytes is too long for a PkgLength`);
}

/** A term with a PkgLength: `lead` opcode bytes, then PkgLength, then `content`. */
function withPkgLength(lead: readonly number[], content: readonly Uint8Array[]): AmlTerm {
  const body = concat(content);
  return concat([Uint8Array.from(lead), pkgLength(body.length), body]);
}

/** An integer constant in its smallest encoding. */
export function integer(value: number | bigint): AmlTerm {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RangeError(`AML integer ${value} is not a safe integer`);
  const v = BigInt(value);
  if (v < 0n || v > U64_MAX) throw new RangeError(`AML integer ${value} is outside 0..2^64-1`);
  if (v === 0n) return ZERO;
  if (v === 1n) return ONE;
  if (v === U64_MAX) return ONES;
  const [prefix, bytes] =
    v <= 0xffn ? [AmlOp.BytePrefix, 1] : v <= 0xffffn ? [AmlOp.WordPrefix, 2] : v <= 0xffff_ffffn ? [AmlOp.DWordPrefix, 4] : [AmlOp.QWordPrefix, 8];
  const out = new Uint8Array(1 + bytes);
  out[0] = prefix;
  for (let k = 0; k < bytes; k++) out[1 + k] = Number((v >> BigInt(8 * k)) & 0xffn);
  return out;
}

/** A String (§20.2.3): ASCII 0x01-0x7F, NUL-terminated. */
export function string(text: string): AmlTerm {
  if (text.includes('\0')) throw new RangeError('AML strings cannot contain NUL');
  return concat([Uint8Array.of(AmlOp.StringPrefix), ascii(text), Uint8Array.of(0)]);
}

export function data(value: AmlData): AmlTerm {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return string(value);
  return integer(value);
}

/** A Buffer (DefBuffer) holding `bytes`, its size encoded as an integer. */
export function buffer(bytes: Uint8Array | readonly number[]): AmlTerm {
  const content = Uint8Array.from(bytes);
  return withPkgLength([AmlOp.Buffer], [integer(content.length), content]);
}

/** A Package of up to 255 elements. (`package` is reserved in strict mode, hence the name.) */
export function pkg(elements: readonly AmlData[]): AmlTerm {
  if (elements.length > 255) throw new RangeError('an AML Package holds at most 255 elements');
  return withPkgLength([AmlOp.Package], [Uint8Array.of(elements.length), ...elements.map(data)]);
}

export function name(path: string, value: AmlData): AmlTerm {
  return concat([Uint8Array.of(AmlOp.Name), nameString(path), data(value)]);
}

export function scope(path: string, terms: readonly AmlTerm[]): AmlTerm {
  return withPkgLength([AmlOp.Scope], [nameString(path), ...terms]);
}

export function device(path: string, terms: readonly AmlTerm[]): AmlTerm {
  return withPkgLength([AmlOp.ExtOpPrefix, AmlOp.Device], [nameString(path), ...terms]);
}

export interface MethodFlags {
  /** 0-7 arguments. */
  args?: number;
  serialized?: boolean;
  /** 0-15, meaningful only for serialized methods. */
  syncLevel?: number;
}

export function method(path: string, flags: MethodFlags, body: readonly AmlTerm[]): AmlTerm {
  const { args = 0, serialized = false, syncLevel = 0 } = flags;
  if (!Number.isInteger(args) || args < 0 || args > 7) throw new RangeError(`AML methods take 0-7 arguments, not ${args}`);
  if (!Number.isInteger(syncLevel) || syncLevel < 0 || syncLevel > 15) throw new RangeError(`invalid SyncLevel ${syncLevel}`);
  const methodFlags = args | (serialized ? 0x08 : 0) | (syncLevel << 4);
  return withPkgLength([AmlOp.Method], [nameString(path), Uint8Array.of(methodFlags), ...body]);
}

/** ArgN (0-6): a method's argument, as a term. */
export function arg(n: number): AmlTerm {
  if (!Number.isInteger(n) || n < 0 || n > 6) throw new RangeError(`Arg${n} does not exist (Arg0-Arg6)`);
  return Uint8Array.of(AmlOp.Arg0 + n);
}

/** Return (value): the `Return` statement of a method body. */
export function ret(value: AmlData): AmlTerm {
  return concat([Uint8Array.of(AmlOp.Return), data(value)]);
}

/** The 32-bit compressed EISA ID of a 7-character PNP ID (`EisaId ("PNP0501")`), as a DWord integer term. */
export function eisaId(id: string): AmlTerm {
  return Uint8Array.of(AmlOp.DWordPrefix, ...eisaIdBytes(id));
}

/** The EISA ID's four bytes as stored: three 5-bit letters big-endian in a word, then four hex digits. */
export function eisaIdBytes(id: string): Uint8Array {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`invalid EISA ID "${id}"`);
  const letters = ((id.charCodeAt(0) - 0x40) << 10) | ((id.charCodeAt(1) - 0x40) << 5) | (id.charCodeAt(2) - 0x40);
  const product = parseInt(id.slice(3), 16);
  return Uint8Array.of(letters >> 8, letters & 0xff, product >> 8, product & 0xff);
}

/** The EISA ID as the integer AML evaluates it to (little-endian read of `eisaIdBytes`). */
export function eisaIdValue(id: string): number {
  const b = eisaIdBytes(id);
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}
