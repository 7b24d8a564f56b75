// The engine loop (CPU, tiny model): the text it hands out (decoded during the next step,
// Engine.stepAsync's deferText) is the text Engine.step decodes in the step; its failure
// paths: one request's writer that throws ends that request only; closing the loop ends
// every open request with an error its client sees, also when another client's onError throws.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Engine, type RequestDelta } from '@aios/engine-core/engine/engine.ts';
import type { Sampler } from '@aios/engine-core/engine/types.ts';

import { EngineLoop, ShuttingDownError } from '../src/engine-loop.ts';
import { servedRecipe } from '../src/recipe.ts';

let llm: LLM;
beforeAll(() => {
  llm = LLM.create({ recipe: servedRecipe, device: 'cpu', engine: { kvCacheBytes: 32 * 2 ** 20 }, log: () => {} });
});
afterAll(() => llm?.dispose());

/** A listener that records what it gets and resolves when its request ends. */
function recorder(throwAt?: number) {
  const tokens: number[] = [];
  let text = '';
  let error: Error | undefined;
  let settle!: () => void;
  const ended = new Promise<void>((r) => (settle = r));
  return {
    tokens,
    ended,
    get text() {
      return text;
    },
    get error() {
      return error;
    },
    listener: {
      onDelta(d: RequestDelta) {
        if (throwAt !== undefined && tokens.length === throwAt) throw new Error('this client\'s writer broke');
        tokens.push(...d.tokenIds);
        text += d.text;
        if (d.finished) settle();
      },
      onError(e: Error) {
        error = e;
        settle();
      },
    },
  };
}

describe('EngineLoop', () => {
  const params = new SamplingParams({ temperature: 0, maxTokens: 6, ignoreEos: true });

  it("hands out the text Engine.step decodes in the step, with and without stop strings", async () => {
    const prompts = [[5, 6, 7], [100, 200, 300, 400], [9], [7000, 7001], [42, 43, 44, 45, 46]];
    // Seeded sampling over the tiny model's whole vocabulary; two requests with stop strings
    // (decoded in the step either way). Characters split across tokens: the next test.
    const paramsOf = (i: number) => new SamplingParams({ temperature: 1, seed: 100 + i, maxTokens: 40, ignoreEos: true, ...(i % 3 === 1 ? { stop: ['e', 'a'] } : {}) });
    const expected = new Map<number, string>();
    const engine = llm.engine;
    const ids = prompts.map((p, i) => engine.addRequest(p, paramsOf(i), { detokenize: true }));
    while (engine.hasWork) for (const d of engine.step().deltas) expected.set(d.id, (expected.get(d.id) ?? '') + d.text);
    const loop = new EngineLoop(engine, { maxQueue: 8 });
    const got = prompts.map(() => recorder());
    prompts.forEach((p, i) => loop.submit(p, paramsOf(i), got[i]!.listener));
    await Promise.all(got.map((r) => r.ended));
    await loop.idle();
    const texts = ids.map((id) => expected.get(id) ?? '');
    expect(texts.join('').length).toBeGreaterThan(20);
    expect(got.map((r) => r.text)).toEqual(texts);
  });

  it('decodes a character split across tokens, and a finish on a lone lead byte, as Engine.step does', async () => {
    const tok = llm.engine.tokenizer;
    const LEAD = 127, TRAIL = 102, WORD = 963; // byte-level tokens: 0xC3 and 0xA9 ('é' in UTF-8), and 'é' whole
    expect(tok.decode([LEAD, TRAIL])).toBe('é');
    expect(tok.decode([LEAD])).toBe('\uFFFD');
    expect(tok.decode([WORD])).toBe('é');
    // A scripted sampler (the model's logits are ignored): request i draws scripts[i], known by its prompt.
    const scripts = [[LEAD, TRAIL, LEAD, TRAIL, LEAD], [WORD, LEAD, TRAIL, WORD], [LEAD, LEAD, TRAIL, 5]];
    const scripted: Sampler = { sample: (_logits, seqs) => ({ tokens: seqs.map((q) => scripts[q.promptIds[0]! - 50]![q.outputIds.length]!) }) };
    const engine = new Engine({ ...llm.parts, sampler: scripted }, tok, llm.engine.cfg, llm.engine.device);
    const paramsOf = (i: number) => new SamplingParams({ temperature: 0, maxTokens: scripts[i]!.length, ignoreEos: true });
    const expected = new Map<number, string>();
    const ids = scripts.map((_, i) => engine.addRequest([50 + i, 7, 8], paramsOf(i), { detokenize: true }));
    while (engine.hasWork) for (const d of engine.step().deltas) expected.set(d.id, (expected.get(d.id) ?? '') + d.text);
    const texts = ids.map((id) => expected.get(id) ?? '');
    expect(texts).toEqual(['éé\uFFFD', 'ééé', '\uFFFDé\u0026']); // the held-back lead byte is flushed at the finish
    const loop = new EngineLoop(engine, { maxQueue: 8 });
    const got = scripts.map(() => recorder());
    scripts.forEach((_, i) => loop.submit([50 + i, 7, 8], paramsOf(i), got[i]!.listener));
    await Promise.all(got.map((r) => r.ended));
    await loop.idle();
    expect(got.map((r) => r.text)).toEqual(texts);
  });

  it('refuses to decode a step in order behind text still waiting for fillText', async () => {
    const own = LLM.create({ recipe: servedRecipe, device: 'cpu', engine: { kvCacheBytes: 8 * 2 ** 20 }, log: () => {} });
    try {
      const engine = own.engine;
      engine.addRequest([5, 6, 7], new SamplingParams({ temperature: 0, maxTokens: 4, ignoreEos: true }), { detokenize: true });
      const first = await engine.stepAsync({ deferText: true });
      expect(first.deltas[0]!.text).toBe('');
      expect(() => engine.step()).toThrow(/text of 1 earlier token\(s\) waiting for fillText/);
    } finally {
      own.dispose();
    }
  });

  it("a writer that throws ends its own request with the error; the others get every token", async () => {
    const loop = new EngineLoop(llm.engine, { maxQueue: 8 });
    const bad = recorder(2);
    const good = recorder();
    loop.submit([5, 6, 7], params, bad.listener);
    loop.submit([5, 6, 7], params, good.listener);
    await Promise.all([bad.ended, good.ended]);
    await loop.idle();
    expect(good.error).toBeUndefined();
    expect(good.tokens).toHaveLength(6);
    expect(bad.error?.message).toBe("this client's writer broke");
    expect(bad.tokens).toHaveLength(2);
    expect(llm.engine.pending).toBe(0);
    expect(llm.parts.scheduler.stats!().usedBlocks).toBe(0);
  });

  it('close() ends every open request with an error and frees its blocks', async () => {
    const loop = new EngineLoop(llm.engine, { maxQueue: 8 });
    const long = new SamplingParams({ temperature: 0, maxTokens: 500, ignoreEos: true });
    const open = [recorder(), recorder(), recorder()];
    for (const r of open) loop.submit([9, 10, 11], long, r.listener);
    while (open.every((r) => r.tokens.length === 0)) await new Promise((r) => setTimeout(r, 5));
    loop.close();
    await Promise.all(open.map((r) => r.ended));
    await loop.idle();
    for (const r of open) expect(r.error).toBeInstanceOf(ShuttingDownError); // the server answers 503, not "the engine failed"
    expect(open[0]!.error?.message).toBe('the server is shutting down');
    expect(llm.engine.pending).toBe(0);
    expect(llm.parts.scheduler.stats!().usedBlocks).toBe(0);
    // A request after the close is refused the same way (not as a full queue).
    expect(() => loop.submit([9, 10, 11], long, recorder().listener)).toThrow(ShuttingDownError);
  });

  it("close() with a listener whose onError throws still ends the others, and the loop goes idle", async () => {
    const loop = new EngineLoop(llm.engine, { maxQueue: 8 });
    const long = new SamplingParams({ temperature: 0, maxTokens: 500, ignoreEos: true });
    const broken = recorder();
    const open = [recorder(), recorder()];
    loop.submit([9, 10, 11], long, { onDelta: broken.listener.onDelta, onError: () => { throw new Error('its socket is gone'); } });
    for (const r of open) loop.submit([9, 10, 11], long, r.listener);
    while (open.every((r) => r.tokens.length === 0)) await new Promise((r) => setTimeout(r, 5));
    loop.close();
    await Promise.all(open.map((r) => r.ended));
    await loop.idle();
    for (const r of open) expect(r.error?.message).toBe('the server is shutting down');
    expect(llm.engine.pending).toBe(0);
    expect(llm.parts.scheduler.stats!().usedBlocks).toBe(0);
  });
});
