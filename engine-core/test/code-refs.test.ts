// The READMEs and docs point at code by file and symbol, never by line number
// (docs/README.md, "Pointing at code"):
//
//   [`Engine.step`](../../engine-core/src/engine/engine.ts#Engine.step)
//
// Every relative link must reach an existing file or folder; a #fragment on a link to a
// source file (.ts .cc .cu .h .cuh .py .sh) must name a symbol the file declares, and
// Class.member a member inside that class; "line 42", "lines 52 and 56", "file.ts:58"
// and "#L58" are errors. The resolver (code-refs.ts) is tested first on a small fixture
// with broken references, so the check over the repository cannot pass by finding nothing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../src/bench/records.ts';
import { type AllowedLinePhrase, checkCodeReferences, lineReferences, markdownLinks, symbolProblem } from './code-refs.ts';
import { markdownFiles } from './markdown.ts';

/** Phrases that look like line references but point at no code: none today. Add one only with the reason. */
const ALLOWED_LINE_PHRASES: AllowedLinePhrase[] = [];

const TS = `
export interface Options { blockSize: number; nested: { depth: number } }
export type Shape = 'a' | 'b';
export const DEFAULTS = { blockSize: 16 } as const;
enum Color { Red, Green }
function helper(x: number): number {
  const local = x + 1;
  return local;
}
export class Engine {
  private readonly live = new Map<number, number>();
  constructor(readonly parts: Options, plain: number) {}
  step(): number { const inStep = 1; return inStep; }
  get hasWork(): boolean { return true; }
  private retire = (): void => {};
}
export class Other {
  free(): void {}
}
`;

const CU = `
// step(): a comment is no declaration
#define AIOS_CHECK(x) do { if (!(x)) { throw 1; } } while (0)
namespace aios::cuda {
namespace {
constexpr int kThreads = 128;
struct Plan { int a = 0, b = 0; const char* name = "{not a brace"; };
template <class T> __global__ void __launch_bounds__(kThreads) attention_kernel(const T* q, int n) {
  int inner = 0;
  helper_call(q);
}
}  // namespace
class Args {
 public:
  Args(int n) : n_(n) {}
  int buffer(const char* name) { return n_; }
 private:
  int n_;
};
int Pool::free(int block) { return block; }
void attention(const void* q) {
  attention_kernel<float><<<1, 128>>>(nullptr, 0);
}
}  // namespace aios::cuda
`;

const PY = `
SAMPLE = 512
class Runner:
    limit = 3
    def __init__(self):
        self.model = None
    def run(self):
        def inner():
            pass
        count = 1
def main():
    pass
`;

const SH = `
OUT=/tmp/x
stamp() { date; }
function room {
  local left=1
  echo $left
}
`;

describe('the code-reference resolver', () => {
  it('finds TypeScript declarations, members inside their class, and no locals', () => {
    const p = (fragment: string) => symbolProblem('x.ts', TS, fragment);
    for (const ok of ['Engine', 'Engine.step', 'Engine.hasWork', 'Engine.retire', 'Engine.live', 'Engine.parts', 'Engine.constructor', 'helper', 'Options.blockSize', 'Options.nested.depth', 'Shape', 'DEFAULTS.blockSize', 'Color.Green', 'Other.free'])
      expect(p(ok), ok).toBeUndefined();
    expect(p('Engine.free')).toBe('Engine in x.ts has no member free');
    expect(p('Engine.plain')).toBe('Engine in x.ts has no member plain'); // a constructor parameter, not a property
    expect(p('local')).toBe('x.ts declares no local');
    expect(p('inStep')).toBe('x.ts declares no inStep');
    expect(p('Missing.step')).toBe('x.ts declares no Missing');
    expect(p('L42')).toMatch(/is a line anchor/);
    expect(p('Engine::step')).toMatch(/is not a symbol name/);
  });

  it('finds C++/CUDA functions, kernels, classes, out-of-line members, fields and macros, not comments or calls', () => {
    const p = (fragment: string) => symbolProblem('x.cu', CU, fragment);
    for (const ok of ['AIOS_CHECK', 'kThreads', 'Plan', 'Plan.a', 'Plan.b', 'Plan.name', 'attention_kernel', 'Args', 'Args.buffer', 'Args.n_', 'Pool.free', 'attention'])
      expect(p(ok), ok).toBeUndefined();
    expect(p('step')).toBe('x.cu declares no step');
    expect(p('helper_call')).toBe('x.cu declares no helper_call');
    expect(p('inner')).toBe('x.cu declares no inner');
    expect(p('Args.free')).toBe('Args in x.cu has no member free');
    expect(p('Plan.buffer')).toBe('Plan in x.cu has no member buffer');
  });

  it('finds Python and shell declarations', () => {
    const py = (fragment: string) => symbolProblem('x.py', PY, fragment);
    for (const ok of ['SAMPLE', 'Runner', 'Runner.run', 'Runner.limit', 'Runner.model', 'main']) expect(py(ok), ok).toBeUndefined();
    expect(py('inner')).toBe('x.py declares no inner');
    expect(py('count')).toBe('x.py declares no count');
    expect(py('Runner.main')).toBe('Runner in x.py has no member main');
    const sh = (fragment: string) => symbolProblem('x.sh', SH, fragment);
    for (const ok of ['OUT', 'stamp', 'room']) expect(sh(ok), ok).toBeUndefined();
    expect(sh('left')).toBe('x.sh declares no left');
  });

  it('reads links from prose only, and finds line references everywhere', () => {
    const md = [
      'See [`Engine.step`](../src/engine.ts#Engine.step) and [the docs](docs/a.md), [site](https://example.com/x#L3).',
      '`[not a link](nowhere.ts)` and ![chart](img/chart.png "title")',
      '```ts',
      'const s = "[in a block](nowhere.ts)"; // line 12',
      '```',
      'A split [link',
      'text](b.ts) and the pipeline 3 times; lines 52 and 56, measure.ts:58, [x](f.ts#L9).',
      '[ref]: <c d.sh#run>',
    ].join('\n');
    expect(markdownLinks('m.md', md).map((l) => [l.line, l.text, l.path, l.fragment])).toEqual([
      [1, '`Engine.step`', '../src/engine.ts', 'Engine.step'],
      [1, 'the docs', 'docs/a.md', undefined],
      [2, 'chart', 'img/chart.png', undefined],
      [6, 'link\ntext', 'b.ts', undefined],
      [7, 'x', 'f.ts', 'L9'],
      [8, 'ref', 'c d.sh', 'run'],
    ]);
    expect(lineReferences('m.md', md).map((r) => [r.line, r.phrase])).toEqual([
      [4, 'line 12'],
      [7, 'lines 52 and 56'],
      [7, 'measure.ts:58'],
    ]);
  });

  // A small repository with one good reference of each kind and one broken reference of each kind.
  const root = mkdtempSync(path.join(os.tmpdir(), 'code-refs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  it('fails a fixture repository on each broken reference, naming the file, the link and what is missing', () => {
    mkdirSync(path.join(root, 'src'));
    mkdirSync(path.join(root, 'native'));
    mkdirSync(path.join(root, 'docs'));
    writeFileSync(path.join(root, 'src', 'engine.ts'), TS);
    writeFileSync(path.join(root, 'native', 'attention.cu'), CU);
    writeFileSync(path.join(root, 'docs', 'other.md'), '# other\n');
    writeFileSync(
      path.join(root, 'README.md'),
      [
        '[`Engine.step`](src/engine.ts#Engine.step), [`Args.buffer`](native/attention.cu#Args.buffer), [file](src/engine.ts), [docs](docs/), [other](docs/other.md)',
        '[`Engine.free`](src/engine.ts#Engine.free)',
        '[`gone`](src/gone.ts#gone)',
        '[`attention`](native/attention.cu#L12)',
        'the loop (line 92)',
        '[up](../../outside.md), [notes](docs/other.md#L3)',
      ].join('\n'),
    );
    const allowed = [{ file: 'README.md', phrase: 'line 7', why: 'an example' }];
    const r = checkCodeReferences(root, ['README.md'], allowed);
    expect(r.symbolLinks.map((l) => l.fragment)).toEqual(['Engine.step', 'Args.buffer', 'Engine.free', 'L12']);
    expect(r.problems).toEqual([
      'README.md:2: [`Engine.free`](src/engine.ts#Engine.free): Engine in engine.ts has no member free',
      'README.md:3: [`gone`](src/gone.ts#gone): src/gone.ts does not exist',
      'README.md:4: [`attention`](native/attention.cu#L12): #L12 is a line anchor; name the function or class instead (#Name or #Class.member)',
      'README.md:5: "line 92" points at code by line number; link the symbol instead ([`Class.method`](path/to/file.ts#Class.method))',
      'README.md:6: [up](../../outside.md): points outside the repository',
      'README.md:6: [notes](docs/other.md#L3): #L3 is a line anchor; name the function or class instead (#Name or #Class.member)',
    ]);
    writeFileSync(path.join(root, 'README.md'), 'an allowed line 7\n');
    expect(checkCodeReferences(root, ['README.md'], allowed).problems).toEqual([]);
  });
});

describe('references to code in the READMEs and docs', () => {
  const files = markdownFiles();
  const result = checkCodeReferences(REPO_ROOT, files, ALLOWED_LINE_PHRASES);

  it('scans the README, docs/ and every lesson README, and finds the code links in them', () => {
    expect(files).toContain('README.md');
    expect(files).toContain('docs/README.md');
    expect(files).toContain('lessons/06-paged-kv-cache/README.md');
    expect(result.symbolLinks.length).toBeGreaterThanOrEqual(30);
    expect(result.symbolLinks.some((l) => l.fragment === 'Engine.step')).toBe(true);
  });

  it(`every link resolves, every symbol fragment names a declaration, no line numbers (${result.links.length} links, ${result.symbolLinks.length} symbols)`, () => {
    expect(result.problems).toEqual([]);
  });
});
