// The roofline of a workload: the fastest it could run on a card, from the
// bytes it must move and the FLOPs it must do, at the card's *measured* copy
// bandwidth and bf16 GEMM rate (its lesson-00 environment record). Pure
// arithmetic, no device: docs/benchmarking.md explains the model.
//
// What is counted (bf16, 2 bytes an element):
//   - a forward reads every weight once: all parameters except an untied input
//     embedding table (only its looked-up rows are read; a tied one is read whole as the LM head);
//   - each token through the decoder costs 2 FLOPs per decoder parameter, and each
//     logits row 2 FLOPs per LM-head parameter (a prefill computes logits for its last position only);
//   - a decode step also reads each sequence's KV cache: context tokens x KV bytes per token,
//     KV bytes per token = 2 (K and V) x layers x kvHeads x headDim x 2 bytes;
//   - a step takes at least max(bytes / bandwidth, FLOPs / GEMM rate).
// Attention FLOPs, KV writes, activations and every launch are left out: the
// bound is optimistic by construction, as a roofline should be.
import type { EngineShape } from '../engine/types.ts';
import type { AnyRecord } from './records.ts';
import { type Qwen3Config, paramCount } from '../model/config.ts';
import type { Workload } from './workloads.ts';

/** A card's measured rates. */
export interface CardRates {
  /** Bytes moved per second (read + write), in GB/s (1e9): lesson 00's results.copy.gbPerS. */
  bandwidthGBps: number;
  /** Dense bf16 GEMM rate in TFLOP/s (1e12): lesson 00's results.gemm.tflops. */
  gemmTflops: number;
  /** Where the numbers come from (a record's file name), quoted in the basis. */
  source?: string;
  card?: string;
}

export interface ModelCosts {
  params: number;
  /** Parameters every token is multiplied through: the decoder layers and the final norm. */
  decoderParams: number;
  /** The LM head (vocab x hidden), applied once per logits row. */
  headParams: number;
  /** Bytes one forward reads: decoder + LM head weights (an untied input embedding is only gathered from). */
  weightBytes: number;
  kvBytesPerToken: number;
}

export interface RequestShape {
  promptTokens: number;
  outputTokens: number;
}

export type { EngineShape } from '../engine/types.ts';

export interface Roofline {
  outputTokPerS: number;
  /** The minimum seconds the workload takes. */
  seconds: number;
  /** One line: the arithmetic behind the number. */
  basis: string;
}

const BF16_BYTES = 2;

/** 2 (K and V) x layers x kvHeads x headDim x bytes per element. */
export function kvBytesPerToken(cfg: Qwen3Config, bytesPerElement = BF16_BYTES): number {
  return 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * bytesPerElement;
}

export function modelCosts(cfg: Qwen3Config, bytesPerElement = BF16_BYTES): ModelCosts {
  const params = paramCount(cfg);
  const table = cfg.vocabSize * cfg.hiddenSize;
  const headParams = table;
  // paramCount counts a tied table once (it is the head); an untied model also has the input table.
  const decoderParams = params - table - (cfg.tieWordEmbeddings ? 0 : table);
  return { params, decoderParams, headParams, weightBytes: (decoderParams + headParams) * bytesPerElement, kvBytesPerToken: kvBytesPerToken(cfg, bytesPerElement) };
}

function checkRates(r: CardRates): void {
  if (!(r.bandwidthGBps > 0) || !(r.gemmTflops > 0)) throw new RangeError(`roofline: the card's rates must be positive (bandwidth ${r.bandwidthGBps} GB/s, GEMM ${r.gemmTflops} TFLOP/s)`);
}

function checkRequests(requests: readonly RequestShape[]): void {
  if (requests.length === 0) throw new RangeError('roofline: no requests');
  requests.forEach((q, i) => {
    if (!Number.isInteger(q.promptTokens) || q.promptTokens < 1 || !Number.isInteger(q.outputTokens) || q.outputTokens < 1)
      throw new RangeError(`roofline: request ${i} needs integer promptTokens and outputTokens >= 1, got ${q.promptTokens} and ${q.outputTokens}`);
  });
}

interface Parts {
  prefillS: number;
  decodeS: number;
  decodeSteps: number;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Big numbers with separators, small ones with 3 significant digits. */
function num(n: number, digits = 0): string {
  return n >= 10 || n === 0 ? fmt(n, digits) : n.toPrecision(3);
}

function sig(s: number): string {
  return s >= 100 ? fmt(s, 1) : s >= 1 ? fmt(s, 3) : s.toPrecision(3);
}

function basisLine(shape: EngineShape, cfg: Qwen3Config, costs: ModelCosts, requests: readonly RequestShape[], rates: CardRates, p: Parts, seconds: number): string {
  const prompt = requests.reduce((n, q) => n + q.promptTokens, 0);
  const output = requests.reduce((n, q) => n + q.outputTokens, 0);
  const how = shape === 'sequential' ? `one request at a time, ${requests.length} requests` : `all ${requests.length} requests in one batch`;
  return (
    `${how}, ${fmt(prompt)} prompt + ${fmt(output)} output tokens; ` +
    `model ${costs.params >= 1e6 ? `${fmt(costs.params / 1e6, 1)}M` : fmt(costs.params)} params (${cfg.numLayers} layers), ${costs.weightBytes >= 1e6 ? `${fmt(costs.weightBytes / 1e9, 3)} GB` : `${fmt(costs.weightBytes)} B`} bf16 weights per forward, ${fmt(costs.kvBytesPerToken)} B KV per token; ` +
    `${rates.card ? `${rates.card} ` : ''}${num(rates.bandwidthGBps)} GB/s copy, ${num(rates.gemmTflops, 1)} TFLOP/s bf16 GEMM${rates.source ? ` (${rates.source})` : ''}; ` +
    `each step >= max(bytes / bandwidth, FLOPs / GEMM rate): prefill ${sig(p.prefillS)} s + ${fmt(p.decodeSteps)} decode steps ${sig(p.decodeS)} s = ${sig(seconds)} s`
  );
}

function finish(shape: EngineShape, cfg: Qwen3Config, costs: ModelCosts, requests: readonly RequestShape[], rates: CardRates, p: Parts): Roofline {
  const seconds = p.prefillS + p.decodeS;
  const output = requests.reduce((n, q) => n + q.outputTokens, 0);
  return { outputTokPerS: output / seconds, seconds, basis: basisLine(shape, cfg, costs, requests, rates, p, seconds) };
}

/**
 * One request at a time: a prefill of T tokens takes at least
 * max((2 x decoderParams x T + 2 x headParams) / GEMM, weightBytes / bandwidth) and yields the first
 * token; each of the other outputTokens - 1 steps attends over T + j tokens (j = 1, 2, ...) and takes at least
 * max((weightBytes + kvBytes(T + j)) / bandwidth, 2 x (decoderParams + headParams) / GEMM).
 */
export function sequentialRoofline(cfg: Qwen3Config, requests: readonly RequestShape[], rates: CardRates): Roofline {
  checkRates(rates);
  checkRequests(requests);
  const c = modelCosts(cfg);
  const bw = rates.bandwidthGBps * 1e9;
  const gemm = rates.gemmTflops * 1e12;
  const stepFlops = 2 * (c.decoderParams + c.headParams);
  const p: Parts = { prefillS: 0, decodeS: 0, decodeSteps: 0 };
  for (const q of requests) {
    p.prefillS += Math.max((2 * c.decoderParams * q.promptTokens + 2 * c.headParams) / gemm, c.weightBytes / bw);
    for (let j = 1; j < q.outputTokens; j++) {
      p.decodeS += Math.max((c.weightBytes + c.kvBytesPerToken * (q.promptTokens + j)) / bw, stepFlops / gemm);
      p.decodeSteps++;
    }
  }
  return finish('sequential', cfg, c, requests, rates, p);
}

/**
 * Every request in one batch from the start: one prefill over all prompts, then decode
 * step s (s = 1, 2, ...) for the requests still running (outputTokens > s), reading the
 * weights once plus each one's KV cache of T + s tokens.
 */
export function batchedRoofline(cfg: Qwen3Config, requests: readonly RequestShape[], rates: CardRates): Roofline {
  checkRates(rates);
  checkRequests(requests);
  const c = modelCosts(cfg);
  const bw = rates.bandwidthGBps * 1e9;
  const gemm = rates.gemmTflops * 1e12;
  const prompt = requests.reduce((n, q) => n + q.promptTokens, 0);
  const p: Parts = {
    prefillS: Math.max((2 * c.decoderParams * prompt + 2 * c.headParams * requests.length) / gemm, c.weightBytes / bw),
    decodeS: 0,
    decodeSteps: 0,
  };
  const longest = Math.max(...requests.map((q) => q.outputTokens));
  for (let s = 1; s < longest; s++) {
    let active = 0;
    let context = 0;
    for (const q of requests) {
      if (q.outputTokens > s) {
        active++;
        context += q.promptTokens + s;
      }
    }
    p.decodeS += Math.max((c.weightBytes + c.kvBytesPerToken * context) / bw, (2 * (c.decoderParams + c.headParams) * active) / gemm);
    p.decodeSteps++;
  }
  return finish('batched', cfg, c, requests, rates, p);
}

/** The workload's roofline for an engine of the given shape (its max_tokens are what ignore_eos generates). */
export function workloadRoofline(cfg: Qwen3Config, workload: Workload, rates: CardRates, shape: EngineShape): Roofline {
  const requests = workload.requests.map((r) => ({ promptTokens: r.promptIds.length, outputTokens: r.params.maxTokens }));
  return shape === 'sequential' ? sequentialRoofline(cfg, requests, rates) : batchedRoofline(cfg, requests, rates);
}

/** The rates in a lesson-00 environment record (results.copy.gbPerS, results.gemm.tflops), or undefined if it lacks them. */
export function ratesFromEnvironment(record: AnyRecord, file?: string): CardRates | undefined {
  if (record.kind !== 'environment') return undefined;
  const res = record.results as { copy?: { gbPerS?: unknown }; gemm?: { tflops?: unknown; dtype?: unknown } };
  const bw = res.copy?.gbPerS;
  const tf = res.gemm?.tflops;
  if (typeof bw !== 'number' || typeof tf !== 'number' || !(bw > 0) || !(tf > 0)) return undefined;
  if (res.gemm?.dtype !== undefined && res.gemm.dtype !== 'bf16') return undefined;
  return { bandwidthGBps: bw, gemmTflops: tf, card: record.hardware.card, ...(file ? { source: file } : {}) };
}
