// Lesson 15 on the CPU (tiny model): the official openai npm client against the
// running server on an ephemeral loopback port. Streamed and non-streamed answers
// agree, seeds repeat, log-probs are the logits' log-softmax, every bad input gets
// its status and OpenAI-shaped message, and 64 concurrent streams (a quarter of
// them cut off mid-stream) get exactly the offline engine's tokens and leave every
// KV block free.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';

import { servedRecipe } from '../src/recipe.ts';
import { type ServingServer, createServer } from '../src/server.ts';
import { logprobTestRecipe } from './logprob-sampler.ts';

const ENGINE = { kvCacheBytes: 32 * 2 ** 20 };
const quiet = () => {};
let server: ServingServer;
let url: string;
let client: OpenAI;
let model: string;

beforeAll(async () => {
  server = createServer({ recipe: logprobTestRecipe, device: 'cpu', engine: ENGINE, log: quiet, maxQueue: 256 });
  url = await server.listen(0);
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  model = server.modelName;
});
afterAll(async () => {
  await server?.close();
});

async function chatStream(body: Omit<OpenAI.Chat.ChatCompletionCreateParamsStreaming, 'model' | 'stream'>) {
  const stream = await client.chat.completions.create({ ...body, model, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined | null;
  let chunks = 0;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      text += ch.delta.content ?? '';
      if (ch.delta.content !== undefined && ch.delta.role === undefined) chunks++;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { text, finish, usage, chunks };
}

describe('lesson 15: the openai client against the server (CPU)', () => {
  it('lists the model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([model]);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('chat: the streamed text is the non-streamed text; a seed repeats; a stop string cuts where the text first holds it', async () => {
    const msg = [{ role: 'user' as const, content: 'Write a haiku about memory bandwidth.' }];
    const body = { messages: msg, max_tokens: 16, temperature: 0.9, seed: 7 };
    const full = await client.chat.completions.create({ ...body, model });
    const text = full.choices[0]!.message.content!;
    expect(full.usage!.completion_tokens).toBe(16);
    expect(full.choices[0]!.finish_reason).toBe('length');
    const again = await client.chat.completions.create({ ...body, model });
    expect(again.choices[0]!.message.content).toBe(text);
    const streamed = await chatStream(body);
    expect(streamed.text).toBe(text);
    expect(streamed.usage).toEqual(full.usage);
    expect(streamed.chunks).toBe(16); // one chunk per sampled token
    const other = await client.chat.completions.create({ ...body, seed: 8, model });
    expect(other.choices[0]!.message.content).not.toBe(text);

    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    const cut = await client.chat.completions.create({ ...body, stop: [stop], model });
    expect(cut.choices[0]!.message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).toBe('stop');
    expect((await chatStream({ ...body, stop })).text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it("chat: Qwen3's thinking switch reaches the template (an empty think block: more prompt tokens)", async () => {
    const msg = [{ role: 'user' as const, content: 'hi' }];
    const on = await client.chat.completions.create({ messages: msg, max_tokens: 1, model });
    const off = await client.chat.completions.create({ messages: msg, max_tokens: 1, model, chat_template_kwargs: { enable_thinking: false } } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    const tok = server.llm.tokenizer;
    expect(on.usage!.prompt_tokens).toBe(tok.encodeChat(msg, { enableThinking: true }).length);
    expect(off.usage!.prompt_tokens).toBe(tok.encodeChat(msg, { enableThinking: false }).length);
    expect(off.usage!.prompt_tokens).toBeGreaterThan(on.usage!.prompt_tokens);
  });

  it('completions: n choices, token-list and string prompts, streamed = non-streamed', async () => {
    const body = { prompt: [[1, 2, 3, 4], [500, 600]], max_tokens: 6, temperature: 0.7, seed: 3, n: 2, ignore_eos: true } as const;
    const full = await client.completions.create({ ...body, model } as unknown as OpenAI.Completions.CompletionCreateParamsNonStreaming);
    expect(full.choices.map((c) => c.index).sort()).toEqual([0, 1, 2, 3]);
    expect(full.usage).toEqual({ prompt_tokens: 2 * (4 + 2), completion_tokens: 4 * 6, total_tokens: 12 + 24 });
    // With a seed, choice j draws from seed + j: the two choices of one prompt differ.
    expect(full.choices[0]!.text).not.toBe(full.choices[1]!.text);
    const stream = await client.completions.create({ ...body, model, stream: true } as unknown as OpenAI.Completions.CompletionCreateParamsStreaming);
    const texts = ['', '', '', ''];
    for await (const c of stream) for (const ch of c.choices) texts[ch.index] += ch.text;
    expect(texts).toEqual([...full.choices].sort((a, b) => a.index - b.index).map((c) => c.text));
    const one = await client.completions.create({ prompt: 'Hello', max_tokens: 4, temperature: 0, model });
    expect(one.usage!.prompt_tokens).toBe(server.llm.tokenizer.encode('Hello').length);
  });

  it("logprobs: the chosen token's and the top ones' are the log-softmax of the offline engine's logits", async () => {
    const messages = [{ role: 'user' as const, content: 'What is 17 * 23?' }];
    const r = await client.chat.completions.create({ messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3, model });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(5);
    const llm = LLM.create({ recipe: logprobTestRecipe, device: 'cpu', engine: ENGINE, log: quiet });
    try {
      const ids = llm.tokenizer.encodeChat(messages);
      const [off] = llm.generate([ids], new SamplingParams({ temperature: 0, maxTokens: 5, logprobs: 3 }));
      off!.logprobs!.forEach((lp, i) => {
        const got = content[i]!;
        expect(got.token).toBe(llm.tokenizer.decode([lp.token]));
        expect(got.logprob).toBeCloseTo(lp.logprob, 5);
        expect(got.top_logprobs.map((t) => t.logprob)).toEqual(lp.top.map((t) => t.logprob));
        // Greedy: the chosen token is the most likely one.
        expect(got.logprob).toBe(got.top_logprobs[0]!.logprob);
        expect(got.logprob).toBeLessThanOrEqual(0);
      });
    } finally {
      llm.dispose();
    }
    const c = await client.completions.create({ prompt: 'Hello', max_tokens: 4, temperature: 0, logprobs: 2, model });
    const lp = c.choices[0]!.logprobs!;
    expect(lp.tokens!.join('')).toBe(c.choices[0]!.text);
    expect(lp.token_logprobs).toHaveLength(4);
    expect(lp.top_logprobs!.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2)).toBe(true);
  });

  it('bad input: its status and an OpenAI-shaped message, and the server keeps serving', async () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const bad = await post('{"model": ');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/JSON/);
    const expectError = async (p: Promise<unknown>, status: number, message: RegExp) => {
      const e = await p.then(() => undefined, (err: unknown) => err);
      expect(e).toBeInstanceOf(OpenAI.APIError);
      expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(status);
      expect((e as InstanceType<typeof OpenAI.APIError>).message).toMatch(message);
    };
    const msg = [{ role: 'user' as const, content: 'hi' }];
    await expectError(client.chat.completions.create({ messages: msg, model, temperature: 'hot' as unknown as number }), 400, /temperature/);
    await expectError(client.chat.completions.create({ messages: msg, model, max_tokens: 0 }), 400, /max_tokens/);
    await expectError(client.chat.completions.create({ messages: [], model }), 400, /messages/);
    await expectError(client.chat.completions.create({ messages: msg, model: 'gpt-4o' }), 404, /gpt-4o.*does not exist/);
    await expectError(client.completions.create({ prompt: Array(4000).fill(7), max_tokens: 200, model }), 400, /maximum context length is 4096 tokens.*4200 tokens \(4000 in the prompt, 200 for the completion\)/);
    await expectError(client.chat.completions.create({ messages: msg, model, min_p: 0.1 } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming), 400, /minP/);
    await expectError(client.completions.create({ prompt: 'x', model, n: 300 }), 400, /n/);
    await expectError(client.completions.create({ prompt: [1, 999_999], model }), 400, /token id 999999/);
    // The same server is fine afterwards.
    expect((await client.completions.create({ prompt: 'ok', max_tokens: 2, model })).usage!.completion_tokens).toBeGreaterThan(0);
  });

  it("lesson 11's own sampler refuses log-probs and penalties: 400 naming them; a full queue is 429; a wrong or missing key 401", async () => {
    const s = createServer({ recipe: servedRecipe, device: 'cpu', engine: ENGINE, log: quiet, maxQueue: 2, apiKey: 'sesame' });
    try {
      const base = `${await s.listen(0)}/v1`;
      const good = new OpenAI({ baseURL: base, apiKey: 'sesame', maxRetries: 0 });
      const m = s.modelName;
      const err = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
      const refused = await err(good.completions.create({ prompt: 'x', model: m, logprobs: 1 }));
      expect(refused?.status).toBe(400);
      expect(refused?.message).toMatch(/HostSampler.*logprobs/);
      expect((await err(good.completions.create({ prompt: 'x', model: m, presence_penalty: 0.5 })))?.message).toMatch(/presencePenalty/);
      const full = await err(good.completions.create({ prompt: 'x', model: m, n: 3 }));
      expect(full?.status).toBe(429);
      expect(full?.message).toMatch(/queue is full.*needs 3 more places \(at most 2/);
      expect((await err(new OpenAI({ baseURL: base, apiKey: 'wrong', maxRetries: 0 }).models.list()))?.status).toBe(401);
      const none = await fetch(`${base}/models`);
      expect(none.status).toBe(401);
      expect(((await none.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
      expect((await good.completions.create({ prompt: 'x', model: m, n: 2, max_tokens: 2 })).choices).toHaveLength(2);
      expect((await fetch(`${base.replace('/v1', '')}/metrics`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('a non-streamed request whose client goes away is aborted: its blocks are free at once', async () => {
    const controller = new AbortController();
    const sent = fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'a long one', max_tokens: 3000, ignore_eos: true }),
      signal: controller.signal,
    }).catch((e: unknown) => e);
    for (let t = 0; t < 100 && server.loop.pending === 0; t++) await new Promise((r) => setTimeout(r, 10));
    expect(server.loop.pending).toBe(1);
    controller.abort();
    expect(await sent).toBeInstanceOf(Error);
    for (let t = 0; t < 100 && server.loop.pending > 0; t++) await new Promise((r) => setTimeout(r, 10));
    expect(server.loop.pending).toBe(0);
    expect(server.llm.parts.scheduler.stats!().usedBlocks).toBe(0);
  });

  it('64 concurrent streams, a quarter cut off mid-stream: the others get the offline engine\'s tokens; every block is free after', async () => {
    const N = 64;
    const prompts = Array.from({ length: N }, (_, i) => `Request ${i}: ${'tell me about GPUs '.repeat(1 + (i % 5))}`);
    const params = prompts.map((_, i) => ({ max_tokens: 6 + (i % 7), temperature: i % 3 === 0 ? 0 : 0.8, seed: 100 + i, ignore_eos: true }));
    const cut = (i: number) => i % 4 === 1;
    const runs = prompts.map(async (prompt, i) => {
      const controller = new AbortController();
      const stream = await client.completions.create({ prompt, model, stream: true, stream_options: { include_usage: true }, ...params[i]! } as unknown as OpenAI.Completions.CompletionCreateParamsStreaming, { signal: controller.signal });
      let text = '';
      let tokens = 0;
      let usage: OpenAI.CompletionUsage | undefined;
      try {
        for await (const c of stream) {
          if (c.usage) usage = c.usage;
          for (const ch of c.choices) {
            text += ch.text;
            tokens++;
            if (cut(i) && tokens === 2) controller.abort();
          }
        }
      } catch (e) {
        if (!cut(i)) throw e;
      }
      return { text, tokens, usage };
    });
    const got = await Promise.all(runs);

    const llm = LLM.create({ recipe: logprobTestRecipe, device: 'cpu', engine: ENGINE, log: quiet });
    let offline;
    try {
      offline = llm.generate(prompts, params.map((p) => new SamplingParams({ maxTokens: p.max_tokens, temperature: p.temperature, seed: p.seed, ignoreEos: true })));
    } finally {
      llm.dispose();
    }
    for (let i = 0; i < N; i++) {
      if (cut(i)) {
        expect(got[i]!.tokens).toBeLessThan(params[i]!.max_tokens);
        continue;
      }
      expect(got[i]!.text, `request ${i}`).toBe(offline[i]!.text);
      expect(got[i]!.tokens).toBe(offline[i]!.tokenIds.length);
      expect(got[i]!.usage?.completion_tokens).toBe(offline[i]!.tokenIds.length);
    }
    // The cut-off requests are aborted when their sockets close; then nothing is live and no block is referenced.
    for (let t = 0; t < 100 && server.loop.pending > 0; t++) await new Promise((r) => setTimeout(r, 20));
    expect(server.loop.pending).toBe(0);
    const stats = server.llm.parts.scheduler.stats!();
    expect(stats.usedBlocks).toBe(0);
    expect(stats.waiting + stats.running).toBe(0);
    const disconnected = (await server.metrics.requests.get()).values.find((v) => v.labels.status === 'disconnected');
    expect(disconnected?.value).toBe(N / 4 + 1); // and the non-streamed one above
  });
});
