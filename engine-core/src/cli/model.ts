// `pnpm model random --preset 0.6B --out DIR [--seed S]`: writes a seeded
// random-weight Qwen3 checkpoint in Hugging Face layout.
// `pnpm model info DIR`: prints a model folder's config and parameter count.
import { parseArgs } from 'node:util';

import { PRESETS, isPresetName, loadConfig, paramCount } from '../model/config.ts';
import { writeRandomModel } from '../model/random.ts';

const usage = `usage:
  pnpm model random --preset <${Object.keys(PRESETS).join('|')}> --out DIR [--seed N]
  pnpm model info DIR`;

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  if (command === 'random') {
    const { values } = parseArgs({ args: rest, options: { preset: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string', default: '0' } } });
    if (!values.preset || !values.out) {
      console.error(usage);
      return 2;
    }
    if (!isPresetName(values.preset)) {
      console.error(`unknown preset "${values.preset}" (one of ${Object.keys(PRESETS).join(', ')})`);
      return 2;
    }
    const seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) {
      console.error(`--seed must be a non-negative integer, got ${values.seed}`);
      return 2;
    }
    const cfg = PRESETS[values.preset];
    console.log(`Writing Qwen3 ${values.preset} (${(paramCount(cfg) / 1e6).toFixed(1)}M parameters, bf16, seed ${seed}) to ${values.out}`);
    const t0 = performance.now();
    writeRandomModel(values.out, cfg, { preset: values.preset, seed }, console.log);
    console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return 0;
  }
  if (command === 'info' && rest[0]) {
    const cfg = loadConfig(rest[0]);
    console.log(JSON.stringify({ ...cfg, parameters: paramCount(cfg) }, null, 2));
    return 0;
  }
  console.error(usage);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
