// Every code block in the repository's markdown that is marked runnable is run, from
// where a reader would paste it (the repository root), on the CPU, so documented
// commands and API examples cannot rot. The convention (docs/README.md):
//
//   ```ts runnable      saved as a .ts file under the repository root and run with `pnpm tsx FILE`
//   ```sh runnable      each line run by bash in the repository root (a trailing "# comment" is fine)
//
// A block must run in seconds on a CPU to be marked; anything longer stays unmarked.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../src/bench/records.ts';
import { codeBlocks, markdownFiles } from './markdown.ts';

function sh(command: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { cwd: REPO_ROOT, env: { ...process.env, AIOS_DEVICE: 'cpu', FORCE_COLOR: '0' }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

const runnable = markdownFiles().flatMap((f) => codeBlocks(f, readFileSync(path.join(REPO_ROOT, f), 'utf8')).filter((b) => b.tags.includes('runnable')));

describe('runnable code blocks in the docs', () => {
  it('finds the blocks (the README API examples among them) and knows each language', () => {
    expect(runnable.filter((b) => b.file === 'README.md' && b.lang === 'ts').length).toBeGreaterThanOrEqual(2);
    for (const b of runnable) expect(['ts', 'sh'], `${b.file}:${b.line}`).toContain(b.lang);
  });

  it('parses fences, languages and tags', () => {
    const md = 'text\n```ts runnable\nconst a = 1;\n```\n\n  ```sh\n  pnpm lesson\n  ```\n';
    expect(codeBlocks('x.md', md)).toEqual([
      { file: 'x.md', line: 2, lang: 'ts', tags: ['runnable'], code: 'const a = 1;' },
      { file: 'x.md', line: 6, lang: 'sh', tags: [], code: 'pnpm lesson' },
    ]);
  });

  const scratch = path.join(REPO_ROOT, '.cache', 'doc-blocks');
  it.each(runnable.map((b) => [`${b.file}:${b.line} (${b.lang})`, b] as const))('%s runs as written', async (_, b) => {
    if (b.lang === 'ts') {
      mkdirSync(scratch, { recursive: true });
      const file = path.join(scratch, `${b.file.replace(/[^a-z0-9]+/gi, '-')}-${b.line}.ts`);
      writeFileSync(file, `${b.code}\n`);
      const r = await sh(`pnpm tsx ${JSON.stringify(path.relative(REPO_ROOT, file))}`);
      expect(r.code, r.out).toBe(0);
      return;
    }
    for (const line of b.code.split('\n')) {
      const command = line.replace(/\s+#.*$/, '').trim();
      if (!command || command.startsWith('#')) continue;
      const r = await sh(command);
      expect(r.code, `${command}\n${r.out}`).toBe(0);
    }
  });
});
