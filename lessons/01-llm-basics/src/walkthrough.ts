// One Qwen3 decoder layer, one op at a time, with every intermediate shape
// reported: the same computation as Qwen3DecoderLayer.forward in
// engine-core/src/model/qwen3.ts, unrolled so each step can be printed.
import { Tensor, formatShape, ops } from '@aios/engine-core';
import type { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

export interface Step {
  name: string;
  shape: readonly number[];
  /** Root mean square of the values: a quick health check (finite, sensible scale). */
  rms: number;
}

function rms(t: Tensor): number {
  const v = t.toArray() as Float32Array;
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s / Math.max(1, v.length));
}

/** Runs layer `index` on x [T, H] step by step; returns the output and the steps taken. */
export function decoderLayerStepByStep(model: Qwen3Model, index: number, x: Tensor, positions: Tensor): { out: Tensor; steps: Step[] } {
  const cfg = model.cfg, w = model.weights.layers[index]!;
  const T = x.shape[0]!;
  const steps: Step[] = [];
  const temps: Tensor[] = [];
  const note = (name: string, t: Tensor): Tensor => {
    steps.push({ name, shape: [...t.shape], rms: rms(t) });
    temps.push(t);
    return t;
  };
  note('x (input)', x.clone());
  const n = note('rmsnorm(x)', ops.rmsnorm(x, w.inputNorm, cfg.rmsNormEps));
  const q = note('q = n @ Wq^T', ops.matmul(n, w.qProj)).view(T, cfg.numHeads, cfg.headDim);
  const k = note('k = n @ Wk^T', ops.matmul(n, w.kProj)).view(T, cfg.numKvHeads, cfg.headDim);
  const v = note('v = n @ Wv^T', ops.matmul(n, w.vProj)).view(T, cfg.numKvHeads, cfg.headDim);
  note('q per head, q_norm', ops.rmsnorm(q, w.qNorm, cfg.rmsNormEps, q));
  note('k per head, k_norm', ops.rmsnorm(k, w.kNorm, cfg.rmsNormEps, k));
  note('rope(q)', ops.rope(q, positions, model.rope.cos, model.rope.sin, q));
  note('rope(k)', ops.rope(k, positions, model.rope.cos, model.rope.sin, k));
  const a = note('attention(q, k, v)', ops.attention(q, k, v));
  const o = note('o = attn @ Wo^T', ops.matmul(a.view(T, cfg.numHeads * cfg.headDim), w.oProj));
  const h = note('h = x + o', ops.add(x, o));
  const m = note('rmsnorm(h)', ops.rmsnorm(h, w.postNorm, cfg.rmsNormEps));
  const g = note('gate = m @ Wg^T', ops.matmul(m, w.gateProj));
  const u = note('up = m @ Wu^T', ops.matmul(m, w.upProj));
  note('silu(gate) * up', ops.mul(ops.silu(g, g), u, g));
  const d = note('down = . @ Wd^T', ops.matmul(g, w.downProj));
  const out = ops.add(h, d);
  steps.push({ name: 'out = h + down', shape: [...out.shape], rms: rms(out) });
  // Views (q, k, v) share storage with their matmul outputs; disposing the owners frees all.
  for (const t of new Set(temps)) t.dispose();
  return { out, steps };
}

export function formatSteps(steps: Step[]): string {
  return steps.map((s) => `  ${s.name.padEnd(22)} ${formatShape(s.shape).padEnd(16)} rms ${s.rms.toFixed(4)}`).join('\n');
}
