// Environment switches of the lessons (AIOS_*): read where the choice is made, checked, and named in
// the error when malformed. The kernels' own switches are read in C++ (timing_switch in
// native/src/switches.h); the harness records every AIOS_* variable a run had.

/** Environment switch `name`: one of `choices`, the first when unset; anything else is an error that lists them. */
export function envChoice<T extends string>(name: string, choices: readonly [T, ...T[]], env: NodeJS.ProcessEnv = process.env): T {
  const v = env[name] ?? choices[0];
  if (!(choices as readonly string[]).includes(v)) throw new Error(`${name} must be one of ${choices.join(', ')}, got "${v}"`);
  return v as T;
}
