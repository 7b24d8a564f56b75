// The READMEs and docs point at code by file and symbol, never by line number, so
// edits to the code do not silently break them. The convention (docs/README.md,
// "Pointing at code"):
//
//   [`Engine.step`](../../engine-core/src/engine/engine.ts#Engine.step)
//   [`paged_attention_kernel`](../../native/src/cuda/paged_attention.cu#paged_attention_kernel)
//
// A link without a fragment names a file as a whole. This module finds the links in
// markdown, resolves them against the files, and finds the symbols each source file
// declares; code-refs.test.ts runs it over the repository and over a small fixture.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import ts from 'typescript';

/** Files whose #fragment must name a declared symbol. */
export const SOURCE_EXTENSIONS = ['.ts', '.cc', '.cu', '.h', '.cuh', '.py', '.sh'] as const;

export interface MarkdownLink {
  file: string;
  /** 1-based line of the link's start. */
  line: number;
  /** The link text as written (with its backticks). */
  text: string;
  /** The target as written. */
  target: string;
  /** The target's path part, decoded ('' for an in-page #anchor). */
  path: string;
  fragment: string | undefined;
}

// ---------------------------------------------------------------- markdown

/**
 * The markdown with what is not prose blanked, keeping every offset: fenced code
 * blocks become empty lines and inline code spans keep their backticks around x's.
 * A link written inside code is an example, not a link.
 */
export function proseOnly(markdown: string): string {
  let fence: string | undefined;
  const lines = markdown.split('\n').map((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence !== undefined) {
      if (m && m[1]![0] === fence[0] && m[1]!.length >= fence.length && /^\s*[`~]+\s*$/.test(line)) fence = undefined;
      return ' '.repeat(line.length);
    }
    if (m) {
      fence = m[1]!;
      return ' '.repeat(line.length);
    }
    return line;
  });
  // An inline code span: a run of backticks, then anything up to the same run (not across a blank line).
  return lines.join('\n').replace(/(`+)((?:(?!\n[ \t]*\n)[^`]|(?!\1)`+)+?)\1(?!`)/g, (_, ticks: string, body: string) => ticks + body.replace(/[^\n]/g, 'x') + ticks);
}

const INLINE_LINK = /!?\[((?:[^[\]]|\[[^[\]]*\])*)\]\(\s*(<[^>\n]*>|[^\s)]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g;
const REFERENCE_DEFINITION = /^ {0,3}\[([^\]\n]+)\]:[ \t]*(<[^>\n]*>|\S+)/gm;

/** Relative links of a markdown text (inline links, images and reference definitions); URLs with a scheme are left out. */
export function markdownLinks(file: string, markdown: string): MarkdownLink[] {
  const prose = proseOnly(markdown);
  const lineOf = (offset: number) => prose.slice(0, offset).split('\n').length;
  const out: MarkdownLink[] = [];
  const add = (offset: number, text: string, raw: string) => {
    const target = raw.startsWith('<') ? raw.slice(1, -1) : raw;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return; // https:, mailto:, ...
    const hash = target.indexOf('#');
    const rawPath = (hash >= 0 ? target.slice(0, hash) : target).replace(/\?.*$/, '');
    let decoded = rawPath;
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      // a malformed escape is kept as written; the file check reports it
    }
    out.push({ file, line: lineOf(offset), text, target, path: decoded, fragment: hash >= 0 ? target.slice(hash + 1) : undefined });
  };
  for (const m of prose.matchAll(INLINE_LINK)) {
    const start = m.index + (m[0].startsWith('!') ? 2 : 1);
    add(m.index, markdown.slice(start, start + m[1]!.length), m[2]!);
  }
  for (const m of prose.matchAll(REFERENCE_DEFINITION)) add(m.index, m[1]!, m[2]!);
  return out.sort((a, b) => a.line - b.line);
}

/**
 * Text that points at code by line: "line 42", "lines 52 and 56", "lines 10-20",
 * "measure.ts:58". Code blocks are searched too (a diagram's "(block-manager.ts
 * line 105)" is a reference like any other). A link's "#L58" anchor is the link
 * check's to report.
 */
export const LINE_REFERENCE = /\blines?\s+\d+(?:\s*(?:-|–|to|and|,)\s*\d+)*\b|[\w./-]+\.(?:ts|tsx|js|mjs|cc|cpp|cu|h|hpp|cuh|py|sh):\d+\b/gi;

const LINE_ANCHOR = /^L\d+(?:-L?\d+)?$/;

export interface LineReference {
  file: string;
  line: number;
  phrase: string;
}

export function lineReferences(file: string, markdown: string): LineReference[] {
  const out: LineReference[] = [];
  markdown.split('\n').forEach((text, i) => {
    for (const m of text.matchAll(LINE_REFERENCE)) out.push({ file, line: i + 1, phrase: m[0] });
  });
  return out;
}

// ---------------------------------------------------------------- declarations

/** A declared name and the class (struct, interface, enum, namespace, object) it is a member of. */
export interface Declaration {
  name: string;
  container?: string;
}

/** What a source file declares, by its extension. */
export function declarations(file: string, source: string): Declaration[] {
  const ext = path.extname(file);
  if (ext === '.ts') return tsDeclarations(file, source);
  if (ext === '.py') return pythonDeclarations(source);
  if (ext === '.sh') return shellDeclarations(source);
  return cppDeclarations(source);
}

const LINE_ANCHOR_PROBLEM = (fragment: string) => `#${fragment} is a line anchor; name the function or class instead (#Name or #Class.member)`;
const SYMBOL = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/** Why `fragment` names no symbol of the file, or undefined when it does. `A.b`: b is a member of A. */
export function symbolProblem(file: string, source: string, fragment: string): string | undefined {
  if (LINE_ANCHOR.test(fragment)) return LINE_ANCHOR_PROBLEM(fragment);
  if (!SYMBOL.test(fragment)) return `#${fragment} is not a symbol name (#Name or #Class.member)`;
  const decls = declarations(file, source);
  const parts = fragment.split('.');
  // The first part may be a container only: C++'s `Pool::free` defined here, its class declared in a header.
  if (!decls.some((d) => d.name === parts[0] || (parts.length > 1 && d.container === parts[0]))) return `${path.basename(file)} declares no ${parts[0]}`;
  for (let i = 1; i < parts.length; i++)
    if (!decls.some((d) => d.name === parts[i] && d.container === parts[i - 1])) return `${parts[i - 1]} in ${path.basename(file)} has no member ${parts[i]}`;
  return undefined;
}

// TypeScript: the compiler's own parser. Classes, interfaces, type aliases, enums,
// namespaces, functions and variables outside function bodies (a body's locals are
// not symbols); members (methods, properties, accessors, constructor parameter
// properties, interface and type-literal members, enum members, the properties of
// an object literal a variable is initialized with) carry their container.
function tsDeclarations(file: string, source: string): Declaration[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: Declaration[] = [];
  const nameOf = (node: ts.Node): string | undefined => {
    const n = (node as { name?: ts.Node }).name;
    return n && (ts.isIdentifier(n) || ts.isStringLiteral(n) || ts.isNumericLiteral(n)) ? n.text : undefined;
  };
  const add = (name: string | undefined, container: string | undefined) => {
    if (name !== undefined) out.push(container === undefined ? { name } : { name, container });
  };
  // Nodes a container passes through to the members below them.
  const passThrough = (n: ts.Node) =>
    ts.isSourceFile(n) || ts.isModuleBlock(n) || ts.isVariableStatement(n) || ts.isVariableDeclarationList(n) || ts.isTypeLiteralNode(n) ||
    ts.isObjectLiteralExpression(n) || ts.isAsExpression(n) || ts.isSatisfiesExpression(n) || ts.isParenthesizedExpression(n) ||
    ts.isIntersectionTypeNode(n) || ts.isUnionTypeNode(n) || ts.isParenthesizedTypeNode(n) || ts.isExportAssignment(n);
  const visit = (node: ts.Node, container: string | undefined): void => {
    const name = nameOf(node);
    let inner: string | undefined;
    if (ts.isClassLike(node) || ts.isInterfaceDeclaration(node) || ts.isEnumDeclaration(node) || ts.isModuleDeclaration(node) || ts.isTypeAliasDeclaration(node)) {
      add(name, container);
      inner = name;
    } else if (ts.isFunctionDeclaration(node)) {
      add(name, container);
      return; // its body's locals are not symbols
    } else if (ts.isVariableDeclaration(node)) {
      add(name, container);
      inner = name; // the properties of an object literal it is initialized with are its members
    } else if (
      ts.isMethodDeclaration(node) || ts.isPropertyDeclaration(node) || ts.isGetAccessorDeclaration(node) || ts.isSetAccessorDeclaration(node) ||
      ts.isMethodSignature(node) || ts.isPropertySignature(node) || ts.isEnumMember(node) || ts.isPropertyAssignment(node) || ts.isShorthandPropertyAssignment(node)
    ) {
      if (container !== undefined) add(name, container);
      if (ts.isFunctionLike(node)) return;
      inner = name; // a property's type literal or object value holds its members
    } else if (ts.isConstructorDeclaration(node)) {
      add('constructor', container);
      // Parameter properties (`readonly model: Qwen3Model`) are members of the class.
      for (const p of node.parameters) if (ts.getModifiers(p)?.length) add(nameOf(p), container);
      return;
    } else if (passThrough(node)) {
      inner = container;
    } else {
      return; // expressions, statements, function bodies: nothing below is a symbol of this file
    }
    ts.forEachChild(node, (child) => visit(child, inner));
  };
  visit(sf, undefined);
  return out;
}

// C, C++ and CUDA: a small scanner over the source with comments, strings and
// preprocessor lines blanked. Declarations at namespace or class scope only (a
// function body's locals are not symbols): functions and kernels (`name(` after a
// return type, `Class::name(` out of line), classes, structs, unions, enums and
// their enumerators, variables and fields, `using`/`typedef` names, and #define.
function cppDeclarations(source: string): Declaration[] {
  const out: Declaration[] = [];
  for (const m of source.matchAll(/^[ \t]*#[ \t]*define[ \t]+(\w+)/gm)) out.push({ name: m[1]! });
  const text = maskCpp(source);
  type Scope = { kind: 'ns' | 'class' | 'enum' | 'body'; name?: string };
  const stack: Scope[] = [{ kind: 'ns' }];
  const add = (name: string | undefined, container: string | undefined) => {
    if (name && !CPP_KEYWORDS.has(name)) out.push(container === undefined ? { name } : { name, container });
  };
  const scopeName = () => {
    const top = stack[stack.length - 1]!;
    return top.kind === 'class' || top.kind === 'enum' ? top.name : undefined;
  };
  let start = 0;
  let parens = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const top = stack[stack.length - 1]!;
    if (top.kind === 'body') {
      if (c === '{') stack.push({ kind: 'body' });
      else if (c === '}') {
        stack.pop();
        start = i + 1;
      }
      continue;
    }
    if (c === '(') parens++;
    else if (c === ')') parens = Math.max(0, parens - 1);
    else if (parens > 0) continue;
    else if (c === ';') {
      if (top.kind === 'enum') enumerators(text.slice(start, i), top.name, add);
      else cppStatement(text.slice(start, i), scopeName(), add);
      start = i + 1;
    } else if (c === '{') {
      stack.push(cppOpen(text.slice(start, i), scopeName(), add));
      start = i + 1;
    } else if (c === '}') {
      if (top.kind === 'enum') enumerators(text.slice(start, i), top.name, add);
      if (stack.length > 1) stack.pop();
      start = i + 1;
    }
  }
  return out;
}

const CPP_KEYWORDS = new Set(['if', 'for', 'while', 'switch', 'catch', 'return', 'sizeof', 'decltype', 'alignof', 'static_assert', 'operator', 'new', 'delete', 'throw', 'else', 'do', 'case', 'default', 'const', 'constexpr', 'static', 'inline', 'public', 'private', 'protected']);

/** Comments, string and character literals and preprocessor lines as spaces (newlines kept). */
function maskCpp(source: string): string {
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  return source
    .replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, (s) => (s.startsWith('/') ? blank(s) : s[0] + blank(s.slice(1, -1)) + s[0]))
    .replace(/^[ \t]*#(?:[^\n]*\\\n)*[^\n]*/gm, blank);
}

/** A declaration's head without templates, attributes and access labels. */
function cppHead(head: string): string {
  let h = head.replace(/^(?:\s*(?:public|private|protected)\s*:)+/, ' ');
  h = stripBalanced(h, /\btemplate\s*</g, '<', '>');
  h = stripBalanced(h, /\b(?:__\w+__|alignas|__attribute__|__declspec)\s*\(/g, '(', ')');
  return h.replace(/\[\[[^\]]*\]\]/g, ' ').trim();
}

/** Removes each match of `opener` (ending with `open`) through its balanced `close`. */
function stripBalanced(s: string, opener: RegExp, open: string, close: string): string {
  let out = s;
  for (let m = opener.exec(out); m; m = opener.exec(out)) {
    let depth = 1;
    let j = m.index + m[0].length;
    for (; j < out.length && depth > 0; j++) {
      if (out[j] === open) depth++;
      else if (out[j] === close) depth--;
    }
    out = `${out.slice(0, m.index)} ${out.slice(j)}`;
    opener.lastIndex = 0;
  }
  return out;
}

/** A function (or prototype) in `head`: its name and the class an out-of-line `Class::name` gives, or undefined. */
function cppFunction(head: string, scope: string | undefined): { name: string; container: string | undefined } | undefined {
  let h = head;
  for (;;) {
    const open = h.indexOf('(');
    if (open < 0) return undefined;
    const before = h.slice(0, open);
    if (before.includes('=')) return undefined; // an initializer: a variable
    const m = /((?:\w+\s*::\s*)*)(~?\w+)\s*$/.exec(before);
    if (m) {
      const name = m[2]!.replace(/^~/, '');
      const qualifiers = m[1]!.split('::').map((q) => q.trim()).filter(Boolean);
      const prefix = before.slice(0, m.index).trim();
      const constructor = name === (qualifiers[qualifiers.length - 1] ?? scope);
      if (!CPP_KEYWORDS.has(name) && (prefix !== '' || constructor)) return { name, container: qualifiers[qualifiers.length - 1] ?? scope };
      if (prefix === '' && !constructor) {
        // A macro invocation without a semicolon before the declaration: look past it.
        let depth = 0;
        let j = open;
        for (; j < h.length; j++) {
          if (h[j] === '(') depth++;
          else if (h[j] === ')' && --depth === 0) break;
        }
        h = h.slice(j + 1);
        continue;
      }
    }
    return undefined;
  }
}

type AddDeclaration = (name: string | undefined, container: string | undefined) => void;

/** What a `{` opens, registering what its head declares. */
function cppOpen(rawHead: string, scope: string | undefined, add: AddDeclaration): { kind: 'ns' | 'class' | 'enum' | 'body'; name?: string } {
  const head = cppHead(rawHead);
  if (/^(?:inline\s+)?namespace\b/.test(head) || /^extern(?:\s+"\s*")?\s*$/.test(head)) return { kind: 'ns' };
  const e = /\benum\s+(?:class\s+|struct\s+)?(\w+)?\s*(?::[^{]*)?$/.exec(head);
  if (e && !head.includes('(')) {
    add(e[1], scope);
    return { kind: 'enum', name: e[1] };
  }
  const c = /\b(?:class|struct|union)\s+(?:\w+\s+)*?(\w+)\s*(?:final\s*)?(?::[^{]*)?$/.exec(head);
  if (c && !head.slice(0, c.index).includes('(') && !/[=(]/.test(head.slice(c.index))) {
    add(c[1], scope);
    return { kind: 'class', name: c[1] };
  }
  const f = cppFunction(head, scope);
  if (f) add(f.name, f.container);
  else cppVariable(head, scope, add); // `int table[] = {`, `Foo foo{`
  return { kind: 'body' };
}

/** A statement ending in `;` at namespace or class scope. */
function cppStatement(raw: string, scope: string | undefined, add: AddDeclaration): void {
  const s = cppHead(raw);
  if (!s || /^using\s+namespace\b/.test(s) || /^friend\b/.test(s)) return;
  const alias = /^using\s+(\w+)\s*=/.exec(s);
  if (alias) return add(alias[1], scope);
  if (/^typedef\b/.test(s)) return add(/(\w+)\s*(?:\[[^\]]*\])?\s*$/.exec(s)?.[1], scope);
  const forward = /^(?:class|struct|union)\s+(\w+)$/.exec(s);
  if (forward) return add(forward[1], scope);
  const f = cppFunction(s, scope);
  if (f) return add(f.name, f.container);
  cppVariable(s, scope, add);
}

/** `type name = ...`, `type name[...]`, `type name : bits`, `type a = x, b = y`: the names, when a type precedes them. */
function cppVariable(s: string, scope: string | undefined, add: AddDeclaration): void {
  const [first = '', ...more] = splitTopLevel(s, ',');
  const decl = first.split(/=|\[|\{|(?<!:):(?!:)/)[0]!.trim();
  const m = /(\w+)\s*$/.exec(decl);
  if (!m || decl.slice(0, m.index).trim() === '' || !/[\w>*&]\s*$/.test(decl.slice(0, m.index))) return;
  add(m[1], scope);
  for (const d of more) add(/^\s*[*&]*\s*(\w+)\s*(?:=|\[|\{|$)/.exec(d)?.[1], scope);
}

/** `s` split at `sep` outside (), <>, [] and {}. */
function splitTopLevel(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if ('(<[{'.includes(c)) depth++;
    else if (')>]}'.includes(c)) depth = Math.max(0, depth - 1);
    else if (c === sep && depth === 0) {
      out.push(s.slice(from, i));
      from = i + 1;
    }
  }
  out.push(s.slice(from));
  return out;
}

function enumerators(body: string, name: string | undefined, add: AddDeclaration): void {
  for (const part of body.split(',')) add(/^\s*(\w+)/.exec(part)?.[1], name);
}

// Python: def and class outside function bodies; a class's members are the defs,
// assignments and `self.x =` attributes of its body; module-level assignments.
function pythonDeclarations(source: string): Declaration[] {
  const out: Declaration[] = [];
  const stack: { indent: number; kind: 'class' | 'def'; name: string }[] = [];
  for (const line of source.split('\n')) {
    if (!line.trim() || /^\s*#/.test(line)) continue;
    const indent = /^\s*/.exec(line)![0].length;
    while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
    const top = stack[stack.length - 1];
    const inClass = top?.kind === 'class' ? top.name : undefined;
    const def = /^\s*(?:async\s+)?(def|class)\s+(\w+)/.exec(line);
    if (def) {
      if (top?.kind !== 'def') out.push(inClass ? { name: def[2]!, container: inClass } : { name: def[2]! });
      stack.push({ indent, kind: def[1] === 'class' ? 'class' : 'def', name: def[2]! });
      continue;
    }
    const assign = /^\s*(\w+)\s*(?::[^=]*)?=(?!=)/.exec(line);
    if (assign && ((!top && indent === 0) || inClass)) out.push(inClass ? { name: assign[1]!, container: inClass } : { name: assign[1]! });
    const attr = /^\s*self\.(\w+)\s*(?::[^=]*)?=(?!=)/.exec(line);
    const owner = top?.kind === 'def' ? stack[stack.length - 2] : undefined;
    if (attr && owner?.kind === 'class') out.push({ name: attr[1]!, container: owner.name });
  }
  return out;
}

// Shell: functions (`name() {`, `function name`) and top-level variables (`NAME=`).
function shellDeclarations(source: string): Declaration[] {
  const out: Declaration[] = [];
  for (const line of source.split('\n')) {
    const f = /^\s*(?:function\s+([\w-]+)|([\w-]+)\s*\(\s*\))/.exec(line);
    if (f) out.push({ name: (f[1] ?? f[2])! });
    const v = /^(?:export\s+|readonly\s+|declare(?:\s+-\w+)*\s+)?([A-Za-z_]\w*)=/.exec(line); // not indented: not a function's local
    if (v) out.push({ name: v[1]! });
  }
  return out;
}

// ---------------------------------------------------------------- checking a tree

/** Phrases a file may keep that look like line references but point at no code. Each entry says why. */
export interface AllowedLinePhrase {
  file: string;
  phrase: string;
  why: string;
}

export interface CheckResult {
  problems: string[];
  links: MarkdownLink[];
  /** Links whose fragment was checked against a source file's symbols. */
  symbolLinks: MarkdownLink[];
}

/** Checks the markdown `files` (relative to `root`): links resolve, fragments on source files name symbols, no line references. */
export function checkCodeReferences(root: string, files: readonly string[], allowed: readonly AllowedLinePhrase[] = []): CheckResult {
  const problems: string[] = [];
  const links: MarkdownLink[] = [];
  const symbolLinks: MarkdownLink[] = [];
  const sources = new Map<string, string>();
  for (const file of files) {
    const found: { line: number; problem: string }[] = [];
    const markdown = readFileSync(path.join(root, file), 'utf8');
    for (const r of lineReferences(file, markdown)) {
      if (allowed.some((a) => a.file === file && a.phrase === r.phrase)) continue;
      found.push({ line: r.line, problem: `${file}:${r.line}: "${r.phrase}" points at code by line number; link the symbol instead ([\`Class.method\`](path/to/file.ts#Class.method))` });
    }
    for (const link of markdownLinks(file, markdown)) {
      links.push(link);
      if (link.path === '') continue; // an in-page anchor
      const where = `${file}:${link.line}: [${link.text}](${link.target})`;
      const resolved = link.path.startsWith('/') ? path.join(root, link.path) : path.resolve(root, path.dirname(file), link.path);
      const rel = path.relative(root, resolved);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        found.push({ line: link.line, problem: `${where}: points outside the repository` });
        continue;
      }
      if (!existsSync(resolved)) {
        found.push({ line: link.line, problem: `${where}: ${rel} does not exist` });
        continue;
      }
      if (link.fragment === undefined) continue;
      if (!(SOURCE_EXTENSIONS as readonly string[]).includes(path.extname(resolved))) {
        if (LINE_ANCHOR.test(link.fragment)) found.push({ line: link.line, problem: `${where}: ${LINE_ANCHOR_PROBLEM(link.fragment)}` });
        continue;
      }
      if (!statSync(resolved).isFile()) continue;
      symbolLinks.push(link);
      let source = sources.get(resolved);
      if (source === undefined) sources.set(resolved, (source = readFileSync(resolved, 'utf8')));
      const missing = symbolProblem(resolved, source, link.fragment);
      if (missing) found.push({ line: link.line, problem: `${where}: ${missing}` });
    }
    problems.push(...found.sort((a, b) => a.line - b.line).map((f) => f.problem));
  }
  return { problems, links, symbolLinks };
}
