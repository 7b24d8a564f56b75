// One command-line behaviour for every lesson and tool: the parser and runCli in
// process, then every lesson's demo and every tool as a reader starts them (tsx, the
// same entry points as the root package.json's scripts): --help prints the usage and
// exits 0; a bad flag names the flag and the value, prints the usage, exits 2, and
// prints no stack trace.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../src/bench/records.ts';
import { type CliIO, type CommandSpec, InputError, describeModule, UsageError, intFlag, parseFlags, positiveFlag, runCli, usageText } from '../src/cli/args.ts';
import { LESSONS, lessonDemo } from '../src/cli/lessons.ts';

const TSX = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(TSX, [script, ...args], { cwd: REPO_ROOT, env: { ...process.env, AIOS_DEVICE: 'cpu' }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const LESSON = 'engine-core/src/cli/lesson.ts';
const STACK_LINE = /^\s+at .+(:\d+:\d+\)?|\(node:)/m;

const SPEC: CommandSpec = {
  command: 'pnpm try',
  summary: 'a test command',
  flags: {
    requests: { type: 'string', value: 'N', help: 'how many' },
    quick: { type: 'boolean', help: 'be quick' },
  },
};

function capture(): CliIO & { outText: () => string; errText: () => string } {
  const out: string[] = [], err: string[] = [];
  return { out: (s) => out.push(s), err: (s) => err.push(s), outText: () => out.join('\n'), errText: () => err.join('\n') };
}

describe('parseFlags', () => {
  it('reads --name value, --name=value, booleans and -h', () => {
    expect(parseFlags(SPEC, ['--requests', '4', '--quick']).values).toEqual({ requests: '4', quick: true });
    expect(parseFlags(SPEC, ['--requests=7']).values).toEqual({ requests: '7' });
    expect(parseFlags(SPEC, ['-h']).values).toEqual({ help: true });
  });

  it('names an unknown flag, the value given with it, and the flag it was probably meant to be', () => {
    expect(() => parseFlags(SPEC, ['--reqests', '4'])).toThrow(new UsageError('unknown flag --reqests (did you mean --requests?)'));
    expect(() => parseFlags(SPEC, ['--colour=red'])).toThrow(new UsageError('unknown flag --colour (given the value "red")'));
    expect(() => parseFlags(SPEC, ['-x'])).toThrow(new UsageError('unknown flag -x'));
  });

  it('names a flag missing its value, a boolean given one, a flag given twice, a stray argument', () => {
    expect(() => parseFlags(SPEC, ['--requests'])).toThrow(new UsageError('--requests needs a value (N)'));
    expect(() => parseFlags(SPEC, ['--requests', '--quick'])).toThrow(new UsageError('--requests needs a value (N), got the flag --quick'));
    expect(() => parseFlags(SPEC, ['--quick=yes'])).toThrow(new UsageError('--quick takes no value, got "yes"'));
    expect(() => parseFlags(SPEC, ['--requests', '1', '--requests', '2'])).toThrow(new UsageError('--requests given twice ("1" and "2")'));
    expect(() => parseFlags(SPEC, ['4'])).toThrow(new UsageError('unexpected argument "4" (pnpm try takes flags only)'));
  });

  it('checks numbers, naming the flag and the value', () => {
    expect(intFlag('requests', '4')).toBe(4);
    expect(intFlag('requests', undefined)).toBeUndefined();
    expect(() => intFlag('requests', 'abc')).toThrow(new UsageError('--requests must be an integer >= 1, got "abc"'));
    expect(() => intFlag('requests', '2.5', { max: 32 })).toThrow(new UsageError('--requests must be an integer from 1 to 32, got "2.5"'));
    expect(() => intFlag('requests', '')).toThrow(UsageError);
    expect(positiveFlag('time-budget', '0.5')).toBe(0.5);
    expect(() => positiveFlag('time-budget', '-1')).toThrow(new UsageError('--time-budget must be a positive number, got "-1"'));
  });

  it('lists every flag, --help and --verbose in the usage', () => {
    const text = usageText(SPEC);
    expect(text.split('\n')[0]).toBe('usage: pnpm try [flags]');
    for (const f of ['--requests N', '--quick', '-h, --help', '--verbose']) expect(text).toContain(f);
  });
});

describe('runCli', () => {
  const opts = (io: CliIO, argv: string[]) => ({ io, argv, setExitCode: false });

  it('--help: the usage on stdout, exit 0, main not run', async () => {
    const io = capture();
    let ran = false;
    expect(await runCli(SPEC, () => void (ran = true), opts(io, ['--help']))).toBe(0);
    expect(ran).toBe(false);
    expect(io.outText()).toBe(usageText(SPEC));
  });

  it('a usage error: the message and the usage on stderr, exit 2', async () => {
    const io = capture();
    expect(await runCli(SPEC, () => 0, opts(io, ['--requests']))).toBe(2);
    expect(io.errText()).toBe(`pnpm try: --requests needs a value (N)\n\n${usageText(SPEC)}`);
    const io2 = capture();
    expect(await runCli(SPEC, () => { throw new UsageError('--requests and --quick together'); }, opts(io2, []))).toBe(2);
    expect(io2.errText()).toContain('pnpm try: --requests and --quick together\n\nusage: pnpm try');
  });

  it('a failure: its message, exit 1, the stack only with --verbose or for what looks like a bug', async () => {
    const io = capture();
    expect(await runCli(SPEC, () => { throw new Error('model folder /x does not exist'); }, opts(io, []))).toBe(1);
    expect(io.errText()).toBe('pnpm try: model folder /x does not exist\n(run with --verbose for the stack trace)');
    const verbose = capture();
    expect(await runCli(SPEC, () => { throw new Error('model folder /x does not exist'); }, opts(verbose, ['--verbose']))).toBe(1);
    expect(verbose.errText()).toMatch(STACK_LINE);
    const bug = capture();
    expect(await runCli(SPEC, () => (undefined as unknown as { x: number }).x, opts(bug, []))).toBe(1);
    expect(bug.errText()).toMatch(/TypeError/);
    expect(bug.errText()).toMatch(STACK_LINE);
    const input = capture();
    expect(await runCli(SPEC, () => { throw new InputError('a.json: not a results record'); }, opts(input, []))).toBe(2);
    expect(input.errText()).toBe('pnpm try: a.json: not a results record');
  });

  it('returns what main returns, async or not', async () => {
    expect(await runCli(SPEC, async () => 3, opts(capture(), []))).toBe(3);
    expect(await runCli(SPEC, () => undefined, opts(capture(), []))).toBe(0);
  });
});

describe('every lesson and tool from the command line', () => {
  const ready = LESSONS.filter((l) => lessonDemo(l));

  it('pnpm lesson lists every lesson and the flags of each one that exists', async () => {
    const r = await run(LESSON, []);
    expect(r.code).toBe(0);
    for (const l of LESSONS) expect(r.stdout).toContain(`${String(l.number).padStart(2, '0')}  ${lessonDemo(l) ? 'ready  ' : 'not yet'}  ${l.title}`);
    const flagLines = r.stdout.split('\n').filter((s) => s.trim().startsWith('flags:'));
    expect(flagLines).toHaveLength(ready.length);
    for (const line of flagLines) expect(line).toMatch(/--device /);
  });

  it(`pnpm lesson N --help for every lesson (${ready.map((l) => l.number).join(', ')}): its usage, every flag the listing names, exit 0`, async () => {
    const [listing, ...helps] = await Promise.all([run(LESSON, []), ...ready.map((l) => run(LESSON, [String(l.number), '--help']))]);
    const lines = listing.stdout.split('\n');
    ready.forEach((l, i) => {
      const help = helps[i]!;
      expect(help.stderr, `lesson ${l.number}`).toBe('');
      expect(help.code).toBe(0);
      expect(help.stdout.split('\n')[0]).toBe(`usage: pnpm lesson ${l.number} [flags]`);
      const row = lines.findIndex((s) => s.startsWith(`  ${String(l.number).padStart(2, '0')}  ready`));
      const flags = lines[row + 1]!.match(/--[a-z-]+/g)!;
      expect(flags.length).toBeGreaterThan(1);
      for (const f of [...flags, '--help', '--verbose']) expect(help.stdout).toContain(f);
    });
  });

  it('a mistyped flag, for every lesson: its demo declares the flags, so the parser names the flag and the one meant', async () => {
    for (const l of ready) {
      const spec = await describeModule(() => import(pathToFileURL(lessonDemo(l)!).href));
      expect(spec?.command, `lesson ${l.number}`).toBe(`pnpm lesson ${l.number}`);
      expect(() => parseFlags(spec!, ['--devise', 'cpu'])).toThrow(new UsageError('unknown flag --devise (did you mean --device?)'));
    }
  });

  it('pnpm lesson 0 and 6 with a mistyped flag: the flag named, the usage, exit 2, no stack trace', async () => {
    const results = await Promise.all([0, 6].map((n) => run(LESSON, [String(n), '--devise', 'cpu'])));
    results.forEach((r, i) => {
      const n = [0, 6][i]!;
      expect(r.code, `lesson ${n}`).toBe(2);
      expect(r.stderr).toContain(`pnpm lesson ${n}: unknown flag --devise (did you mean --device?)`);
      expect(r.stderr).toContain(`usage: pnpm lesson ${n} [flags]`);
      expect(r.stderr).not.toMatch(STACK_LINE);
      expect(r.stdout).toBe('');
    });
  });

  it('a malformed value names the flag and the value: lesson 2 --max-tokens abc, lesson 3 --requests abc, bench --repeats 0', async () => {
    const cases: [string, string[], string][] = [
      [LESSON, ['2', '--max-tokens', 'abc'], 'pnpm lesson 2: --max-tokens must be an integer >= 1, got "abc"'],
      [LESSON, ['3', '--requests', 'abc'], 'pnpm lesson 3: --requests must be an integer from 1 to 32, got "abc"'],
      [LESSON, ['4', '--device', 'gpu'], 'pnpm lesson 4: --device must be cpu, cuda or cuda:N, got "gpu"'],
      ['engine-core/src/cli/bench.ts', ['--repeats', '0'], 'pnpm bench: --repeats must be an integer from 1 to 100, got "0"'],
      ['engine-core/src/cli/bench.ts', ['--lesson', '1'], 'pnpm bench: lesson 1 (LLM basics) has no engine recipe'],
      ['engine-core/src/cli/model.ts', ['random', '--preset', 'huge', '--out', '/tmp/x'], 'pnpm model: --preset must be one of'],
    ];
    const results = await Promise.all(cases.map(([script, args]) => run(script, args)));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![1].join(' ')).toBe(2);
      expect(r.stderr).toContain(cases[i]![2]);
      expect(r.stderr).toContain('usage: ');
      expect(r.stderr).not.toMatch(STACK_LINE);
    });
  });

  it('pnpm bench, model, chart and readme take --help: usage on stdout, exit 0', async () => {
    const tools = ['bench', 'model', 'chart', 'readme'];
    const results = await Promise.all(tools.map((t) => run(`engine-core/src/cli/${t}.ts`, ['--help'])));
    results.forEach((r, i) => {
      expect(r.code, tools[i]).toBe(0);
      expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^usage: pnpm ${tools[i]} \\[flags\\]`));
      expect(r.stderr).toBe('');
    });
  });

  it('a failure that is not a bug: the message and exit 1, no stack trace unless --verbose', async () => {
    const [plain, verbose] = await Promise.all([run(LESSON, ['1', '--model', '/no/such/model']), run(LESSON, ['1', '--model', '/no/such/model', '--verbose'])]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toBe('pnpm lesson 1: model folder /no/such/model does not exist (from --model)\n(run with --verbose for the stack trace)\n');
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(STACK_LINE);
  });
});
