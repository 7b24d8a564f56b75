// Numbers the READMEs quote from records are checked against the records. The convention
// (docs/benchmarking.md, "Quoting a record"): a quoted number is a link to the record with
// the field it comes from as the link's fragment,
//
//   [51.1 tok/s](../../bench-results/<record>.json#results.outputTokPerS)
//
// and the number in the link text must be the field's value at the precision written. A
// link to a record whose text has a number but no field is an unchecked quote: an error.
// The README's generated sections (between <!-- ...:start --> and <!-- ...:end -->) are
// written from the records by `pnpm readme` and tested in chart.test.ts.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../src/bench/records.ts';
import { markdownLinks } from './code-refs.ts';
import { markdownFiles } from './markdown.ts';

export interface Quote {
  file: string;
  line: number;
  text: string;
  target: string;
  field: string | undefined;
}


/** Record links outside generated sections: code-refs.ts's link scanner, filtered to records. */
export function recordLinks(file: string, markdown: string): Quote[] {
  // Lines of the generated sections (<!-- name:start --> to <!-- name:end -->), which `pnpm readme` writes and chart.test.ts checks.
  const generated = new Set<number>();
  let inside = false;
  markdown.split('\n').forEach((line, i) => {
    if (/<!-- [a-z-]+:start -->/.test(line)) inside = true;
    if (inside) generated.add(i + 1);
    if (/<!-- [a-z-]+:end -->/.test(line)) inside = false;
  });
  return markdownLinks(file, markdown)
    .filter((l) => /(^|\/)bench-results\/[^/]+\.json$/.test(l.path) && !generated.has(l.line))
    .map((l) => ({ file, line: l.line, text: l.text, target: l.path, field: l.fragment || undefined }));
}

/** The number a link text quotes ("1,728.3 s" -> 1728.3 with one decimal), or undefined. */
export function quotedNumber(text: string): { value: number; decimals: number; raw: string } | undefined {
  // A number standing alone ("51.1 tok/s", "2.4%", "×3.02"), not digits inside a name, a date or a commit id.
  const m = /(?:^|[\s(×~])(-?\d[\d,]*(?:\.(\d+))?)(?=[\s%)]|$)/.exec(text);
  if (!m) return undefined;
  return { value: Number(m[1]!.replace(/,/g, '')), decimals: m[2]?.length ?? 0, raw: m[1]! };
}

function field(obj: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/** Why a quote is wrong, or undefined when it is right. */
export function quoteProblem(q: Quote, readRecord: (target: string) => unknown): string | undefined {
  const n = quotedNumber(q.text);
  if (!n) return undefined; // "[record](...)": a reference, not a quote
  if (!q.field) return `"${q.text}" quotes a number from ${path.basename(q.target)} without naming its field (#results.outputTokPerS, say)`;
  const record = readRecord(q.target);
  if (record === undefined) return `${q.target} does not exist`;
  const v = field(record, q.field);
  if (typeof v !== 'number') return `${path.basename(q.target)} has no number at ${q.field}`;
  const shown = v.toFixed(n.decimals);
  if (Number(shown) !== n.value) return `"${q.text}" says ${n.raw}, but ${path.basename(q.target)}#${q.field} is ${v} (${shown} at that precision)`;
  return undefined;
}

describe('numbers quoted from records', () => {
  it('finds quotes, their fields, and skips generated sections', () => {
    const md = 'a [51.1 tok/s](../b/bench-results/x.json#results.outputTokPerS) b [record](bench-results/y.json)\n<!-- map:start -->\n[9 tok/s](bench-results/z.json)\n<!-- map:end -->\n';
    expect(recordLinks('f.md', md)).toEqual([
      { file: 'f.md', line: 1, text: '51.1 tok/s', target: '../b/bench-results/x.json', field: 'results.outputTokPerS' },
      { file: 'f.md', line: 1, text: 'record', target: 'bench-results/y.json', field: undefined },
    ]);
  });

  it('checks the number at the precision written, and refuses a number without its field', () => {
    const rec = { results: { outputTokPerS: 51.1234, decodeTokPerS: 65.04, seconds: 1728.26 } };
    const q = (text: string, f?: string) => quoteProblem({ file: 'f.md', line: 1, text, target: 'r.json', field: f }, () => rec);
    expect(q('51.1 tok/s', 'results.outputTokPerS')).toBeUndefined();
    expect(q('1,728.3 s', 'results.seconds')).toBeUndefined();
    expect(q('65.0 tok/s', 'results.outputTokPerS')).toBe('"65.0 tok/s" says 65.0, but r.json#results.outputTokPerS is 51.1234 (51.1 at that precision)');
    expect(q('65.0 tok/s')).toMatch(/without naming its field/);
    expect(q('record')).toBeUndefined();
    expect(q('NVIDIA H200')).toBeUndefined();
    expect(q('record, commit 2e4db8d')).toBeUndefined();
    expect(q('2026-11-27T00-03-10-346Z')).toBeUndefined();
    expect(q('5 tok/s', 'results.nothing')).toBe('r.json has no number at results.nothing');
  });

  const quotes = markdownFiles().flatMap((f) => recordLinks(f, readFileSync(path.join(REPO_ROOT, f), 'utf8')));
  it(`every number a README or doc quotes from a record matches it (${quotes.filter((q) => q.field).length} checked quotes)`, () => {
    const problems = quotes.flatMap((q) => {
      const p = quoteProblem(q, (target) => {
        const file = path.resolve(REPO_ROOT, path.dirname(q.file), target);
        return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
      });
      return p ? [`${q.file}:${q.line}: ${p}`] : [];
    });
    expect(problems).toEqual([]);
  });
});
