// Lesson 13's cascade-decode test steps: decode steps whose adjacent sequences
// share their first blocks (a prefix cached once and held by several requests),
// drawn fresh from a seed. A group's members hold the same block ids for their
// first `sharedBlocks` blocks, then blocks of their own; groups of one, groups
// that share nothing, members that diverge inside a 256-key split, members with
// no query this step. Shared by the CPU suite (cascade-decode.test.ts) and the
// GPU suite (cascade-decode.gpu.test.ts).
import type { FlashCase, FlashStep } from './flash-cases.ts';
import { randomArray, rng, roundTo } from './helpers.ts';

export interface CascadeGroup {
  /** Leading blocks every member holds with the same ids (capped at a member's own block count). */
  sharedBlocks: number;
  /** [queries (0 or 1), context] per member. */
  members: readonly (readonly [number, number])[];
}

/** A flash-attention case's shape, with groups of sequences behind shared prefixes instead of free sequences. */
export interface CascadeCase extends Omit<FlashCase, 'seqs'> {
  groups: readonly CascadeGroup[];
}

export function cascadeName(c: CascadeCase): string {
  const g = c.groups.map((x) => `${x.members.length}x${x.sharedBlocks}`).join(' ');
  return `groups [${g}] heads ${c.kvHeads * c.group}/${c.kvHeads} D${c.headDim} bs${c.blockSize} ${c.dtype}`;
}

/** The step of case `c` (a FlashStep, so flash-cases' reference64 and mismatch apply). */
export function buildCascadeStep(c: CascadeCase, seed: number): FlashStep {
  const bs = c.blockSize, D = c.headDim, qHeads = c.kvHeads * c.group;
  const seqs = c.groups.flatMap((g) => g.members);
  const blocksOf = (n: number) => Math.ceil(n / bs);
  const maxBlocks = Math.max(1, ...seqs.map(([, n]) => blocksOf(n)));
  const numBlocks = seqs.reduce((s, [, n]) => s + blocksOf(n), 0) + 3;
  const random = rng(seed ^ 0x2545f491);
  const order = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let next = 0;
  const tables = new Int32Array(seqs.length * maxBlocks).fill(-1);
  let b = 0;
  for (const g of c.groups) {
    const shared = Array.from({ length: g.sharedBlocks }, () => order[next++]!);
    for (const [, n] of g.members) {
      for (let j = 0; j < blocksOf(n); j++) tables[b * maxBlocks + j] = j < shared.length ? shared[j]! : order[next++]!;
      b++;
    }
  }
  if (next > numBlocks) throw new Error('cascade case: the pool is too small');
  const cu = new Int32Array(seqs.length + 1);
  seqs.forEach(([q], i) => (cu[i + 1] = cu[i]! + q));
  const tokens = cu[seqs.length]!;
  const numSlots = numBlocks * bs;
  const flat = { seqs, kvHeads: c.kvHeads, group: c.group, headDim: D, blockSize: bs, dtype: c.dtype, ...(c.boost ? { boost: c.boost } : {}) };
  return {
    c: flat, tokens, qHeads, numSlots, maxBlocks,
    maxQLen: Math.max(0, ...seqs.map(([q]) => q)),
    maxContextLen: Math.max(0, ...seqs.map(([, n]) => n)),
    q: roundTo(randomArray(tokens * qHeads * D, seed + 1, c.boost ?? 1), c.dtype),
    k: roundTo(randomArray(numSlots * c.kvHeads * D, seed + 2), c.dtype),
    v: roundTo(randomArray(numSlots * c.kvHeads * D, seed + 3), c.dtype),
    cu, ctx: Int32Array.from(seqs.map(([, n]) => n)), tables,
  };
}

/** A random case: 1..maxGroups groups of 1..maxMembers members, shared prefixes of 0..40 blocks, ragged suffixes. */
export function randomCascadeCase(seed: number, base: Omit<CascadeCase, 'groups'>, maxGroups = 4, maxMembers = 6): CascadeCase {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const groups: CascadeGroup[] = Array.from({ length: int(1, maxGroups) }, () => {
    const sharedBlocks = r() < 0.2 ? 0 : int(1, 40);
    const members = Array.from({ length: int(1, maxMembers) }, () => {
      const ctx = Math.max(1, sharedBlocks * base.blockSize + int(-20, 150));  // some stop inside the prefix
      return [r() < 0.1 ? 0 : 1, ctx] as const;
    });
    return { sharedBlocks, members };
  });
  // Some sequences have no query (10% each), but a decode step has at least one: all of them
  // without (one group of one such member, say) would read no keys and check nothing.
  if (groups.every((g) => g.members.every(([q]) => q === 0))) {
    const [first, ...rest] = groups[0]!.members;
    groups[0] = { ...groups[0]!, members: [[1, first![1]], ...rest] };
  }
  return { ...base, groups };
}

/** The lesson 13 workload's shape at one layer: groups of `members` sharing `prefix` tokens, suffixes of 32..256. */
export function sharedPrefixCase(groups: number, members: number, prefix: number, seed: number, base: Omit<CascadeCase, 'groups'>): CascadeCase {
  const r = rng(seed);
  return {
    ...base,
    groups: Array.from({ length: groups }, () => ({
      sharedBlocks: Math.floor(prefix / base.blockSize),
      members: Array.from({ length: members }, () => [1, prefix + 32 + Math.floor(r() * 225)] as const),
    })),
  };
}
