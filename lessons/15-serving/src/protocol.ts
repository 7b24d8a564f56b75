// The OpenAI API's request bodies as JSON schemas (Fastify validates them before a
// handler runs: a wrong type or range is a 400 naming the field), and the mapping
// from a validated body to the engine's SamplingParams. Fields the engine has no
// use for (user, metadata...) pass; fields it cannot honour are refused by name.
import { MAX_TOP_LOGPROBS, SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { ChatMessage } from '@aios/engine-core/tokenizer.ts';

/** An error the client caused, in OpenAI's shape ({error: {message, type, param, code}}) with its HTTP status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const number = { type: 'number' } as const;
const stop = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] } as const;

/** The sampling fields both endpoints share (vLLM's extras: top_k, min_p, repetition_penalty, ignore_eos). */
const samplingProperties = {
  model: { type: 'string' },
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: ['integer', 'null'], minimum: -1 },
  min_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
  seed: { type: ['integer', 'null'], minimum: 0, maximum: 2 ** 32 - 1 },
  max_tokens: { type: ['integer', 'null'], minimum: 1 },
  stop,
  presence_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  frequency_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  repetition_penalty: { type: ['number', 'null'], exclusiveMinimum: 0 },
  ignore_eos: { type: ['boolean', 'null'] },
  n: { type: ['integer', 'null'], minimum: 1, maximum: 128 },
  stream: { type: ['boolean', 'null'] },
  stream_options: { anyOf: [{ type: 'object', properties: { include_usage: { type: 'boolean' } } }, { type: 'null' }] },
} as const;

const messageContent = {
  anyOf: [
    { type: 'string' },
    { type: 'array', items: { type: 'object', required: ['type', 'text'], properties: { type: { const: 'text' }, text: { type: 'string' } } } },
    { type: 'null' },
  ],
} as const;

export const chatBodySchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...samplingProperties,
    messages: {
      type: 'array',
      minItems: 1,
      items: { type: 'object', required: ['role'], properties: { role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool'] }, content: messageContent } },
    },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: MAX_TOP_LOGPROBS },
    chat_template_kwargs: { anyOf: [{ type: 'object', properties: { enable_thinking: { type: 'boolean' } } }, { type: 'null' }] },
  },
} as const;

export const completionBodySchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...samplingProperties,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        { type: 'array', minItems: 1, items: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } } },
      ],
    },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: MAX_TOP_LOGPROBS },
    echo: { type: ['boolean', 'null'] },
    suffix: { type: ['string', 'null'] },
    best_of: { type: ['integer', 'null'] },
  },
} as const;

type Maybe<T> = T | null | undefined;

export interface SamplingBody {
  model: string;
  temperature?: Maybe<number>;
  top_p?: Maybe<number>;
  top_k?: Maybe<number>;
  min_p?: Maybe<number>;
  seed?: Maybe<number>;
  max_tokens?: Maybe<number>;
  stop?: Maybe<string | string[]>;
  presence_penalty?: Maybe<number>;
  frequency_penalty?: Maybe<number>;
  repetition_penalty?: Maybe<number>;
  ignore_eos?: Maybe<boolean>;
  n?: Maybe<number>;
  stream?: Maybe<boolean>;
  stream_options?: Maybe<{ include_usage?: boolean }>;
}

export interface ChatBody extends SamplingBody {
  messages: { role: string; content?: Maybe<string | { type: 'text'; text: string }[]> }[];
  max_completion_tokens?: Maybe<number>;
  logprobs?: Maybe<boolean>;
  top_logprobs?: Maybe<number>;
  chat_template_kwargs?: Maybe<{ enable_thinking?: boolean }>;
}

export interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][];
  logprobs?: Maybe<number>;
  echo?: Maybe<boolean>;
  suffix?: Maybe<string>;
  best_of?: Maybe<number>;
}

/** The chat messages as the template reads them (a list of text parts becomes one string). */
export function chatMessages(body: ChatBody): ChatMessage[] {
  return body.messages.map((m) => ({
    // The chat template knows system, user, assistant and tool; OpenAI's "developer" is a system message.
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join(''),
  }));
}

/** The prompts of a completion request: one string or token list each. */
export function completionPrompts(body: CompletionBody): (string | number[])[] {
  const p = body.prompt;
  if (typeof p === 'string') return [p];
  if (p.length > 0 && typeof p[0] === 'number') return [p as number[]];
  return p as string[] | number[][];
}

/**
 * The request's SamplingParams. `maxTokens` is the request's, else `defaultMax`
 * (what is left of the context for chat, as OpenAI's default is "up to the context";
 * 16 for completions, OpenAI's default there). A value SamplingParams refuses is a 400.
 */
export function samplingParams(body: SamplingBody, opts: { maxTokens: number; logprobs: number | undefined }): SamplingParams {
  const stopList = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  try {
    return new SamplingParams({
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      // vLLM's -1 and 0 both mean "all tokens".
      topK: body.top_k == null || body.top_k < 0 ? 0 : body.top_k,
      minP: body.min_p ?? 0,
      repetitionPenalty: body.repetition_penalty ?? 1,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      ...(opts.logprobs !== undefined ? { logprobs: opts.logprobs } : {}),
      maxTokens: opts.maxTokens,
      ignoreEos: body.ignore_eos ?? false,
      stop: stopList.filter((s) => s.length > 0),
      ...(body.seed != null ? { seed: body.seed } : {}),
    });
  } catch (e) {
    if (e instanceof RangeError) throw new ApiError(400, e.message.replace(/^SamplingParams: /, ''));
    throw e;
  }
}
