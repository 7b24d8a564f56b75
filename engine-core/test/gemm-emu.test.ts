// The small-M GEMM (native/src/cuda/gemm_small.cu) compiled as C++ and run on
// the CPU emulator of thread blocks (native/emu): every token-tile kernel, ragged
// N and K, one split and many, checked against a double-precision loop on fresh
// random inputs, on any machine. ops.gpu.test.ts checks it on the hardware.
import { describe, it } from 'vitest';

import { emulator } from './emulator.ts';

const emu = emulator('gemm_emu', 'gemm-emu.test');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

describe.skipIf(!emu.built)('the small-M GEMM on the CPU emulator', () => {
  it(`matches the reference within the output's rounding, bit-identical across split runs (seed ${seed})`, () => {
    emu.expectPasses(seed, 60_000);
  });

  // The kernel requests its first weights before the PDL wait unless AIOS_GEMM_EARLY_WEIGHTS=0
  // (gemm_small.cu): the other order, kept for timing, must compute the same.
  it(`with AIOS_GEMM_EARLY_WEIGHTS=0 (the first weights after the wait) as well (seed ${seed})`, () => {
    emu.expectPasses(seed, 60_000, { env: { AIOS_GEMM_EARLY_WEIGHTS: '0' } });
  });
});
