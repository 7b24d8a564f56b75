// The small-M GEMM (native/src/cuda/gemm_small.cu) compiled as C++ and run on
// the CPU emulator of thread blocks (native/emu): every token-tile kernel, ragged
// N and K, one split and many, checked against a double-precision loop on fresh
// random inputs, on any machine. ops.gpu.test.ts checks it on the hardware.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { native } from '../src/index.ts';

const exe = path.join(path.dirname(native.path), process.platform === 'win32' ? 'gemm_emu.exe' : 'gemm_emu');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

if (!existsSync(exe)) console.log(`gemm-emu.test: skipped: ${exe} was not built (AIOS_EMU_TESTS=OFF, or not a POSIX system)`);

describe.skipIf(!existsSync(exe))('the small-M GEMM on the CPU emulator', () => {
  it(`matches the reference within the output's rounding, bit-identical across split runs (seed ${seed})`, () => {
    const r = spawnSync(exe, ['--seed', String(seed)], { encoding: 'utf8', timeout: 60_000 });
    const report = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const failed = report.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('    '));
    expect(r.error, String(r.error)).toBeUndefined();
    expect(failed.join('\n'), 'failing cases').toBe('');
    expect(r.status, report.slice(-2000)).toBe(0);
    expect(report).toMatch(/gemm_emu: 0 of \d+ runs failed/);
  });
});
