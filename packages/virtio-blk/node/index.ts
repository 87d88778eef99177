// @hype/virtio-blk/node: the Node.js side of the block backends (host files through node:fs, HTTP
// through the global fetch). The core entry point stays free of node:* imports.

import { constants, promises as fsp } from 'node:fs';
import type { BlockBackend } from '../src/backend.js';
import { FileBackend } from '../src/file-backend.js';
import { HttpBackend, type HttpBackendOptions } from '../src/http-backend.js';
import { MemoryBackend } from '../src/memory-backend.js';
import { VirtioBlkDevice, type VirtioBlkOptions } from '../src/device.js';
import { defaultSerial, encodeSerial } from '../src/serial.js';

export interface OpenFileOptions {
  /** Open O_RDONLY and make the device read-only. Default false (O_RDWR). */
  readOnly?: boolean;
}

/**
 * Opens a host file (a raw disk image) as a block backend. The file must exist and be a regular file;
 * its size is fixed at open (a tail that is not a whole 512-byte sector is not visible to the guest).
 * Errors are one line naming the file and what to do.
 */
export async function openFileBackend(path: string, options: OpenFileOptions = {}): Promise<FileBackend> {
  const readOnly = options.readOnly ?? false;
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, readOnly ? constants.O_RDONLY : constants.O_RDWR);
  } catch (e) {
    throw new Error(describeOpenError(path, readOnly, e));
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`disk ${path}: not a regular file (give a raw disk image file)`);
    return new FileBackend(handle, { size: st.size, readOnly, path });
  } catch (e) {
    await handle.close();
    throw e;
  }
}

function describeOpenError(path: string, readOnly: boolean, e: unknown): string {
  const code = (e as { code?: string }).code;
  switch (code) {
    case 'ENOENT':
      return `disk ${path}: no such file (create the image first, e.g. with mke2fs or truncate)`;
    case 'EACCES':
    case 'EPERM':
      return readOnly
        ? `disk ${path}: permission denied for reading`
        : `disk ${path}: permission denied for writing (fix the permissions or attach it read-only)`;
    case 'EROFS':
      return `disk ${path}: on a read-only file system (attach it read-only)`;
    case 'EISDIR':
      return `disk ${path}: is a directory, not a disk image`;
    default:
      return `disk ${path}: cannot open: ${(e as Error).message ?? String(e)}`;
  }
}

/** A disk as the VM config describes it (structurally the same as @hype/vm's DiskConfig). */
export type DiskSpec =
  | { kind: 'file'; path: string; readOnly?: boolean; serial?: string }
  | { kind: 'memory'; sizeBytes: number; serial?: string }
  | { kind: 'http'; url: string; serial?: string; http?: HttpBackendOptions };

/** Opens the backend a DiskSpec describes. HTTP disks are always read-only. */
export async function openDiskBackend(spec: DiskSpec): Promise<BlockBackend> {
  switch (spec.kind) {
    case 'file':
      return openFileBackend(spec.path, { readOnly: spec.readOnly });
    case 'memory':
      return new MemoryBackend(spec.sizeBytes);
    case 'http':
      return HttpBackend.open(spec.url, spec.http);
  }
}

/**
 * Opens the disk at position `index` of a VM's disk list and builds its device: serial
 * `spec.serial ?? defaultSerial(index)` (`hype-disk-0` is /dev/vda). The serial is checked before the
 * backend is opened, and the backend is closed again if the device cannot be built.
 */
export async function openDiskDevice(spec: DiskSpec, index: number, options: Omit<VirtioBlkOptions, 'backend' | 'serial'> = {}): Promise<VirtioBlkDevice> {
  const serial = spec.serial ?? defaultSerial(index);
  encodeSerial(serial);
  const backend = await openDiskBackend(spec);
  try {
    return new VirtioBlkDevice({ ...options, backend, serial });
  } catch (e) {
    await backend.close();
    throw e;
  }
}

export { FileBackend } from '../src/file-backend.js';
export { HttpBackend } from '../src/http-backend.js';
export { MemoryBackend } from '../src/memory-backend.js';
