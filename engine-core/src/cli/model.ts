// `pnpm model random --preset 0.6B --out DIR [--seed S]`: writes a seeded
// random-weight Qwen3 checkpoint in Hugging Face layout.
// `pnpm model info DIR`: prints a model folder's config and parameter count.
import { PRESETS, isPresetName, loadConfig, paramCount } from '../model/config.ts';
import { writeRandomModel } from '../model/random.ts';
import { type CommandSpec, UsageError, intFlag, runCli } from './args.ts';

const PRESET_NAMES = Object.keys(PRESETS).join('|');

const MODEL_FLAGS = {
  preset: { type: 'string', value: PRESET_NAMES, help: 'random: the shape to write (docs/models.md lists them)' },
  out: { type: 'string', value: 'DIR', help: 'random: the folder to write (created; written under a temporary name, then renamed)' },
  seed: { type: 'string', value: 'N', help: 'random: the seed of the weights (default 0; the same preset and seed give the same bytes)' },
  jobs: { type: 'string', value: 'N', help: 'random: compute the weights on N threads (the same bytes; default 1)' },
} as const;

const SPEC: CommandSpec<typeof MODEL_FLAGS> = {
  command: 'pnpm model',
  summary: 'Model folders: write a Qwen3 with seeded random weights, or describe a folder.',
  flags: MODEL_FLAGS,
  positionals: 'random | info DIR',
  notes: ['Examples:', '  pnpm model random --preset 1.7B --out models/qwen3-1.7b-random --seed 0', '  pnpm model info models/qwen3-1.7b-random'],
};

function main(values: { preset?: string; out?: string; seed?: string; jobs?: string }, positionals: string[]): number {
  const [command, ...rest] = positionals;
  if (command === 'random') {
    if (rest.length) throw new UsageError(`random takes flags only, got "${rest[0]}"`);
    if (!values.preset) throw new UsageError(`random needs --preset (${PRESET_NAMES})`);
    if (!values.out) throw new UsageError('random needs --out DIR');
    if (!isPresetName(values.preset)) throw new UsageError(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got "${values.preset}"`);
    const seed = intFlag('seed', values.seed, { min: 0 }) ?? 0;
    const cfg = PRESETS[values.preset];
    console.log(`Writing Qwen3 ${values.preset} (${(paramCount(cfg) / 1e6).toFixed(1)}M parameters, bf16, seed ${seed}) to ${values.out}`);
    const t0 = performance.now();
    const jobs = intFlag('jobs', values.jobs, { min: 1, max: 1024 }) ?? 1;
    writeRandomModel(values.out, cfg, { preset: values.preset, seed }, console.log, { jobs });
    console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return 0;
  }
  if (command === 'info') {
    if (rest.length !== 1) throw new UsageError('info needs one model folder: pnpm model info DIR');
    if (values.preset || values.out || values.seed || values.jobs) throw new UsageError('info takes no --preset, --out, --seed or --jobs');
    const cfg = loadConfig(rest[0]!);
    console.log(JSON.stringify({ ...cfg, parameters: paramCount(cfg) }, null, 2));
    return 0;
  }
  throw new UsageError(command === undefined ? 'name a command: random or info' : `unknown command "${command}" (expected random or info)`);
}

void runCli(SPEC, main);
