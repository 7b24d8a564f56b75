// The Qwen3 forward on the CPU (f32) against Hugging Face transformers' logits
// for the same weights (fixtures/golden-qwen3-tiny-random.json, written by
// scripts/golden_logits.py on the GPU host), plus the swap points later
// lessons rely on.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '../src/index.ts';
import { compareWithGolden, readGolden } from '../src/model/golden.ts';
import { type AttentionBackend, type ForwardContext, Qwen3DecoderLayer, Qwen3Model, RecomputeAttention } from '../src/model/qwen3.ts';
import { ensureDefaultModel } from '../src/model/resolve.ts';
import { Tokenizer } from '../src/tokenizer.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(here, 'fixtures', 'golden-qwen3-tiny-random.json');

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('Qwen3 forward on the CPU', () => {
  const dir = ensureDefaultModel('cpu', () => {});

  it('writes the same tiny random model the golden fixture was made from', async () => {
    const golden = readGolden(FIXTURE);
    expect(await sha256(path.join(dir, 'model.safetensors'))).toBe(golden.weightsSha256);
  });

  it("tokenizes the fixture's prompts to the same ids as transformers' tokenizer", () => {
    const tok = Tokenizer.fromDir(dir);
    for (const p of readGolden(FIXTURE).prompts) if (p.text !== null) expect(tok.encode(p.text)).toEqual(p.ids);
  });

  // Measured: rel. error 1.83e-6 and row norms within 1.3e-6 (docs/equivalence.md); the fixture's
  // logits are rounded to 6-7 decimals, so a few times that is what f32 can promise, and a
  // wrong RMSNorm epsilon, a RoPE off by one position or a bf16 rounding anywhere would fail.
  const F32_REL_ERROR = 5e-6;
  const F32_ROW_NORM = 5e-6;

  it(`matches transformers: f32 logits within ${F32_REL_ERROR}, row norms within ${F32_ROW_NORM}, same argmax everywhere`, () => {
    expect(existsSync(FIXTURE)).toBe(true);
    const all = readGolden(FIXTURE);
    const golden = { ...all, prompts: all.prompts.filter((p) => p.ids.length < 500) }; // the long ones: the next test
    const model = Qwen3Model.load(dir, { device: 'cpu', dtype: 'f32' });
    const r = compareWithGolden(model, golden);
    model.dispose();
    console.log(`golden (CPU f32 vs ${golden.oracle} ${golden.dtype}): ${r.positions} positions up to ${r.maxPosition}, rel. error ${r.relError.toExponential(2)}, row norm ${r.maxRowNormRelDiff.toExponential(2)}, argmax agreement ${r.argmaxAgreement}`);
    expect(r.positions).toBeGreaterThan(10);
    expect(r.relError).toBeLessThan(F32_REL_ERROR);
    expect(r.maxRowNormRelDiff).toBeLessThan(F32_ROW_NORM);
    expect(r.argmaxAgreement).toBe(1);
  });

  it("compares a prompt's kept positions only (how long prompts are stored), and refuses positions that do not match its rows", () => {
    const golden = readGolden(FIXTURE);
    const p = golden.prompts.find((q) => q.ids.length >= 10)!;
    const keep = [2, p.ids.length - 1];
    const kept = { ...p, positions: keep, sampledLogits: keep.map((k) => p.sampledLogits[k]!), argmax: keep.map((k) => p.argmax[k]!), rowNorm: keep.map((k) => p.rowNorm[k]!) };
    const model = Qwen3Model.load(dir, { device: 'cpu', dtype: 'f32' });
    try {
      const r = compareWithGolden(model, { ...golden, prompts: [kept] });
      expect(r.positions).toBe(2);
      expect(r.maxPosition).toBe(p.ids.length - 1);
      expect(r.relError).toBeLessThan(F32_REL_ERROR);
      expect(r.argmaxAgreement).toBe(1);
      // The same rows read at the wrong positions do not match.
      expect(compareWithGolden(model, { ...golden, prompts: [{ ...kept, positions: [3, p.ids.length - 2] }] }).relError).toBeGreaterThan(1000 * F32_REL_ERROR);
      expect(() => compareWithGolden(model, { ...golden, prompts: [{ ...kept, positions: [2] }] })).toThrow(/^golden prompt 0: 1 positions in \[0, \d+\) expected for its 2 rows/);
    } finally {
      model.dispose();
    }
  });

  // RoPE far from position 0: golden_logits.py writes two long prompts (600 and 2,000 tokens).
  // The committed fixture predates them until the GPU host regenerates it (engine-core/scripts/gpu-check.sh).
  const hasLong = existsSync(FIXTURE) && readGolden(FIXTURE).prompts.some((p) => p.ids.length >= 500);
  if (!hasLong) console.log('qwen3.test: the golden fixture has no long prompts yet (regenerate it with engine-core/scripts/gpu-check.sh): the RoPE-far check is skipped');
  it.skipIf(!hasLong)('matches transformers far from position 0 (long prompts), within the same f32 bounds', () => {
    const golden = readGolden(FIXTURE);
    const long = { ...golden, prompts: golden.prompts.filter((p) => p.ids.length >= 500) };
    const model = Qwen3Model.load(dir, { device: 'cpu', dtype: 'f32' });
    const r = compareWithGolden(model, long);
    model.dispose();
    expect(r.maxPosition).toBeGreaterThanOrEqual(1500);
    expect(r.relError).toBeLessThan(F32_REL_ERROR);
    expect(r.maxRowNormRelDiff).toBeLessThan(F32_ROW_NORM);
    expect(r.argmaxAgreement).toBe(1);
  });

  it('takes another attention backend and another layer factory without forking the model', () => {
    const calls: number[] = [];
    class CountingAttention implements AttentionBackend {
      readonly name = 'counting';
      private readonly inner = new RecomputeAttention();
      attend(layer: number, q: Tensor, k: Tensor, v: Tensor): Tensor {
        calls.push(layer);
        return this.inner.attend(layer, q, k, v);
      }
    }
    let mlpCalls = 0;
    class CountingLayer extends Qwen3DecoderLayer {
      override mlpBlock(m: Tensor): Tensor {
        mlpCalls++;
        return super.mlpBlock(m);
      }
    }
    const plain = Qwen3Model.load(dir, { device: 'cpu' });
    const swapped = Qwen3Model.load<ForwardContext>(dir, {
      device: 'cpu',
      attention: new CountingAttention(),
      layerFactory: (i, w, c, a) => new CountingLayer(i, w, c, a),
    });
    const ids = [9707, 11, 1879, 0, 576];
    const a = plain.forwardLogits(ids), b = swapped.forwardLogits(ids);
    expect(calls).toEqual([...Array(plain.cfg.numLayers).keys()]);
    expect(mlpCalls).toBe(plain.cfg.numLayers);
    expect(Array.from(b.toArray() as Float32Array)).toEqual(Array.from(a.toArray() as Float32Array));
    for (const t of [a, b]) t.dispose();
    plain.dispose();
    swapped.dispose();
  });

  it('keeps activations finite and the causal mask honest (a later token never changes an earlier logit)', () => {
    const model = Qwen3Model.load(dir, { device: 'cpu' });
    const short = model.forwardLogits([100, 200, 300]);
    const long = model.forwardLogits([100, 200, 300, 400, 500]);
    const s = short.toArray() as Float32Array, l = long.toArray() as Float32Array;
    expect(s.every(Number.isFinite)).toBe(true);
    expect(Array.from(l.subarray(0, s.length))).toEqual(Array.from(s));
    const top = ops.argmax(long);
    expect(top.shape).toEqual([5]);
    for (const t of [short, long, top]) t.dispose();
    model.dispose();
  });
});
