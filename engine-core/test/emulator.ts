// Runs one of the CPU-emulator test programs built beside the addon (native/emu: flash_emu,
// gemm_emu) and checks its report: no FAIL line, exit 0, and its "0 of N runs failed" summary.
// Where it was not built (AIOS_EMU_TESTS=OFF, or not a POSIX system) the test file skips, saying so.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

import { native } from '../src/index.ts';

export interface Emulator {
  /** Whether the program was built. */
  built: boolean;
  /** Runs it with `--seed seed` and asserts that every case passed. */
  expectPasses(seed: number, timeoutMs: number): void;
}

export function emulator(name: string, testFile: string): Emulator {
  const exe = path.join(path.dirname(native.path), process.platform === 'win32' ? `${name}.exe` : name);
  const built = existsSync(exe);
  if (!built) console.log(`${testFile}: skipped: ${exe} was not built (AIOS_EMU_TESTS=OFF, or not a POSIX system)`);
  return {
    built,
    expectPasses(seed, timeoutMs) {
      const r = spawnSync(exe, ['--seed', String(seed)], { encoding: 'utf8', timeout: timeoutMs });
      const report = `${r.stdout ?? ''}${r.stderr ?? ''}`;
      const failed = report.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('    '));
      expect(r.error, String(r.error)).toBeUndefined();
      expect(failed.join('\n'), 'failing cases').toBe('');
      expect(r.status, report.slice(-2000)).toBe(0);
      expect(report).toMatch(new RegExp(`${name}: 0 of \\d+ runs failed`));
    },
  };
}
