// Is a record still true of the code? A record measured a lesson at a commit; once
// the code that produced its numbers changes, the record describes code that no longer
// exists, and the chart and the README's course map say so.
//
// "The code that produced its numbers": every file reachable by value imports (not
// `import type`) from the lesson's entry points, across the workspace packages, plus
// the native addon's sources:
//   bench record (lessons 03 on)  lessons/NN-*/src/recipe.ts, engine-core/src/bench/harness.ts, engine-core/src/engine/llm.ts
//   environment record (00)       lessons/00-introduction/src/demo.ts
//   kernel record (lesson 09 on)  engine-core/src/cli/bench-kernels.ts (it times the kernels through the ops facade,
//                                 so the addon's sources come with it) and engine-core/scripts/sdpa_peer.py (the peer's numbers)
// A record is stale when one of those files differs between the record's commit and HEAD
// (a change taken back out again, a reverted experiment, does not count), or has an
// uncommitted change in the work tree; the answer names the first later commit that
// touched such a file. What it cannot check (no git,
// a commit git does not have) is "unknown", never silently fresh.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { type RecordBase, REPO_ROOT } from './records.ts';

export interface Freshness {
  state: 'fresh' | 'stale' | 'unknown';
  /** The record's commit as git knows it (without "+dirty"). */
  commit: string;
  /** The record was measured on uncommitted changes over `commit`. */
  dirty: boolean;
  /** Stale: the first commit after the record's that changed the lesson's code ("work tree" for uncommitted changes only). */
  since?: string;
  /** Stale: the files that commit (or the work tree) changed, repository-relative. */
  changed?: string[];
  /** Unknown: why. */
  reason?: string;
}

const VALUE_IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
/** require('@aios/native') through createRequire: how engine-core/src/backend.ts loads the addon. */
const REQUIRE = /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g;

function rel(root: string, file: string): string {
  return path.relative(root, file).split(path.sep).join('/');
}

/** A workspace package's folder by name (@aios/engine-core -> engine-core/, @aios/lesson-03-baseline-engine -> lessons/03-baseline-engine/). */
function packageDir(root: string, name: string): string | undefined {
  if (name === '@aios/engine-core') return path.join(root, 'engine-core');
  if (name === '@aios/native') return path.join(root, 'native');
  const m = /^@aios\/lesson-(\d\d-.+)$/.exec(name);
  if (m) return path.join(root, 'lessons', m[1]!);
  return undefined;
}

function asTsFile(p: string): string | undefined {
  for (const c of [p, `${p}.ts`, path.join(p, 'index.ts')]) if (existsSync(c) && statSync(c).isFile()) return c;
  return undefined;
}

/** What an import specifier in `from` refers to: a .ts file, the native addon, or nothing of ours. */
function resolveImport(root: string, spec: string, from: string): string | 'native' | undefined {
  if (spec.startsWith('.')) return asTsFile(path.resolve(path.dirname(from), spec));
  const m = /^(@aios\/[^/]+)(?:\/(.*))?$/.exec(spec);
  if (!m) return undefined;
  if (m[1] === '@aios/native') return 'native';
  const dir = packageDir(root, m[1]!);
  if (!dir) return undefined;
  if (m[2]) return asTsFile(path.join(dir, m[1] === '@aios/engine-core' ? 'src' : '', m[2]));
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { exports?: Record<string, string> | string };
  const main = typeof pkg.exports === 'string' ? pkg.exports : pkg.exports?.['.'];
  return main ? asTsFile(path.join(dir, main)) : undefined;
}

/**
 * The addon's sources: native/ without its build outputs and docs, and without native/emu, the CPU
 * emulator's test programs, which build no part of the addon (they include the kernels' .cu
 * sources, which count already), so a new emulator case does not mark every record stale.
 */
function nativeFiles(root: string): string[] {
  const out: string[] = [];
  const emu = path.join(root, 'native', 'emu');
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'build' && e.name !== 'node_modules' && p !== emu) walk(p);
      } else if (!e.name.endsWith('.md') && !e.name.endsWith('.node')) out.push(rel(root, p));
    }
  };
  if (existsSync(path.join(root, 'native'))) walk(path.join(root, 'native'));
  return out;
}

/** Every repository file the entry points run, by value imports, plus the native addon's sources; sorted. */
export function codeClosure(entries: readonly string[], root: string = REPO_ROOT): string[] {
  const seen = new Set<string>();
  let native = false;
  const queue = entries.map((e) => path.resolve(root, e)).filter((e) => existsSync(e));
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const re of [VALUE_IMPORT, DYNAMIC_IMPORT, REQUIRE]) {
      for (const m of text.matchAll(re)) {
        const target = resolveImport(root, m[1]!, file);
        if (target === 'native') native = true;
        else if (target && !seen.has(target)) queue.push(target);
      }
    }
  }
  return [...[...seen].map((f) => rel(root, f)), ...(native ? nativeFiles(root) : [])].sort();
}

/** What measures kernel records: the kernels themselves are reached from it (ops.ts, the addon). */
export const KERNEL_BENCH_ENTRY_POINTS = ['engine-core/src/cli/bench-kernels.ts', 'engine-core/scripts/sdpa_peer.py'];

/** The entry points whose code a record measured. */
export function recordEntryPoints(record: Pick<RecordBase, 'kind' | 'lesson'>, root: string = REPO_ROOT): string[] {
  // A kernel record times engine-core's kernels directly, not the lesson's recipe.
  if (record.kind === 'kernel') return KERNEL_BENCH_ENTRY_POINTS.filter((f) => existsSync(path.join(root, f)));
  const lessons = path.join(root, 'lessons');
  const folder = existsSync(lessons) ? readdirSync(lessons).find((d) => d.startsWith(`${String(record.lesson).padStart(2, '0')}-`)) : undefined;
  if (!folder) return [];
  if (record.kind === 'environment') return [`lessons/${folder}/src/demo.ts`];
  return [`lessons/${folder}/src/recipe.ts`, 'engine-core/src/bench/harness.ts', 'engine-core/src/engine/llm.ts'];
}

function git(root: string, args: string[]): string {
  return execFileSync('git', args, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 }).toString();
}

/**
 * Checks records against git with a handful of git calls however many records there
 * are: per record commit, one log of the files every later commit touched; per checker,
 * one status of the work tree; each lesson's code closure and each answer cached.
 */
export class FreshnessChecker {
  private readonly closures = new Map<string, string[]>();
  private readonly answers = new Map<string, Freshness>();
  /**
   * Per commit: the commits after it up to HEAD, oldest first, with the files each touched and that
   * still differ at HEAD from the commit's (a file changed and changed back is not among them);
   * undefined if git lacks the commit.
   */
  private readonly histories = new Map<string, { commit: string; files: string[] }[] | undefined>();
  private uncommitted: string[] | undefined;
  private gitOk: boolean | undefined;

  constructor(private readonly root: string = REPO_ROOT) {}

  private hasGit(): boolean {
    if (this.gitOk === undefined) {
      try {
        git(this.root, ['rev-parse', '--is-inside-work-tree']);
        this.gitOk = true;
      } catch {
        this.gitOk = false;
      }
    }
    return this.gitOk;
  }

  files(record: Pick<RecordBase, 'kind' | 'lesson'>): string[] {
    const key = `${record.kind}:${record.lesson}`;
    let files = this.closures.get(key);
    if (!files) this.closures.set(key, (files = codeClosure(recordEntryPoints(record, this.root), this.root)));
    return files;
  }

  check(record: Pick<RecordBase, 'kind' | 'lesson' | 'commit'>): Freshness {
    const dirty = record.commit.endsWith('+dirty');
    const commit = record.commit.replace(/\+dirty$/, '');
    const key = `${record.kind}:${record.lesson}:${commit}`;
    const cached = this.answers.get(key);
    if (cached) return { ...cached, dirty };
    const answer = this.compute(record, commit);
    this.answers.set(key, answer);
    return { ...answer, dirty };
  }

  private history(commit: string): { commit: string; files: string[] }[] | undefined {
    if (this.histories.has(commit)) return this.histories.get(commit);
    let out: { commit: string; files: string[] }[] | undefined;
    try {
      git(this.root, ['cat-file', '-e', `${commit}^{commit}`]);
      // "@<hash>" lines, each followed by the files that commit touched.
      out = [];
      const differs = new Set(git(this.root, ['diff', '--name-only', commit, 'HEAD']).split('\n').filter(Boolean));
      for (const line of git(this.root, ['log', '--reverse', '--format=@%h', '--name-only', `${commit}..HEAD`]).split('\n')) {
        if (line.startsWith('@')) out.push({ commit: line.slice(1), files: [] });
        else if (line && out.length && differs.has(line)) out[out.length - 1]!.files.push(line);
      }
    } catch {
      out = undefined;
    }
    this.histories.set(commit, out);
    return out;
  }

  private workTreeChanges(): string[] {
    this.uncommitted ??= git(this.root, ['status', '--porcelain', '--untracked-files=no'])
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3));
    return this.uncommitted;
  }

  private compute(record: Pick<RecordBase, 'kind' | 'lesson'>, commit: string): Freshness {
    const base = { commit, dirty: false };
    if (!this.hasGit()) return { ...base, state: 'unknown', reason: 'no git repository here to compare with' };
    if (!/^[0-9a-f]{7,40}$/.test(commit)) return { ...base, state: 'unknown', reason: `the record's commit "${commit}" is not a commit id` };
    const history = this.history(commit);
    if (!history) return { ...base, state: 'unknown', reason: `git has no commit ${commit} (a shallow clone?)` };
    const files = this.files(record);
    if (files.length === 0) return { ...base, state: 'unknown', reason: `no code found for lesson ${record.lesson}` };
    const mine = new Set(files);
    for (const c of history) {
      const changed = c.files.filter((f) => mine.has(f));
      if (changed.length > 0) return { ...base, state: 'stale', since: c.commit, changed };
    }
    const uncommitted = this.workTreeChanges().filter((f) => mine.has(f));
    if (uncommitted.length > 0) return { ...base, state: 'stale', since: 'work tree', changed: uncommitted };
    return { ...base, state: 'fresh' };
  }
}

/** One line for a reader: "stale: 1a2b3c4 changed lessons/06-paged-kv-cache/src/recipe.ts and 2 more". */
export function describeFreshness(f: Freshness): string {
  if (f.state === 'fresh') return `fresh: the lesson's code is unchanged since ${f.commit}${f.dirty ? ' (measured with uncommitted changes)' : ''}`;
  if (f.state === 'unknown') return `freshness unknown: ${f.reason}`;
  const files = f.changed ?? [];
  const list = files.length <= 2 ? files.join(' and ') : `${files.slice(0, 2).join(', ')} and ${files.length - 2} more`;
  return `stale: ${f.since === 'work tree' ? 'uncommitted changes to' : `commit ${f.since} changed`} ${list} after the record's commit ${f.commit}`;
}
