// GET /metrics: the Prometheus text format, from prom-client. One registry per
// server (tests start several in one process). Queue and memory figures are read
// from the scheduler when Prometheus scrapes; rates and latencies are observed as
// the loop steps and the requests stream.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { Engine } from '@aios/engine-core/engine/engine.ts';

import type { StepTiming } from './engine-loop.ts';

/** Seconds: from 1 ms to 60 s (a CPU step of the tiny model is about a millisecond, a long GPU prefill seconds). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** The window of the tokens-per-second gauge. */
const RATE_WINDOW_MS = 10_000;

export class ServerMetrics {
  readonly registry = new Registry();
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  readonly requestLatency: Histogram;
  readonly stepSeconds: Histogram;
  readonly loopOverheadSeconds: Histogram;
  readonly generatedTokens: Counter;
  readonly promptTokens: Counter;
  readonly requests: Counter<'status'>;
  /** (time, tokens) of recent steps, for tokens per second over the last RATE_WINDOW_MS. */
  private recent: { at: number; tokens: number }[] = [];

  constructor(engine: Engine) {
    const registers = [this.registry];
    const sched = () => engine.parts.scheduler.stats?.();
    new Gauge({ name: 'aios_queue_length', help: 'Requests waiting to be scheduled', registers, collect() { this.set(sched()?.waiting ?? 0); } });
    new Gauge({ name: 'aios_running_sequences', help: 'Sequences the scheduler is running', registers, collect() { this.set(sched()?.running ?? 0); } });
    new Gauge({ name: 'aios_kv_blocks_used', help: 'KV cache blocks referenced by live sequences', registers, collect() { this.set(sched()?.usedBlocks ?? 0); } });
    new Gauge({ name: 'aios_kv_blocks_total', help: 'KV cache blocks in the pool', registers, collect() { this.set(sched()?.totalBlocks ?? 0); } });
    const rate = () => this.tokensPerSecond();
    new Gauge({ name: 'aios_generation_tokens_per_second', help: `Output tokens per second over the last ${RATE_WINDOW_MS / 1000} s`, registers, collect() { this.set(rate()); } });
    this.generatedTokens = new Counter({ name: 'aios_generation_tokens_total', help: 'Output tokens generated', registers });
    this.promptTokens = new Counter({ name: 'aios_prompt_tokens_total', help: 'Prompt tokens of admitted requests', registers });
    this.requests = new Counter({ name: 'aios_requests_total', help: 'Requests answered, by HTTP status', labelNames: ['status'], registers });
    this.timeToFirstToken = new Histogram({ name: 'aios_time_to_first_token_seconds', help: 'From a request admitted to its first token sent', buckets: LATENCY_BUCKETS, registers });
    this.interTokenLatency = new Histogram({ name: 'aios_inter_token_latency_seconds', help: 'Between two tokens of a request sent', buckets: LATENCY_BUCKETS, registers });
    this.requestLatency = new Histogram({ name: 'aios_request_latency_seconds', help: 'From a request admitted to its last token', buckets: LATENCY_BUCKETS, registers });
    this.stepSeconds = new Histogram({ name: 'aios_step_seconds', help: 'Seconds inside one engine step', buckets: LATENCY_BUCKETS, registers });
    this.loopOverheadSeconds = new Histogram({ name: 'aios_loop_overhead_seconds', help: 'Seconds the server spends between two engine steps (sending deltas, serving HTTP)', buckets: LATENCY_BUCKETS, registers });
  }

  onStep(t: StepTiming): void {
    this.stepSeconds.observe(t.stepSeconds);
    this.loopOverheadSeconds.observe(t.overheadSeconds);
    const tokens = t.result.deltas.reduce((n, d) => n + d.tokenIds.length, 0);
    this.generatedTokens.inc(tokens);
    const now = performance.now();
    this.recent.push({ at: now, tokens });
    while (this.recent.length && now - this.recent[0]!.at > RATE_WINDOW_MS) this.recent.shift();
  }

  tokensPerSecond(now = performance.now()): number {
    this.recent = this.recent.filter((r) => now - r.at <= RATE_WINDOW_MS);
    const tokens = this.recent.reduce((n, r) => n + r.tokens, 0);
    return tokens / (RATE_WINDOW_MS / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
