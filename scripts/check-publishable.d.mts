// Types for check-publishable.mjs (used from TypeScript by scripts/test/check-publishable.test.ts).

/** The problems that keep the package in `dir` from being published (empty: none). */
export function publishProblems(dir: string): string[];
