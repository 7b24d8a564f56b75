// Lesson 01: what an LLM does with text, one piece at a time.
//   pnpm lesson 1 [--model DIR] [--device cpu|cuda] [--text "..."]
import { Tensor, defaultDevice, formatShape, ops, parseDevice } from '@aios/engine-core';
import { DEVICE_FLAG, type FlagValues, MODEL_FLAG, deviceFlag, runCli } from '@aios/engine-core/cli/args.ts';
import { loadConfig, paramCount } from '@aios/engine-core/model/config.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';
import { resolveModel } from '@aios/engine-core/model/resolve.ts';
import { Tokenizer } from '@aios/engine-core/tokenizer.ts';

import { decoderLayerStepByStep, formatSteps } from './walkthrough.ts';

const DEFAULT_TEXT = 'The quick brown fox jumps over the lazy dog. 你好!';
const FLAGS = {
  ...MODEL_FLAG,
  ...DEVICE_FLAG,
  text: { type: 'string', value: 'TEXT', help: `the text to tokenize and run (default: ${JSON.stringify(DEFAULT_TEXT)})` },
} as const;

function main(flags: FlagValues<typeof FLAGS>): void {
  const args = { ...flags, text: flags.text ?? DEFAULT_TEXT };
  const device = deviceFlag(args.device, parseDevice) ?? defaultDevice();
  const { dir } = resolveModel({ model: args.model, device });

  // 1. Text -> tokens -> text
  const tok = Tokenizer.fromDir(dir);
  const ids = tok.encode(args.text);
  console.log(`\n1. Tokenizer (${tok.vocabSize} tokens in the vocabulary)`);
  console.log(`   text:   ${JSON.stringify(args.text)}`);
  console.log(`   ids:    [${ids.join(', ')}]`);
  console.log(`   pieces: ${tok.tokens(ids).map((p) => JSON.stringify(p)).join(' ')}`);
  const back = tok.decode(ids);
  console.log(`   decode: ${JSON.stringify(back)} (${back === args.text ? 'round trip exact' : 'ROUND TRIP DIFFERS'})`);
  const chat = tok.applyChatTemplate([{ role: 'user', content: 'What is a KV cache?' }], { addGenerationPrompt: true, enableThinking: false });
  console.log(`   chat template (user message, generation prompt, thinking off):\n${chat.split('\n').map((l) => `     | ${l}`).join('\n')}`);

  // 2. The model's size, from the config and from the tensors themselves
  const cfg = loadConfig(dir);
  const model = Qwen3Model.load(dir, { device });
  const w = model.weights;
  const tensors = [w.embed, w.norm, ...(cfg.tieWordEmbeddings ? [] : [w.lmHead]), ...w.layers.flatMap((l) => Object.values(l))];
  const counted = tensors.reduce((n, t) => n + t.numel, 0);
  console.log(`\n2. Parameters: ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, ${cfg.numHeads} query heads / ${cfg.numKvHeads} KV heads of ${cfg.headDim}, MLP ${cfg.intermediateSize}, vocab ${cfg.vocabSize}${cfg.tieWordEmbeddings ? ' (tied embeddings)' : ''}`);
  console.log(`   from the config: ${paramCount(cfg).toLocaleString('en-US')}; in the loaded tensors: ${counted.toLocaleString('en-US')} (${counted === paramCount(cfg) ? 'equal' : 'DIFFERENT'})`);
  const embedShare = (cfg.vocabSize * cfg.hiddenSize) / counted;
  console.log(`   the embedding table alone is ${(100 * embedShare).toFixed(1)}% of them; compute dtype ${model.dtype} on ${device}`);

  // 3. Embedding: each id picks one row of the table
  const idT = Tensor.fromArray(Int32Array.from(ids), [ids.length], { dtype: 'i32', device });
  const positions = Tensor.fromArray(Int32Array.from(ids, (_, i) => i), [ids.length], { dtype: 'i32', device });
  const x = ops.embedding(w.embed, idT);
  const first = (x.select(0, 0).toArray() as Float32Array).slice(0, 4);
  console.log(`\n3. Embedding: ids ${formatShape(idT.shape)} -> x ${formatShape(x.shape)}; row 0 starts [${Array.from(first, (v) => v.toFixed(4)).join(', ')}, ...]`);

  // 4. One decoder layer, step by step
  const { out, steps } = decoderLayerStepByStep(model, 0, x, positions);
  console.log(`\n4. Decoder layer 0, step by step (T = ${ids.length} tokens):\n${formatSteps(steps)}`);
  const viaModel = model.layers[0]!.forward(x, { positions }, model.rope);
  const a = out.toArray() as Float32Array, b = viaModel.toArray() as Float32Array;
  const same = a.every((v, i) => v === b[i]);
  console.log(`   the same layer through Qwen3DecoderLayer.forward: ${same ? 'identical output' : 'DIFFERENT output'}`);

  // 5. The whole model: a distribution over the next token
  const logits = model.forwardLogits(ids);
  const last = logits.select(0, ids.length - 1).contiguous();
  const probs = ops.softmax(last).toArray() as Float32Array;
  const top = Array.from(probs.keys()).sort((i, j) => probs[j]! - probs[i]!).slice(0, 5);
  console.log(`\n5. Next token after the text (top 5 of ${cfg.vocabSize}):`);
  for (const t of top) console.log(`   ${String(t).padStart(6)}  ${JSON.stringify(tok.decode([t])).padEnd(16)} p = ${probs[t]!.toPrecision(3)}`);

  for (const t of [idT, positions, x, out, viaModel, logits, last]) t.dispose();
  model.dispose();
}

void runCli({ command: 'pnpm lesson 1', summary: 'Lesson 01: tokenizer, embeddings, one decoder layer step by step, the next-token distribution.', flags: FLAGS }, main);
