// Lesson 15 on CUDA (the Qwen3-0.6B shape, random weights): the server drives the
// GPU engine; 32 concurrent streams, a quarter cut off mid-stream, all others get
// every token they asked for, and afterwards no request is live and no KV block is
// referenced. (Token-for-token equality with the offline engine is the CPU test's:
// in bf16 a different batch composition may round differently.)
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';

import { servedRecipe } from '../src/recipe.ts';
import { createServer } from '../src/server.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lesson 15 serve.gpu.test: skipped: no usable CUDA device on this machine');

describe.skipIf(!hasGpu)('lesson 15 on CUDA: the server over the GPU engine', () => {
  it('32 streams, 8 cut off: the rest complete; every block is free after', async () => {
    const model = ensureDefaultModel('gpu', () => {});
    const server = createServer({ recipe: servedRecipe, model, device: 'cuda:0', engine: { maxNumSeqs: 64, maxNumBatchedTokens: 4096 }, log: () => {} });
    try {
      const client = new OpenAI({ baseURL: `${await server.listen(0)}/v1`, apiKey: 'x', maxRetries: 0 });
      const got = await Promise.all(
        Array.from({ length: 32 }, async (_, i) => {
          const controller = new AbortController();
          const stream = await client.completions.create(
            { model: server.modelName, prompt: `request ${i} `.repeat(1 + (i % 9)), max_tokens: 16 + i, temperature: 0.7, seed: i, stream: true, ignore_eos: true } as unknown as OpenAI.Completions.CompletionCreateParamsStreaming,
            { signal: controller.signal },
          );
          let tokens = 0;
          try {
            for await (const c of stream) {
              tokens += c.choices.length;
              if (i % 4 === 1 && tokens === 3) controller.abort();
            }
          } catch (e) {
            if (i % 4 !== 1) throw e;
          }
          return tokens;
        }),
      );
      got.forEach((tokens, i) => (i % 4 === 1 ? expect(tokens).toBeLessThan(16 + i) : expect(tokens, `request ${i}`).toBe(16 + i)));
      for (let t = 0; t < 100 && server.loop.pending > 0; t++) await new Promise((r) => setTimeout(r, 20));
      expect(server.loop.pending).toBe(0);
      expect(server.llm.parts.scheduler.stats!().usedBlocks).toBe(0);
    } finally {
      await server.close();
    }
  }, 300_000);
});
