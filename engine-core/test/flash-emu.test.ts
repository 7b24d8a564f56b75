// Lesson 09's CUDA kernels (native/src/cuda/flash_*.cu) compiled as C++ and run
// on the CPU emulator of thread blocks (native/emu): every version checked
// against the CPU reference on fresh random inputs, on any machine. The GPU
// suite (flash-attention.gpu.test.ts) checks the same kernels on the hardware.
import { describe, it } from 'vitest';

import { emulator } from './emulator.ts';

const emu = emulator('flash_emu', 'flash-emu.test');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

describe.skipIf(!emu.built)('lesson 09 kernels on the CPU emulator', () => {
  it(`every prefill and decode version matches the CPU reference (seed ${seed})`, () => {
    emu.expectPasses(seed, 110_000);
  });
});
