// The repository's markdown, read as a reader meets it: which files, and their fenced code blocks.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

import { REPO_ROOT } from '../src/bench/records.ts';

export interface CodeBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  tags: string[];
  code: string;
}

/** Fenced blocks of a markdown text, with the words after the language as tags. */
export function codeBlocks(file: string, text: string): CodeBlock[] {
  const out: CodeBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const [lang = '', ...tags] = open[3]!.trim().split(/\s+/).filter(Boolean);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(open[2]!); j++) body.push(lines[j]!.slice(open[1]!.length));
    out.push({ file, line: i + 1, lang, tags, code: body.join('\n') });
    i = j;
  }
  return out;
}

/** The markdown a reader finds: the README, docs/ (and its subfolders), each lesson's README, bench-results/README.md. */
export function markdownFiles(): string[] {
  const files = ['README.md', 'bench-results/README.md'];
  for (const f of readdirSync(path.join(REPO_ROOT, 'docs'), { recursive: true, encoding: 'utf8' }).sort()) if (f.endsWith('.md')) files.push(`docs/${f.split(path.sep).join('/')}`);
  for (const d of readdirSync(path.join(REPO_ROOT, 'lessons'))) if (/^\d\d-/.test(d)) files.push(`lessons/${d}/README.md`);
  return files.filter((f) => existsSync(path.join(REPO_ROOT, f)));
}

