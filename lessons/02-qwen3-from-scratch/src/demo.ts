// Lesson 02: the whole Qwen3 forward and greedy generation, no engine, no cache.
//   pnpm lesson 2 [--model DIR] [--device cpu|cuda] [--prompt "..."] [--max-tokens N]
import { defaultDevice, parseDevice } from '@aios/engine-core';
import { DEVICE_FLAG, type FlagValues, MODEL_FLAG, deviceFlag, intFlag, runCli } from '@aios/engine-core/cli/args.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';
import { resolveModel } from '@aios/engine-core/model/resolve.ts';
import { Tokenizer } from '@aios/engine-core/tokenizer.ts';

import { greedyGenerate } from './generate.ts';

const DEFAULT_PROMPT = 'Explain in one sentence what a GPU is.';
const FLAGS = {
  ...MODEL_FLAG,
  ...DEVICE_FLAG,
  prompt: { type: 'string', value: 'TEXT', help: `the user message (default: ${JSON.stringify(DEFAULT_PROMPT)})` },
  'max-tokens': { type: 'string', value: 'N', help: 'tokens to generate (default 32)' },
} as const;

function main(flags: FlagValues<typeof FLAGS>): void {
  const args = { ...flags, prompt: flags.prompt ?? DEFAULT_PROMPT };
  const maxTokens = intFlag('max-tokens', flags['max-tokens']) ?? 32;
  const device = deviceFlag(args.device, parseDevice) ?? defaultDevice();
  const { dir } = resolveModel({ model: args.model, device });

  const t0 = performance.now();
  const tok = Tokenizer.fromDir(dir);
  const model = Qwen3Model.load(dir, { device });
  console.log(`Loaded ${dir} on ${device} (${model.dtype}) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);

  const promptIds = tok.encodeChat([{ role: 'user', content: args.prompt }], { addGenerationPrompt: true, enableThinking: false });
  console.log(`Prompt: ${promptIds.length} tokens (chat template applied)`);

  // Warm-up: the first forward pays one-time costs (cuBLAS plans, the allocator's
  // first cudaMallocs) that are not part of the method being timed.
  const w0 = performance.now();
  greedyGenerate(model, promptIds, { maxTokens: 2 });
  console.log(`warm-up: ${(performance.now() - w0).toFixed(1)} ms (2 steps, not counted)\n`);

  const stream = tok.streamDecoder();
  process.stdout.write('> ');
  const result = greedyGenerate(model, promptIds, {
    maxTokens,
    eosTokenIds: tok.eosTokenIds,
    onToken: (token) => process.stdout.write(stream.push(token)),
  });
  process.stdout.write(stream.flush() + '\n\n');

  const [first, ...rest] = result.steps;
  const restMs = rest.map((s) => s.ms);
  console.log(`prefill (first token, forward over ${promptIds.length} tokens): ${first!.ms.toFixed(1)} ms`);
  if (rest.length) {
    console.log(`later steps (a full forward each, ${promptIds.length + 1}..${promptIds.length + rest.length} tokens): first ${restMs[0]!.toFixed(1)} ms, last ${restMs[restMs.length - 1]!.toFixed(1)} ms, mean ${(restMs.reduce((a, b) => a + b, 0) / restMs.length).toFixed(1)} ms`);
  }
  const total = result.steps.reduce((a, s) => a + s.ms, 0);
  console.log(`${result.tokens.length} tokens in ${(total / 1000).toFixed(2)} s = ${((1000 * result.tokens.length) / total).toFixed(1)} tok/s (finish: ${result.finish})`);
  model.dispose();
}

void runCli({ command: 'pnpm lesson 2', summary: 'Lesson 02: the whole Qwen3 forward and greedy generation, no engine, no cache.', flags: FLAGS }, main);
