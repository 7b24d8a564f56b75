// The OpenAI-compatible server: Fastify routes over one EngineLoop.
//
//   GET  /v1/models             the one model served
//   POST /v1/completions        prompt(s) -> text, streamed (SSE) or not
//   POST /v1/chat/completions   messages -> the model's chat template -> text, streamed or not
//   GET  /health                200 while the server runs
//   GET  /metrics               Prometheus text (queue, running, KV blocks, tok/s, TTFT, ITL)
//
// Every request becomes n engine requests (its choices). A streamed choice writes
// one SSE chunk per delta, as the engine samples it; a client that goes away has
// its requests aborted at once (the scheduler frees their blocks before the next step).
import path from 'node:path';

import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

import type { Device } from '@aios/engine-core/backend.ts';
import type { DType } from '@aios/engine-core/dtype.ts';
import type { RequestDelta } from '@aios/engine-core/engine/engine.ts';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import type { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { FinishReason } from '@aios/engine-core/engine/sequence.ts';
import type { EngineOptions, Recipe, SampledLogprobs } from '@aios/engine-core/engine/types.ts';

import { EngineLoop, QueueFullError, ShuttingDownError } from './engine-loop.ts';
import { ServerMetrics } from './metrics.ts';
import {
  ApiError,
  type ChatBody,
  type CompletionBody,
  type SamplingBody,
  chatBodySchema,
  chatMessages,
  completionBodySchema,
  completionPrompts,
  samplingParams,
} from './protocol.ts';

export interface ServerOptions {
  /** The engine to serve: the newest lesson's by default (recipe.ts), a test's own otherwise. */
  recipe: Recipe;
  /** A Hugging Face Qwen3 folder; default: AIOS_MODEL, else the embedded random-weight model. */
  model?: string;
  device?: Device;
  dtype?: DType;
  engine?: Partial<EngineOptions>;
  /** When set, /v1 routes need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The most requests waiting for the scheduler; more are answered 429 (default 1024). */
  maxQueue?: number;
  /** The name clients put in `model` (default: the model folder's name). */
  modelName?: string;
  log?: (s: string) => void;
}

export const DEFAULT_MAX_QUEUE = 1024;

type Kind = 'chat' | 'completion';

/** One choice's engine request and what it has produced so far. */
interface Choice {
  index: number;
  id?: number;
  text: string;
  tokens: number;
  /** Kept for a non-streamed answer only (a stream sends each delta's as it comes). */
  logprobs: SampledLogprobs[];
  finishReason?: FinishReason;
  lastTokenAt?: number;
}

function finishReasonOf(r: FinishReason | undefined): string | null {
  if (r === 'length') return 'length';
  if (r === 'eos' || r === 'stop') return 'stop';
  return null;
}

let counter = 0;
/** A closing server's answer to a request it ends or refuses: 503, try again elsewhere (not the engine failing). */
function shuttingDown(e: ShuttingDownError): ApiError {
  return new ApiError(503, e.message, 'server_error', null, 'shutting_down');
}

const requestId = (prefix: string) => `${prefix}-${Date.now().toString(36)}${(counter++).toString(36)}`;

export class ServingServer {
  readonly app: FastifyInstance;
  readonly loop: EngineLoop;
  readonly metrics: ServerMetrics;
  readonly modelName: string;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    readonly llm: LLM,
    readonly options: ServerOptions,
  ) {
    this.modelName = options.modelName ?? path.basename(llm.modelDir);
    this.metrics = new ServerMetrics(llm.engine);
    this.loop = new EngineLoop(llm.engine, { maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE, onStep: (t) => this.metrics.onStep(t) });
    // Strict types: "0.5" is not a temperature (Fastify's default Ajv would coerce it).
    this.app = Fastify({ logger: false, bodyLimit: 64 * 2 ** 20, ajv: { customOptions: { coerceTypes: false, allErrors: false } } });
    this.routes();
  }

  /** Listens on host:port (port 0: an ephemeral one); returns the base URL. */
  async listen(port = 8000, host = '127.0.0.1'): Promise<string> {
    await this.app.listen({ port, host });
    const addr = this.app.server.address();
    if (!addr || typeof addr === 'string') throw new Error(`the server listens on ${String(addr)}, not a TCP port`);
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${h}:${addr.port}`;
  }

  /** Ends every open request (with an error its client sees), waits for the step in flight, stops listening, frees the engine. */
  async close(): Promise<void> {
    this.loop.close();
    await this.loop.idle();
    await this.app.close();
    this.llm.dispose();
  }

  private routes(): void {
    const app = this.app;
    app.setErrorHandler((err: FastifyError | ApiError | Error, _req, reply) => {
      const e = toApiError(err);
      this.metrics.requests.inc({ status: String(e.status) });
      void reply.status(e.status).send(e.body());
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.status(404).send(new ApiError(404, `no route ${req.method} ${req.url}`, 'invalid_request_error', null, 'not_found').body());
    });
    if (this.options.apiKey !== undefined) {
      const expected = `Bearer ${this.options.apiKey}`;
      app.addHook('onRequest', async (req) => {
        if (!req.url.startsWith('/v1/')) return; // /health and /metrics stay open, as in vLLM
        const given = req.headers.authorization;
        if (given !== expected)
          throw new ApiError(401, given ? 'Incorrect API key provided.' : 'Missing API key: send Authorization: Bearer <key>.', 'invalid_request_error', null, 'invalid_api_key');
      });
    }
    app.get('/health', async () => ({ status: 'ok' }));
    app.get('/metrics', async (_req, reply) => {
      void reply.header('content-type', this.metrics.registry.contentType);
      return this.metrics.text();
    });
    app.get('/v1/models', async () => ({
      object: 'list',
      data: [{ id: this.modelName, object: 'model', created: this.created, owned_by: 'aios-ts', max_model_len: this.llm.cfg.maxPositionEmbeddings }],
    }));
    app.post('/v1/chat/completions', { schema: { body: chatBodySchema } }, (req, reply) => this.chat(req as FastifyRequest<{ Body: ChatBody }>, reply));
    app.post('/v1/completions', { schema: { body: completionBodySchema } }, (req, reply) => this.completion(req as FastifyRequest<{ Body: CompletionBody }>, reply));
  }

  private checkModel(body: SamplingBody): void {
    if (body.model !== this.modelName)
      throw new ApiError(404, `The model \`${body.model}\` does not exist. This server serves \`${this.modelName}\`.`, 'invalid_request_error', 'model', 'model_not_found');
  }

  /** The prompt's length and the request's max tokens against the model's context; the default max is what is left. */
  private maxTokens(promptTokens: number, asked: number | null | undefined, fallback: number | undefined): number {
    const context = this.llm.cfg.maxPositionEmbeddings;
    const left = context - promptTokens;
    const max = asked ?? Math.min(fallback ?? left, left);
    if (promptTokens + max > context || left < 1)
      throw new ApiError(
        400,
        `This model's maximum context length is ${context} tokens. However, you requested ${promptTokens + Math.max(max, 1)} tokens (${promptTokens} in the prompt, ${Math.max(max, 1)} for the completion). Please reduce the length of the prompt or of max_tokens.`,
        'invalid_request_error',
        asked != null ? 'max_tokens' : 'messages',
        'context_length_exceeded',
      );
    return max;
  }

  private async chat(req: FastifyRequest<{ Body: ChatBody }>, reply: FastifyReply): Promise<unknown> {
    const body = req.body;
    this.checkModel(body);
    let ids: number[];
    try {
      ids = this.llm.tokenizer.encodeChat(chatMessages(body), { enableThinking: body.chat_template_kwargs?.enable_thinking ?? true });
    } catch (e) {
      throw new ApiError(400, `the messages do not fit the chat template: ${(e as Error).message}`, 'invalid_request_error', 'messages');
    }
    if (body.top_logprobs != null && !body.logprobs) throw new ApiError(400, 'top_logprobs needs logprobs: true', 'invalid_request_error', 'top_logprobs');
    const maxTokens = this.maxTokens(ids.length, body.max_completion_tokens ?? body.max_tokens, undefined);
    const params = samplingParams(body, { maxTokens, logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined });
    return this.serve('chat', [ids], params, body, req, reply);
  }

  private async completion(req: FastifyRequest<{ Body: CompletionBody }>, reply: FastifyReply): Promise<unknown> {
    const body = req.body;
    this.checkModel(body);
    if (body.echo) throw new ApiError(400, 'echo is not supported', 'invalid_request_error', 'echo');
    if (body.suffix) throw new ApiError(400, 'suffix is not supported', 'invalid_request_error', 'suffix');
    if (body.best_of != null && body.best_of !== (body.n ?? 1)) throw new ApiError(400, 'best_of other than n is not supported', 'invalid_request_error', 'best_of');
    const prompts = completionPrompts(body).map((p, i) => {
      try {
        return typeof p === 'string' ? this.llm.tokenizer.encode(p) : p;
      } catch (e) {
        throw new ApiError(400, `prompt ${i}: ${(e as Error).message}`, 'invalid_request_error', 'prompt');
      }
    });
    // An empty prompt or a token id past the vocabulary: Engine.addRequest refuses it (a 400 from serve).
    const longest = Math.max(...prompts.map((p) => p.length));
    const maxTokens = this.maxTokens(longest, body.max_tokens, 16);
    const params = samplingParams(body, { maxTokens, logprobs: body.logprobs ?? undefined });
    return this.serve('completion', prompts, params, body, req, reply);
  }

  /** Submits every choice of every prompt, then answers: SSE chunks as deltas come, or one body at the end. */
  private serve(kind: Kind, prompts: number[][], params: SamplingParams, body: SamplingBody, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const n = body.n ?? 1;
    const stream = body.stream ?? false;
    const includeUsage = stream && (body.stream_options?.include_usage ?? false);
    const id = requestId(kind === 'chat' ? 'chatcmpl' : 'cmpl');
    const object = kind === 'chat' ? (stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0) * n;
    const choices: Choice[] = [];
    prompts.forEach((_, p) => {
      for (let j = 0; j < n; j++) choices.push({ index: p * n + j, text: '', tokens: 0, logprobs: [] });
    });
    const admitted = performance.now();
    const base = { id, object, created: Math.floor(Date.now() / 1000), model: this.modelName };
    const tokenizer = this.llm.tokenizer;
    // The model's padding ids (past the tokenizer's vocabulary) have no text, as the engine decodes them.
    const decodeModelIds = { modelVocabSize: this.llm.cfg.vocabSize };
    const tokenText = (t: number) => tokenizer.decode([t], decodeModelIds);
    const logprobsOf = (lps: SampledLogprobs[], textOffset: number) => {
      if (kind === 'chat') {
        const entry = (t: { token: number; logprob: number }) => {
          const s = tokenText(t.token);
          return { token: s, logprob: t.logprob, bytes: [...Buffer.from(s, 'utf8')] };
        };
        return { content: lps.map((l) => ({ ...entry(l), top_logprobs: l.top.map(entry) })) };
      }
      let offset = textOffset;
      const offsets: number[] = [];
      const tokens = lps.map((l) => {
        const s = tokenText(l.token);
        offsets.push(offset);
        offset += s.length;
        return s;
      });
      return {
        tokens,
        token_logprobs: lps.map((l) => l.logprob),
        top_logprobs: lps.map((l) => Object.fromEntries(l.top.map((t) => [tokenText(t.token), t.logprob]))),
        text_offset: offsets,
      };
    };
    const usage = () => {
      const completion = choices.reduce((a, c) => a + c.tokens, 0);
      return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
    };

    return new Promise<unknown>((resolve, reject) => {
      let done = 0;
      let ended = false;
      const res = reply.raw;
      const write = (data: unknown) => {
        if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
      };
      // A delta's chunk is { ...base, choices: [choice], usage? }: the envelope's JSON is built once, each delta stringifies its choice only.
      const chunkHead = `data: ${JSON.stringify(base).slice(0, -1)},"choices":[`;
      const chunkTail = `]${includeUsage ? ',"usage":null' : ''}}\n\n`;
      const abortAll = () => {
        for (const c of choices) if (c.id !== undefined && c.finishReason === undefined) this.loop.abort(c.id);
      };
      // The response closes when it is sent or when the client goes away; in the second case every choice still running is aborted now.
      res.on('close', () => {
        if (!ended) {
          ended = true;
          abortAll();
          this.metrics.requests.inc({ status: 'disconnected' });
          resolve(undefined);
        }
      });
      const finishAll = () => {
        if (ended) return;
        this.metrics.requestLatency.observe((performance.now() - admitted) / 1000);
        if (stream) {
          if (includeUsage) write({ ...base, choices: [], usage: usage() });
          res.write('data: [DONE]\n\n');
          ended = true;
          this.metrics.requests.inc({ status: '200' });
          res.end();
          resolve(undefined);
          return;
        }
        ended = true;
        this.metrics.requests.inc({ status: '200' });
        resolve({
          ...base,
          choices: choices.map((c) => {
            const lp = params.logprobs !== undefined ? logprobsOf(c.logprobs, 0) : null;
            const finish_reason = finishReasonOf(c.finishReason);
            return kind === 'chat'
              ? { index: c.index, message: { role: 'assistant', content: c.text }, logprobs: lp, finish_reason }
              : { index: c.index, text: c.text, logprobs: lp, finish_reason };
          }),
          usage: usage(),
        });
      };
      const onDelta = (c: Choice, d: RequestDelta) => {
        if (ended) return;
        const now = performance.now();
        if (c.lastTokenAt === undefined) this.metrics.timeToFirstToken.observe((now - admitted) / 1000);
        else this.metrics.interTokenLatency.observe((now - c.lastTokenAt) / 1000);
        c.lastTokenAt = now;
        const offset = c.text.length;
        c.text += d.text;
        c.tokens += d.tokenIds.length;
        if (d.finished) c.finishReason = d.finishReason;
        if (stream) {
          const lp = d.logprobs ? logprobsOf(d.logprobs, offset) : null;
          const finish_reason = d.finished ? finishReasonOf(d.finishReason) : null;
          const choice =
            kind === 'chat' ? { index: c.index, delta: { content: d.text }, logprobs: lp, finish_reason } : { index: c.index, text: d.text, logprobs: lp, finish_reason };
          if (!res.destroyed) res.write(chunkHead + JSON.stringify(choice) + chunkTail);
        } else if (d.logprobs) c.logprobs.push(...d.logprobs); // for the one body at the end (a stream sent them already)
        if (d.finished && ++done === choices.length) finishAll();
      };

      const fail = (e: unknown) => {
        ended = true;
        abortAll();
        reject(e);
      };
      // Submit every choice, all or none: a full queue or the engine's refusal (a RangeError) queues none.
      try {
        const ids = this.loop.submitAll(
          choices.map((c) => {
            const p = Math.floor(c.index / n), j = c.index % n;
            // With a seed, choice j draws from seed + j: n different samples, each repeatable.
            const choiceParams = params.seed !== undefined && j > 0 ? params.with({ seed: (params.seed + j) % 2 ** 32 }) : params;
            return {
              prompt: prompts[p]!,
              params: choiceParams,
              listener: {
                onDelta: (d: RequestDelta) => onDelta(c, d),
                onError: (e: Error) => {
                  const err = e instanceof ShuttingDownError ? shuttingDown(e) : new ApiError(500, `the engine failed: ${e.message}`, 'server_error');
                  if (!stream && !ended) fail(err);
                  else if (!ended) {
                    write({ error: err.body().error });
                    ended = true;
                    abortAll(); // the response is over: its other choices stop too
                    res.end();
                    resolve(undefined);
                  }
                },
              },
            };
          }),
        );
        ids.forEach((id, i) => (choices[i]!.id = id));
        this.metrics.promptTokens.inc(promptTokens);
      } catch (e) {
        ended = true;
        if (e instanceof QueueFullError) return reject(new ApiError(429, e.message, 'rate_limit_exceeded', null, 'queue_full'));
        if (e instanceof ShuttingDownError) return reject(shuttingDown(e));
        if (e instanceof RangeError) return reject(new ApiError(400, e.message.replace(/^addRequest: /, ''), 'invalid_request_error'));
        return reject(e);
      }
      if (stream) {
        reply.hijack();
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        if (kind === 'chat') for (const c of choices) write({ ...base, choices: [{ index: c.index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
      }
      void req;
    });
  }
}

/** Any error a route throws, as the API's error: Fastify's validation and JSON errors are 400s; anything else unexpected is a 500 that says what. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as FastifyError;
  if (e.validation) {
    const v = e.validation[0];
    const field = v?.instancePath ? v.instancePath.replace(/^\//, '').replace(/\//g, '.') : (v?.params as { missingProperty?: string } | undefined)?.missingProperty;
    return new ApiError(400, `invalid request: ${e.message}`, 'invalid_request_error', field ?? null);
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new ApiError(e.statusCode, e.message, 'invalid_request_error', null, e.code ?? null);
  return new ApiError(500, `internal error: ${e.message ?? String(err)}`, 'server_error');
}

/** Builds the engine (LLM.create with the recipe) and the server over it; call listen() to serve. */
export function createServer(options: ServerOptions): ServingServer {
  const llm = LLM.create({
    recipe: options.recipe,
    ...(options.model !== undefined ? { model: options.model } : {}),
    ...(options.device !== undefined ? { device: options.device } : {}),
    ...(options.dtype !== undefined ? { dtype: options.dtype } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
    ...(options.log !== undefined ? { log: options.log } : {}),
  });
  return new ServingServer(llm, options);
}
