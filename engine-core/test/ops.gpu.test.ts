// The CUDA backend against the CPU reference, on fresh random inputs, with
// every output poisoned before the kernel runs. Skips where no GPU is usable.
import { describe, expect, it } from 'vitest';

import { cudaAvailable } from '../src/index.ts';
import { opCases, upload } from './op-cases.ts';
import { TOLERANCE, relError } from './helpers.ts';

// Every matmul of 1..64 bf16/f16 tokens through the small-M kernel (by default matmul_nt sends it
// only the shapes where it measured faster than cuBLASLt): read once, at this process's first matmul.
process.env.AIOS_SMALL_GEMM ??= '1';
const hasGpu = cudaAvailable();
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

if (!hasGpu) console.log('ops.gpu.test: skipped: no usable CUDA device on this machine (the CPU suite still runs)');

describe.skipIf(!hasGpu)(`CUDA ops vs the CPU reference (seed ${seed})`, () => {
  for (const c of opCases)
    for (const dtype of c.dtypes)
      it(`${c.name} [${dtype}]`, () => {
        const inputs = c.inputs(seed, dtype);
        const onCpu = upload(inputs, 'cpu');
        const onGpu = upload(inputs, 'cuda:0');
        const ref = Array.from(c.run('cpu', onCpu, dtype).toArray() as ArrayLike<number>, Number);
        const out = c.run('cuda:0', onGpu, dtype);
        const got = Array.from(out.toArray() as ArrayLike<number>, Number);
        expect(got.every((v) => !Number.isNaN(v)), 'every output element written').toBe(true);
        if (c.exact) expect(got).toEqual(ref);
        else {
          const tol = dtype === 'f32' ? 1e-4 : TOLERANCE[dtype as 'bf16' | 'f16'];
          const err = relError(got, ref);
          expect(err, `relative error ${err} over ${tol}`).toBeLessThan(tol);
        }
      });

  it('large bf16 matmul matches the CPU within bf16 tolerance', async () => {
    const { Tensor, ops } = await import('../src/index.ts');
    const { randomArray } = await import('./helpers.ts');
    const [M, N, K] = [64, 1536, 1024];
    const x = randomArray(M * K, seed + 11), w = randomArray(N * K, seed + 12, 0.05);
    const cpu = ops.matmul(Tensor.fromArray(x, [M, K], { dtype: 'bf16', device: 'cpu' }), Tensor.fromArray(w, [N, K], { dtype: 'bf16', device: 'cpu' }));
    const gpu = ops.matmul(Tensor.fromArray(x, [M, K], { dtype: 'bf16', device: 'cuda:0' }), Tensor.fromArray(w, [N, K], { dtype: 'bf16', device: 'cuda:0' }));
    expect(relError(gpu.toArray() as Float32Array, cpu.toArray() as Float32Array)).toBeLessThan(1e-2);
  });

  // With AIOS_SMALL_GEMM=1 (above) matmul_nt sends 1..64 bf16/f16 tokens to the weight-streaming kernel
  // (native/src/cuda/gemm_small.cu; =0 would test cuBLASLt here instead): every token-tile kernel, tokens not filling
  // their tile, N off the 128-row block, K off the 128-wide stage, and split K (N = 1000 and 1024 fill
  // few blocks, so the plan splits K; the last block of each row block sums the splits). Two runs
  // give the same bits: CUDA graph replays must reproduce the eager logits exactly.
  it('small-M matmul (1..64 tokens, split K) matches the CPU and is bit-identical run to run', async () => {
    const { Tensor, ops } = await import('../src/index.ts');
    const { randomArray, poisoned } = await import('./helpers.ts');
    const problems: string[] = [];
    for (const dtype of ['bf16', 'f16'] as const)
      for (const [N, K] of [[1000, 1032], [1024, 3072], [77, 8]] as const)
        for (const M of [1, 3, 8, 16, 17, 33, 64]) {
          const x = randomArray(M * K, seed + 31 * M + K), w = randomArray(N * K, seed + N + 7 * K, 0.05);
          const make = (device: 'cpu' | 'cuda:0') =>
            [Tensor.fromArray(x, [M, K], { dtype, device }), Tensor.fromArray(w, [N, K], { dtype, device })] as const;
          const [xc, wc] = make('cpu'), [xg, wg] = make('cuda:0');
          const refOut = ops.matmul(xc, wc, undefined, { outDtype: 'f32' });
          const ref = refOut.toArray() as Float32Array;
          refOut.dispose();
          for (const outDtype of [dtype, 'f32'] as const) {
            const run = () => {
              const out = ops.matmul(xg, wg, poisoned([M, N], outDtype, 'cuda:0'), { outDtype });
              try {
                return out.toArray() as Float32Array;
              } finally {
                out.dispose();
              }
            };
            const first = run(), second = run();
            const tol = outDtype === 'f32' ? 1e-5 : TOLERANCE[dtype];
            const err = relError(first, ref);
            const what = `M=${M} N=${N} K=${K} ${dtype}->${outDtype}`;
            if (!(err < tol)) problems.push(`${what}: relative error ${err} over ${tol}`);
            if (first.some((v, i) => !Object.is(v, second[i]))) problems.push(`${what}: two runs differ`);
          }
          for (const t of [xc, wc, xg, wg]) t.dispose();
        }
    expect(problems.join('\n'), 'small-M matmul problems').toBe('');
  });

  it('pagedAttention at long contexts (decode up to 2,000 keys, a 150-token prefill over a 190-token prefix) matches the CPU', async () => {
    const { Tensor, ops } = await import('../src/index.ts');
    const { randomArray, randomInts } = await import('./helpers.ts');
    const Hq = 16, Hkv = 8, D = 128, bs = 16;
    const qLens = [1, 1, 1, 1, 1, 1, 150], ctx = [1, 17, 300, 1025, 2000, 77, 340];
    const maxBlocks = Math.max(...ctx.map((n) => Math.ceil(n / bs)));
    const numBlocks = ctx.reduce((a, n) => a + Math.ceil(n / bs), 0) + 5;
    const r = randomInts(numBlocks, 1 << 30, seed + 21);
    const order = Array.from({ length: numBlocks }, (_, i) => i).sort((a, b) => r[a]! - r[b]!);
    let next = 0;
    const tables = ctx.flatMap((n) => Array.from({ length: maxBlocks }, (_, i) => (i < Math.ceil(n / bs) ? order[next++]! : -1)));
    const cu = [0];
    for (const n of qLens) cu.push(cu[cu.length - 1]! + n);
    const T = cu[cu.length - 1]!, slots = numBlocks * bs;
    const q = randomArray(T * Hq * D, seed + 22, 2), k = randomArray(slots * Hkv * D, seed + 23, 2), v = randomArray(slots * Hkv * D, seed + 24);
    const run = (device: 'cpu' | 'cuda:0') => {
      const i32 = (a: number[], shape: number[]) => Tensor.fromArray(Int32Array.from(a), shape, { dtype: 'i32', device });
      const bf = (a: Float32Array, shape: number[]) => Tensor.fromArray(a, shape, { dtype: 'bf16', device });
      const meta = { cuSeqlensQ: i32(cu, [cu.length]), contextLens: i32(ctx, [ctx.length]), blockTables: i32(tables, [ctx.length, maxBlocks]), blockSize: bs, maxQLen: 150, maxContextLen: 2000 };
      const out = Tensor.full([T, Hq, D], NaN, { dtype: 'bf16', device });
      ops.pagedAttention(bf(q, [T, Hq, D]), bf(k, [slots, Hkv, D]), bf(v, [slots, Hkv, D]), meta, out);
      return out.toArray() as Float32Array;
    };
    const got = run('cuda:0'), ref = run('cpu');
    expect(got.every((x) => !Number.isNaN(x)), 'every output element written').toBe(true);
    expect(relError(got, ref)).toBeLessThan(1e-2);
  });
});
