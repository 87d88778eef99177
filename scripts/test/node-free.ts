/**
 * The check behind every package's no-node test (@hype/virtio, its /testing entry, the loader core,
 * virtio-blk's core, virtio-rng, guest-memory, acpi, guest-agent's client): code that must run outside
 * Node (other emulators, browsers) reaches no Node builtin, no package it does not declare and no
 * Node-only global.
 *
 * `nodeFreeReport` walks the import graph from a package's Node-free entry files: every relative import
 * (static, dynamic, re-export, `import type`) is followed to its .ts source, so a module is checked when
 * the entry can reach it and only then (a Node entry beside the core, like @hype/linux-loader's
 * src/node.ts, is left out unless the core imports it). Imports are read with TypeScript's own
 * pre-processor and globals from its syntax tree, so comments and strings never count.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const BUILTINS = new Set(builtinModules);

/** Globals (values and type namespaces) that only Node has. */
const NODE_GLOBALS = new Set(['process', 'Buffer', 'require', '__dirname', '__filename', 'global', 'NodeJS']);

export interface NodeFreeOptions {
  /** Module specifiers from outside the package that are allowed, exactly (e.g. '@hype/guest-memory'). */
  allow?: readonly string[];
  /** Where `files` and the problems are relative to. Default: the first entry's directory. */
  root?: string;
}

export interface NodeFreeReport {
  /** Every source file reached from the entries, relative to `root`, sorted. */
  files: string[];
  /** The allowed outside specifiers that were imported, sorted. */
  packages: string[];
  /** One line per problem, `file: what`; empty when the graph is Node-free. */
  problems: string[];
}

/** The .ts source a relative specifier names (`./x.js`, `./x`, `./dir`), or undefined. */
function resolveSource(fromFile: string, specifier: string): string | undefined {
  const base = resolve(dirname(fromFile), specifier);
  const candidates = [base.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((c) => c.endsWith('ts') && existsSync(c) && statSync(c).isFile());
}

/** Whether an identifier names a binding in scope (a reference), not a property, key or member name. */
function isReference(node: ts.Identifier): boolean {
  const parent = node.parent;
  if ((ts.isPropertyAccessExpression(parent) || ts.isQualifiedName(parent)) && node !== (ts.isQualifiedName(parent) ? parent.left : parent.expression)) return false;
  if (ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent) || ts.isImportClause(parent) || ts.isNamespaceImport(parent)) return false;
  if (ts.isBindingElement(parent) && parent.propertyName === node) return false;
  if (ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent)) return false;
  const named = parent as ts.Node & { name?: ts.Node };
  const memberLike =
    ts.isPropertyAssignment(parent) ||
    ts.isPropertyDeclaration(parent) ||
    ts.isPropertySignature(parent) ||
    ts.isMethodDeclaration(parent) ||
    ts.isMethodSignature(parent) ||
    ts.isGetAccessorDeclaration(parent) ||
    ts.isSetAccessorDeclaration(parent) ||
    ts.isEnumMember(parent);
  return !(memberLike && named.name === node);
}

/** What in `text` needs Node at run time: Node-only globals, and `import.meta` (tsup's CJS shim of it). */
function nodeGlobalsIn(fileName: string, text: string): string[] {
  const found = new Set<string>();
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text) && isReference(node)) found.add(`${node.text} (a Node global)`);
    if (ts.isMetaProperty(node) && node.keywordToken === ts.SyntaxKind.ImportKeyword) found.add('import.meta (the CJS build shims it with Node)');
    ts.forEachChild(node, visit);
  };
  visit(source);
  return [...found].sort();
}

/** Walks the import graph from `entries` (absolute .ts paths) and reports what is not Node-free. */
export function nodeFreeReport(entries: readonly string[], options: NodeFreeOptions = {}): NodeFreeReport {
  const root = options.root ?? dirname(entries[0]);
  const allow = new Set(options.allow ?? []);
  const show = (file: string) => relative(root, file);
  const seen = new Set<string>();
  const packages = new Set<string>();
  const problems: string[] = [];
  const queue = [...entries];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    const info = ts.preProcessFile(text, true, true);
    for (const ref of info.typeReferenceDirectives) problems.push(`${show(file)}: /// <reference types="${ref.fileName}" />`);
    for (const { fileName: specifier } of info.importedFiles) {
      if (specifier.startsWith('.')) {
        const target = resolveSource(file, specifier);
        if (target === undefined) problems.push(`${show(file)}: ${specifier} does not resolve to a .ts source`);
        else queue.push(target);
      } else if (specifier.startsWith('node:') || BUILTINS.has(specifier)) {
        problems.push(`${show(file)}: ${specifier} (a Node builtin)`);
      } else if (allow.has(specifier)) {
        packages.add(specifier);
      } else {
        problems.push(`${show(file)}: ${specifier} (not an allowed import)`);
      }
    }
    for (const what of nodeGlobalsIn(file, text)) problems.push(`${show(file)}: ${what}`);
  }
  return { files: [...seen].map(show).sort(), packages: [...packages].sort(), problems };
}

/** Every .ts source under `dir` (tests and declaration files left out), relative to it, sorted. */
export function tsSources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .sort();
}
