// Lesson 09 on the GPU: every prefill and decode kernel version against the CPU
// reference on fresh random steps (GPU_PREFILL_CASES, GPU_DECODE_CASES in
// flash-cases.ts), each output poisoned with NaN first, so an unwritten element
// fails; NaN never passes. Each case also runs twice (the same bits, or there
// is a race) and against lesson 08's CUDA pagedAttention. Skips, saying so,
// where no GPU is usable.
//
// AIOS_FLASH_CHECK_LOG=FILE appends one line per check (PASS/FAIL, the numbers,
// where it went wrong): engine-core/scripts/gpu-kernels.sh collects it.
import { appendFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { type Device, Tensor, allocatorStats, cudaAvailable, ops } from '../src/index.ts';
import { type FlashCase, type FlashStep, FLASH_TOLERANCE, GPU_DECODE_CASES, GPU_PREFILL_CASES, buildStep, caseName, mismatch, upload } from './flash-cases.ts';
import { poisoned } from './helpers.ts';

// AIOS_FLASH_TEST_DEVICE=cpu walks this suite on the CPU (every "version" is then the reference):
// a dry run of the harness itself on a machine without a GPU.
const dryRun = process.env.AIOS_FLASH_TEST_DEVICE === 'cpu';
const hasGpu = cudaAvailable() || dryRun;
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
const LOG = process.env.AIOS_FLASH_CHECK_LOG;
const dev: Device = dryRun ? 'cpu' : 'cuda:0';

if (!hasGpu) console.log('flash-attention.gpu.test: skipped: no usable CUDA device on this machine (flash-emu.test.ts checks the same kernels on the CPU emulator)');

function log(line: string): void {
  if (LOG) appendFileSync(LOG, line + '\n');
}

/** What a version cannot run, as the binding would say it ('' when it can). */
function unsupported(kind: 'prefill' | 'decode', version: number, c: FlashCase): string {
  const half = c.dtype === 'bf16' || c.dtype === 'f16';
  const rows = Math.max(...c.seqs.map(([q]) => q)) * c.group;
  if (kind === 'prefill') {
    if (version >= 2 && !half) return `v${version} needs bf16/f16`;
    if (version >= 2 && c.headDim > 128) return `v${version} needs head_dim 64/128`;
    return '';
  }
  if (version === 3 && (!half || c.headDim > 128)) return 'v3 needs bf16/f16 and head_dim 64/128';
  if (version !== 3 && c.dtype === 'f32' && c.headDim > 128) return 'f32 needs head_dim <= 128';
  if (rows > (version === 3 ? 16 : 8)) return `${rows} rows per KV head exceed v${version}'s limit`;
  return '';
}

interface Ref {
  step: FlashStep;
  cpu: Float32Array;
}
const refs = new Map<string, Ref>();

/** The step of case n and its CPU-reference output, computed once per case. */
function reference(key: string, c: FlashCase, n: number): Ref {
  let r = refs.get(key);
  if (!r) {
    const step = buildStep(c, seed + 1009 * n);
    const t = upload(step, 'cpu');
    const out = ops.pagedAttention(t.q, t.k, t.v, t.meta, poisoned([step.tokens, step.qHeads, c.headDim], c.dtype, 'cpu'));
    r = { step, cpu: out.toArray() as Float32Array };
    out.dispose();
    t.dispose();
    refs.set(key, r);
  }
  return r;
}

function check(kind: 'prefill' | 'decode', version: number, c: FlashCase, n: number, splits: number): void {
  const { step, cpu } = reference(`${kind}${n}`, c, n);
  const label = `${kind} v${version} ${c.dtype} ${caseName(c)}${kind === 'decode' ? ` splits ${splits || 'auto'}` : ''}`;
  const t = upload(step, dev);
  const shape = [step.tokens, step.qHeads, c.headDim];
  const run = (): Float32Array => {
    const out = poisoned(shape, c.dtype, dev);
    if (kind === 'prefill') ops.flashPrefill(t.q, t.k, t.v, t.meta, out, { version });
    else ops.flashDecode(t.q, t.k, t.v, t.meta, out, { version, splits });
    const got = out.toArray() as Float32Array;
    out.dispose();
    return got;
  };
  try {
    const got = run();
    const again = run();
    const lesson08 = ops.pagedAttention(t.q, t.k, t.v, t.meta, poisoned(shape, c.dtype, dev));
    const l8 = lesson08.toArray() as Float32Array;
    lesson08.dispose();
    const m = mismatch(step, got, cpu);
    const m8 = mismatch(step, got, l8);
    let moved = -1;
    for (let i = 0; i < got.length && moved < 0; i++) if (!Object.is(got[i], again[i])) moved = i;
    const tol = FLASH_TOLERANCE[c.dtype as 'bf16' | 'f16' | 'f32'];
    const ok = m.nan === 0 && m.relError < tol && moved < 0 && m8.relError < tol;
    log(`${ok ? 'PASS' : 'FAIL'} ${label}: rel_err ${m.relError.toExponential(2)} (tol ${tol}) max_abs ${m.maxAbs.toExponential(2)} NaN/unwritten ${m.nan}` +
      ` vs_lesson08 ${m8.relError.toExponential(2)}${moved >= 0 ? ` RERUN DIFFERS at element ${moved}` : ''}${ok ? '' : ` worst at ${m.where}`}`);
    expect(m.nan, `${label}: ${m.nan} elements unwritten or NaN; first at ${m.where}`).toBe(0);
    expect(m.relError, `${label}: relative error ${m.relError.toExponential(2)} over ${tol}; worst at ${m.where}`).toBeLessThan(tol);
    expect(moved, `${label}: a second run on the same inputs differs at element ${moved} (a race)`).toBe(-1);
    expect(m8.relError, `${label}: vs lesson 08's kernel ${m8.relError.toExponential(2)}; worst at ${m8.where}`).toBeLessThan(tol);
  } catch (e) {
    if (!(e instanceof Error && e.name === 'AssertionError')) log(`FAIL ${label}: threw ${(e as Error).message}`);
    throw e;
  } finally {
    t.dispose();
  }
}

describe.skipIf(!hasGpu)(`lesson 09 prefill kernels vs the CPU reference (seed ${seed})`, () => {
  GPU_PREFILL_CASES.forEach((c, n) => {
    for (const version of ops.FLASH_PREFILL_VERSIONS) {
      const why = unsupported('prefill', version, c);
      it.skipIf(why !== '')(`prefill v${version} ${c.dtype} ${caseName(c)}${why ? ` (${why})` : ''}`, () => check('prefill', version, c, n, 0));
    }
  });
});

describe.skipIf(!hasGpu)(`lesson 09 decode kernels vs the CPU reference (seed ${seed})`, () => {
  GPU_DECODE_CASES.forEach((c, n) => {
    for (const version of ops.FLASH_DECODE_VERSIONS)
      for (const splits of version === 1 ? [0] : [0, ...c.splits]) {
        const why = unsupported('decode', version, c);
        it.skipIf(why !== '')(`decode v${version} ${c.dtype} ${caseName(c)} splits ${splits || 'auto'}${why ? ` (${why})` : ''}`, () =>
          check('decode', version, c, n, splits));
      }
  });
});

describe.skipIf(!hasGpu)('lesson 09 decode in a forward: caller-owned buffers', () => {
  it('with out and workspace given, a split decode allocates nothing', () => {
    const c = GPU_DECODE_CASES[0]!;
    const step = buildStep(c, seed);
    const t = upload(step, dev);
    const plan = ops.flashDecodePlan({ device: dev, version: 3, splits: 5, numSeqs: step.ctx.length, numTokens: step.tokens, qHeads: step.qHeads,
      kvHeads: c.kvHeads, headDim: c.headDim, maxQLen: step.maxQLen, maxContextLen: step.maxContextLen });
    expect(plan.splits).toBeGreaterThan(dryRun ? 0 : 1);
    const ws = Tensor.empty([Math.ceil(plan.workspaceBytes / 4)], { dtype: 'f32', device: dev });
    const out = Tensor.empty([step.tokens, step.qHeads, c.headDim], { dtype: c.dtype, device: dev });
    ops.flashDecode(t.q, t.k, t.v, t.meta, out, { version: 3, splits: 5, workspace: ws });
    const before = allocatorStats(dev).requests;
    for (let i = 0; i < 3; i++) ops.flashDecode(t.q, t.k, t.v, t.meta, out, { version: 3, splits: 5, workspace: ws });
    expect(allocatorStats(dev).requests - before).toBe(0);
    const small = Tensor.empty([16], { dtype: 'f32', device: dev });
    if (!dryRun) expect(() => ops.flashDecode(t.q, t.k, t.v, t.meta, out, { version: 3, splits: 5, workspace: small })).toThrow(/workspace needs bytes/);
    [ws, out, small].forEach((x) => x.dispose());
    t.dispose();
  });
});
