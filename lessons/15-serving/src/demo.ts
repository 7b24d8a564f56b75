// `pnpm lesson 15`: start the server on a free loopback port, send a few requests
// with the official openai client (a chat answer, the same one streamed, a plain
// completion with n = 2, a bad request), print what came back and the server's
// metrics, and stop.
import OpenAI from 'openai';

import { defaultDevice, parseDevice } from '@aios/engine-core/backend.ts';
import { type CommandSpec, DEVICE_FLAG, MODEL_FLAG, deviceFlag, runCli } from '@aios/engine-core/cli/args.ts';

import { servedRecipe } from './recipe.ts';
import { createServer } from './server.ts';

const FLAGS = { ...MODEL_FLAG, ...DEVICE_FLAG } as const;
const SPEC: CommandSpec<typeof FLAGS> = {
  command: 'pnpm lesson 15',
  summary: "Lesson 15: the newest lesson's engine behind an OpenAI-compatible server; a few requests with the openai client, then stop.",
  flags: FLAGS,
};

void runCli(SPEC, async (values) => {
  const device = deviceFlag(values.device, parseDevice) ?? defaultDevice();
  const server = createServer({ recipe: servedRecipe, device, ...(values.model !== undefined ? { model: values.model } : {}) });
  try {
    const url = await server.listen(0);
    console.log(`serving lesson ${servedRecipe.lesson}'s engine (${servedRecipe.name}) on ${device} at ${url}/v1 as model "${server.modelName}"`);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
    const model = server.modelName;
    const messages = [{ role: 'user' as const, content: 'Write a haiku about memory bandwidth.' }];

    const chat = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0.7, seed: 1 });
    console.log(`\nchat (seed 1, 24 tokens): ${JSON.stringify(chat.choices[0]!.message.content)} [${chat.choices[0]!.finish_reason}; usage ${JSON.stringify(chat.usage)}]`);

    process.stdout.write('the same, streamed: ');
    let streamed = '';
    for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0.7, seed: 1, stream: true })) {
      const piece = chunk.choices[0]?.delta.content ?? '';
      streamed += piece;
      process.stdout.write(JSON.stringify(piece).slice(1, -1));
    }
    console.log(`\n  streamed text ${streamed === chat.choices[0]!.message.content ? 'equals' : 'DIFFERS FROM'} the non-streamed one`);

    const done = await client.completions.create({ model, prompt: 'The GPU is', max_tokens: 12, n: 2, temperature: 0.8, seed: 5 });
    for (const c of done.choices) console.log(`completion choice ${c.index}: ${JSON.stringify(c.text)}`);

    try {
      await client.chat.completions.create({ model: 'gpt-4o', messages });
    } catch (e) {
      if (e instanceof OpenAI.APIError) console.log(`\na bad request (unknown model): ${e.status} ${e.message}`);
      else throw e;
    }
    const metrics = (await (await fetch(`${url}/metrics`)).text()).split('\n').filter((l) => /^aios_(generation_tokens_total|requests_total|time_to_first_token_seconds_count|kv_blocks_used) /.test(l) || l.startsWith('aios_requests_total'));
    console.log(`\n/metrics (a few lines):\n  ${metrics.join('\n  ')}`);
  } finally {
    await server.close();
  }
  console.log('\nstopped. Serve for real with `pnpm serve` (pnpm serve --help); measure it with `pnpm bench serve`.');
});
