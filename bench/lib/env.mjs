// Benchmark parameters from the environment, with a clear error naming the variable.

/** An integer from env `name` (default `fallback`), checked to lie in [min, max]. */
export function intEnv(name, fallback, min, max, env = process.env) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name}=${raw}: must be a whole number from ${min} to ${max}`);
  }
  return value;
}
