// Types for pack.mjs (used from TypeScript by scripts/test/pack-install.test.ts).

export const REPO_ROOT: string;

export interface WorkspacePackage {
  dir: string;
  name: string;
  version: string;
  private: boolean;
  manifest: Record<string, unknown>;
}

export interface TarballEntry {
  /** Without the leading `package/`. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  data: Buffer;
}

export interface InstalledDependency {
  name: string;
  version: string;
  dir: string;
}

export function workspacePackages(root?: string): WorkspacePackage[];
export function publicPackages(root?: string): WorkspacePackage[];
export function packPackage(dir: string, destination: string): string;
export function readTarball(path: string): TarballEntry[];
export function manifestTargets(manifest: Record<string, unknown>): string[];
export function prebuildPaths(paths: string[]): string[];
export function tarballProblems(tarball: string, pkg: WorkspacePackage, options?: { allowMissingPrebuild?: boolean }): string[];
export function thirdPartyDependencies(packages?: WorkspacePackage[]): InstalledDependency[];
export function packInstalled(dirs: string[], destination: string): string[];
