// One command-line behaviour for every lesson and tool (`pnpm lesson N`, `pnpm bench`,
// `pnpm model`, `pnpm chart`, `pnpm readme`):
//
//   --help, -h       prints the usage and exits 0
//   a bad flag       (unknown, missing its value, a malformed number) names the flag, the
//                    value and the usage on stderr, exit 2, no stack trace
//   a failure        prints its message, exit 1; the stack trace only for what looks like a
//                    bug in the code (TypeError, ReferenceError...) or with --verbose
//
// A command declares its flags once (FlagSpecs); the same declaration parses argv, prints
// --help and lets `pnpm lesson` list every lesson's flags without running any lesson
// (describe mode: the lesson's module is imported, runCli records its spec and returns).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface BooleanFlag {
  type: 'boolean';
  help: string;
  short?: string;
}

export interface StringFlag {
  type: 'string';
  /** The placeholder in the usage: DIR, N, S, cpu|cuda... */
  value: string;
  help: string;
  short?: string;
}

export type FlagSpec = BooleanFlag | StringFlag;
export type FlagSpecs = Record<string, FlagSpec>;

export type FlagValues<S extends FlagSpecs> = { [K in keyof S]?: S[K] extends BooleanFlag ? boolean : string } & { help?: boolean; verbose?: boolean };

export interface CommandSpec<S extends FlagSpecs = FlagSpecs> {
  /** How the reader types it: "pnpm lesson 3", "pnpm bench". */
  command: string;
  /** One line: what it does. */
  summary: string;
  flags: S;
  /** Positional arguments in the usage line ("FILE..."); none are accepted when absent. */
  positionals?: string;
  /** Lines after the flag list: examples, defaults that depend on the machine. */
  notes?: string[];
}

/** A mistake on the command line: reported with the usage, exit 2, never with a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Bad input that is not a flag (a file that is not a record, shards that do not add up): exit 2, the message, no usage. */
export class InputError extends Error {
  override name = 'InputError';
}

/** Every command takes these two. */
export const COMMON_FLAGS = {
  help: { type: 'boolean', short: 'h', help: 'print this usage and exit' },
  verbose: { type: 'boolean', help: 'print the stack trace of an error' },
} as const satisfies FlagSpecs;

/** --model, as every command that loads a model reads it. */
export const MODEL_FLAG = {
  model: { type: 'string', value: 'DIR', help: 'a Hugging Face Qwen3 folder (default: AIOS_MODEL, else the embedded random-weight model)' },
} as const satisfies FlagSpecs;

/** --device, as every command that runs on a device reads it (deviceFlag parses it). */
export const DEVICE_FLAG = {
  device: { type: 'string', value: 'cpu|cuda|cuda:N', help: 'where to run (default: cuda:0 when CUDA is usable, else cpu; AIOS_DEVICE)' },
} as const satisfies FlagSpecs;

/** --record / --no-record (chooseRecord reads them). */
export const RECORD_FLAGS = {
  record: { type: 'boolean', help: 'write the record to bench-results/ (the default on a GPU)' },
  'no-record': { type: 'boolean', help: 'write no record (the default on the CPU)' },
} as const satisfies FlagSpecs;

/** --record / --no-record, or the default for the device (records are kept of GPU runs). */
export function chooseRecord(device: string, values: { record?: boolean; 'no-record'?: boolean }): boolean {
  if (values.record && values['no-record']) throw new UsageError('--record and --no-record together');
  return values['no-record'] ? false : (values.record ?? device !== 'cpu');
}

function allFlags(spec: CommandSpec): FlagSpecs {
  return { ...spec.flags, ...COMMON_FLAGS };
}

function flagLabel(name: string, f: FlagSpec): string {
  return `${f.short ? `-${f.short}, ` : ''}--${name}${f.type === 'string' ? ` ${f.value}` : ''}`;
}

/** The --help text: the usage line, the summary, one line per flag. */
export function usageText(spec: CommandSpec): string {
  const flags = allFlags(spec);
  const labels = Object.entries(flags).map(([name, f]) => [flagLabel(name, f), f.help] as const);
  const width = Math.max(...labels.map(([l]) => l.length));
  return [
    `usage: ${spec.command} [flags]${spec.positionals ? ` ${spec.positionals}` : ''}`,
    '',
    spec.summary,
    '',
    'flags:',
    ...labels.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`),
    ...(spec.notes?.length ? ['', ...spec.notes] : []),
  ].join('\n');
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

function suggestion(name: string, flags: FlagSpecs): string {
  const close = Object.keys(flags)
    .map((f) => ({ f, d: distance(name, f) }))
    .filter(({ d }) => d <= Math.max(1, Math.floor(name.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  return close ? ` (did you mean --${close.f}?)` : '';
}

export interface Parsed<S extends FlagSpecs> {
  values: FlagValues<S>;
  positionals: string[];
}

/**
 * argv -> flag values. Accepts --name value, --name=value, -x for a short flag, and "--"
 * before positionals that start with "-". Throws UsageError naming the flag and the value.
 */
export function parseFlags<S extends FlagSpecs>(spec: CommandSpec<S>, argv: readonly string[]): Parsed<S> {
  const flags = allFlags(spec);
  const byShort = new Map(Object.entries(flags).flatMap(([name, f]) => (f.short ? [[f.short, name] as const] : [])));
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      positionals.push(arg);
      continue;
    }
    let name: string, inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else {
      const long = byShort.get(arg.slice(1));
      if (!long) throw new UsageError(`unknown flag ${arg}`);
      name = long;
    }
    const f = flags[name];
    if (!f) throw new UsageError(`unknown flag --${name}${inline !== undefined ? ` (given the value "${inline}")` : ''}${suggestion(name, flags)}`);
    if (f.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value, got "${inline}"`);
      values[name] = true;
      continue;
    }
    let v = inline;
    if (v === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name} needs a value (${f.value})${next ? `, got the flag ${next}` : ''}`);
      v = next;
      i++;
    }
    if (values[name] !== undefined && values[name] !== v) throw new UsageError(`--${name} given twice ("${String(values[name])}" and "${v}")`);
    values[name] = v;
  }
  if (!spec.positionals && positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (${spec.command} takes flags only)`);
  return { values: values as FlagValues<S>, positionals };
}

/** A flag's value as an integer >= min, or a UsageError naming the flag and the value. */
export function intFlag(name: string, v: string | undefined, opts: { min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  const min = opts.min ?? 1;
  if (v.trim() === '' || !Number.isInteger(n) || n < min || (opts.max !== undefined && n > opts.max))
    throw new UsageError(`--${name} must be an integer ${opts.max !== undefined ? `from ${min} to ${opts.max}` : `>= ${min}`}, got "${v}"`);
  return n;
}

/** A flag's value as a number > 0, or a UsageError naming the flag and the value. */
export function positiveFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !(n > 0) || !Number.isFinite(n)) throw new UsageError(`--${name} must be a positive number, got "${v}"`);
  return n;
}

/** A flag's value from a fixed list, or a UsageError. */
export function choiceFlag<T extends string>(name: string, v: string | undefined, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${v}"`);
  return v as T;
}

/**
 * Runs main() when this module is the command (`tsx path/to/module.ts`), not when a test imports
 * its helpers: the exit code main() returns, or 2 with the error's message under `name`.
 */
export function runIfCommand(moduleUrl: string, name: string, main: () => Promise<number>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(path.resolve(process.argv[1])).href) return;
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 2;
    },
  );
}

/** Errors that mean the code is wrong rather than the input: these print their stack. */
export function looksLikeBug(e: unknown): boolean {
  return !(e instanceof Error) || e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError || e instanceof EvalError;
}

// ------------------------------------------------------------ describe mode

const DESCRIBE = Symbol.for('aios.cli.describe');
type DescribeSlot = { active: boolean; captured: CommandSpec[] };

function describeSlot(): DescribeSlot {
  const g = globalThis as unknown as Record<symbol, DescribeSlot | undefined>;
  return (g[DESCRIBE] ??= { active: false, captured: [] });
}

/**
 * Imports a command's module in describe mode and returns the spec its runCli declared,
 * without running it (what `pnpm lesson` uses to list every lesson's flags).
 */
export async function describeModule(load: () => Promise<unknown>): Promise<CommandSpec | undefined> {
  const slot = describeSlot();
  slot.active = true;
  slot.captured = [];
  try {
    await load();
    return slot.captured[0];
  } finally {
    slot.active = false;
  }
}

// ------------------------------------------------------------ running

export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
}

const STDIO: CliIO = { out: (s) => console.log(s), err: (s) => console.error(s) };

/**
 * Parses argv against the spec and runs `main` with the values; returns the exit code
 * (also set as process.exitCode unless `setExitCode` is false). Never throws.
 */
export async function runCli<S extends FlagSpecs>(
  spec: CommandSpec<S>,
  main: (values: FlagValues<S>, positionals: string[]) => number | void | Promise<number | void>,
  opts: { argv?: readonly string[]; io?: CliIO; setExitCode?: boolean } = {},
): Promise<number> {
  const slot = describeSlot();
  if (slot.active) {
    slot.captured.push(spec as unknown as CommandSpec);
    return 0;
  }
  const io = opts.io ?? STDIO;
  const argv = opts.argv ?? process.argv.slice(2);
  const code = await (async (): Promise<number> => {
    let parsed: Parsed<S>;
    try {
      parsed = parseFlags(spec, argv);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      io.err(`${spec.command}: ${e.message}\n\n${usageText(spec)}`);
      return 2;
    }
    if (parsed.values.help) {
      io.out(usageText(spec));
      return 0;
    }
    try {
      return (await main(parsed.values, parsed.positionals)) ?? 0;
    } catch (e) {
      if (e instanceof UsageError) {
        io.err(`${spec.command}: ${e.message}\n\n${usageText(spec)}`);
        return 2;
      }
      if (e instanceof InputError) {
        io.err(`${spec.command}: ${e.message}`);
        return 2;
      }
      if (parsed.values.verbose || looksLikeBug(e)) io.err(`${spec.command}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      else io.err(`${spec.command}: ${(e as Error).message}\n(run with --verbose for the stack trace)`);
      return 1;
    }
  })();
  if (opts.setExitCode ?? true) process.exitCode = code;
  return code;
}

/** --device: a malformed name is a UsageError; asking for CUDA where there is none is a plain error that says why. */
export function deviceFlag<D extends string>(v: string | undefined, parse: (name: string) => D): D | undefined {
  if (v === undefined) return undefined;
  if (!/^(cpu|cuda)(:\d+)?$/.test(v.trim())) throw new UsageError(`--device must be cpu, cuda or cuda:N, got "${v}"`);
  return parse(v);
}
