// Lesson 09's CUDA kernels (native/src/cuda/flash_*.cu) compiled as C++ and run
// on the CPU emulator of thread blocks (native/emu): every version checked
// against the CPU reference on fresh random inputs, on any machine. The GPU
// suite (flash-attention.gpu.test.ts) checks the same kernels on the hardware.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { native } from '../src/index.ts';

const exe = path.join(path.dirname(native.path), process.platform === 'win32' ? 'flash_emu.exe' : 'flash_emu');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

if (!existsSync(exe)) console.log(`flash-emu.test: skipped: ${exe} was not built (AIOS_EMU_TESTS=OFF, or not a POSIX system)`);

describe.skipIf(!existsSync(exe))('lesson 09 kernels on the CPU emulator', () => {
  it(`every prefill and decode version matches the CPU reference (seed ${seed})`, () => {
    const r = spawnSync(exe, ['--seed', String(seed)], { encoding: 'utf8', timeout: 110_000 });
    const report = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const failed = report.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('    '));
    expect(r.error, String(r.error)).toBeUndefined();
    expect(failed.join('\n'), 'failing cases').toBe('');
    expect(r.status, report.slice(-2000)).toBe(0);
    expect(report).toMatch(/flash_emu: 0 of \d+ runs failed/);
  });
});
