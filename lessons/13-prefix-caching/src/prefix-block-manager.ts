// Lesson 06's block manager, with blocks that outlive their sequence. A full
// block is named by a hash chained over the prefix: sha256 of the previous
// block's hash and this block's token ids, so the same 16 tokens after two
// different prefixes are two different blocks (their K/V differ: attention
// saw different contexts). A table maps each hash to the one physical block
// that holds it. Blocks are shared between sequences with reference counts;
// when the last holder lets go of a hashed block it keeps its hash and waits
// on an evictable list, least recently used first, until either a request
// with the same prefix revives it or the pool needs a free block and it is
// evicted (its hash entry goes with it). Blocks without a hash (partly
// filled, or a duplicate of a block already cached) go to the free list and
// are handed out before any cached block is evicted.
//
// Only full blocks are ever shared: a sequence writes only into blocks it
// holds alone (the hit is a whole number of blocks, and the tokens after it
// go into new blocks), so no copy-on-write is needed.
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';

import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { PrefixCacheStats } from '@aios/engine-core/engine/types.ts';
import { BlockManager, OutOfBlocksError, slotOf } from '@aios/lesson-06-paged-kv-cache';

/** A full block's identity: base64 of sha256(previous block's hash, the block's token ids as int32). */
export type BlockHash = string;

/**
 * The hash of a full block, chained: sha256 over the previous block's hash
 * (none for a sequence's first block) and the block's token ids. Both inputs
 * have fixed lengths (44 base64 characters or none; blockSize int32s), so
 * distinct (prefix, tokens) pairs hash distinct inputs. sha256 rather than a
 * 64-bit hash: a collision would silently give one request another's K/V.
 */
export function hashBlock(prev: BlockHash | undefined, tokens: readonly number[] | Int32Array): BlockHash {
  const bytes = 4 * tokens.length;
  if (!oneShotHash || (prev !== undefined && prev.length !== HASH_CHARS) || HASH_CHARS + bytes > hashInput.length) {
    const ids = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens);
    return createHash('sha256')
      .update(prev ?? '')
      .update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength))
      .digest('base64');
  }
  // The same bytes in one reused buffer, hashed in one call: no Hash object and
  // no arrays per block (this runs once for every block any sequence fills).
  hashIds.set(tokens);
  if (prev !== undefined) hashInput.write(prev, 0, 'latin1');
  return oneShotHash('sha256', hashView(prev === undefined, bytes), 'base64');
}

/** hashInput's first `HASH_CHARS + bytes` bytes, or (first) those after the previous hash's place; the last two views are kept (one block size in use). */
function hashView(first: boolean, bytes: number): Buffer {
  if (bytes !== viewBytes) {
    viewBytes = bytes;
    chainedView = hashInput.subarray(0, HASH_CHARS + bytes);
    firstView = hashInput.subarray(HASH_CHARS, HASH_CHARS + bytes);
  }
  return first ? firstView : chainedView;
}
let viewBytes = -1;
let chainedView: Buffer;
let firstView: Buffer;

/** A BlockHash's length: 32 bytes in base64. */
const HASH_CHARS = 44;
/** The previous hash's characters, then (at a 4-aligned offset, 44) up to 256 token ids; a larger block takes the createHash path. */
const hashInput = Buffer.alloc(HASH_CHARS + 4 * 256);
const hashIds = new Int32Array(hashInput.buffer, hashInput.byteOffset + HASH_CHARS, 256);
/** crypto.hash (Node >= 20.12): a one-shot digest, about twice as fast as createHash for inputs this small. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'base64') => string }).hash;

/** The chained hashes of every full block of a token list. */
export function blockHashes(tokens: readonly number[], blockSize: number): BlockHash[] {
  const out: BlockHash[] = [];
  for (let b = 0; (b + 1) * blockSize <= tokens.length; b++) out.push(hashBlock(out[b - 1], tokens.slice(b * blockSize, (b + 1) * blockSize)));
  return out;
}

/** What a lookup found: the cached blocks that hold a sequence's first tokens, in order. */
export interface CachedPrefix {
  blocks: number[];
  /** blocks.length * blockSize: tokens whose K/V need not be computed. */
  tokens: number;
  /** How many of the blocks no sequence holds now (they leave the evictable list when claimed). */
  revived: number;
  /** The hash of the first full block past the hit (undefined when the hit reaches the lookup's limit). */
  next: BlockHash | undefined;
}

interface Holder {
  table: number[];
  length: number;
  /** The sequence, when it came in through admit: its tokens name the blocks it fills. */
  seq: Sequence | undefined;
  /** Its first `registered` blocks are hashed (or were found to duplicate a cached block). */
  registered: number;
  /** The sequence's hash chain (the array chains holds for it), kept here to skip the WeakMap on every fill. */
  chain: BlockHash[] | undefined;
}

export class PrefixCachingBlockManager extends BlockManager {
  private readonly refs: Int32Array;
  /** Tokens stored in each block (blockSize for a hashed one). */
  private readonly filled: Int32Array;
  private readonly hashOfBlock: (BlockHash | undefined)[];
  private readonly blockOfHash = new Map<BlockHash, number>();
  /** Free blocks with no hash: handed out first (last in, first out, as lesson 06). */
  private readonly uncached: number[];
  /** Hashed blocks nobody holds, least recently released first. */
  private readonly evictable: BlockQueue;
  private readonly holders = new Map<number, Holder>();
  /** Each sequence's chain of full-block hashes, computed once, extended as its outputs fill blocks. */
  private readonly chains = new WeakMap<Sequence, BlockHash[]>();
  private liveTokens = 0;
  /**
   * Sequences given positions since the last stepDone() that complete a block
   * past those hashed, as pairs (sequence id, its full blocks once the step has
   * run): then those blocks have K/V to hash. Kept as appends happen so that a
   * step visits only the sequences that filled a block (in a decode step, about
   * one in blockSize), not all.
   */
  private readonly filling: number[] = [];
  /**
   * Sequences whose finished steps filled blocks not yet filed in the hash
   * table, in the order they filled them, as filling's pairs (each filed up to
   * the blocks its step completed, not further: a later step's blocks wait for
   * their own turn, as they would have). Filing waits for the first thing that
   * reads what it would change (a lookup that could find one of these blocks, a
   * free, an eviction, stats, audit) or for cacheFilled(): the table reads the
   * same everywhere as if each step's blocks were filed when the step ended,
   * and a step that reads none of it does the filing while the device computes
   * (Scheduler.overlap).
   */
  private toFile: number[] = [];
  /** The first-block hashes of toFile's sequences (built when a lookup asks, dropped when toFile changes). */
  private toFileFirsts: Set<BlockHash> | undefined;
  /** Blocks that start two or more holders' tables: while none does, no two sequences share a first block. */
  private sharedFirst = 0;
  /** One block's token ids, as hashed (reused: hashing ~20,000 blocks a run should not allocate 20,000 arrays). */
  private readonly scratch: Int32Array;
  private counters: PrefixCacheStats = { queries: 0, queryTokens: 0, hits: 0, hitBlocks: 0, hitTokens: 0, revivedBlocks: 0, evictions: 0 };

  constructor(numBlocks: number, blockSize: number) {
    super(numBlocks, blockSize);
    this.refs = new Int32Array(numBlocks);
    this.filled = new Int32Array(numBlocks);
    this.hashOfBlock = new Array<BlockHash | undefined>(numBlocks).fill(undefined);
    this.uncached = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
    this.scratch = new Int32Array(blockSize);
    this.evictable = new BlockQueue(numBlocks);
  }

  // ------------------------------------------------ lesson 06's interface, over shared blocks

  /** Blocks an allocation may take: never-hashed free ones plus cached ones nobody holds. */
  override get freeBlocks(): number {
    return this.uncached.length + this.evictable.size;
  }

  /** Blocks some sequence holds. */
  override get usedBlocks(): number {
    return this.numBlocks - this.freeBlocks;
  }

  /** Tokens stored in held blocks, a shared block counted once. */
  override get usedTokens(): number {
    return this.liveTokens;
  }

  override has(seqId: number): boolean {
    return this.holders.has(seqId);
  }

  override length(seqId: number): number {
    return this.holders.get(seqId)?.length ?? 0;
  }

  override blockTable(seqId: number): readonly number[] {
    return this.holders.get(seqId)?.table ?? [];
  }

  override canAppend(seqId: number, tokens: number): boolean {
    const h = this.holders.get(seqId);
    return this.blocksFor((h?.length ?? 0) + tokens) - (h?.table.length ?? 0) <= this.freeBlocks;
  }

  override append(seqId: number, tokens: number): number[] {
    if (!Number.isInteger(tokens) || tokens < 0) throw new RangeError(`BlockManager.append: tokens must be a non-negative integer, got ${tokens}`);
    let h = this.holders.get(seqId);
    const len = h?.length ?? 0;
    const needed = this.blocksFor(len + tokens) - (h?.table.length ?? 0);
    if (needed > this.freeBlocks) throw new OutOfBlocksError(needed, this.freeBlocks, this.numBlocks);
    if (!h) {
      h = { table: [], length: 0, seq: undefined, registered: 0, chain: undefined };
      this.holders.set(seqId, h);
    }
    for (let i = 0; i < needed; i++) h.table.push(this.takeFreeBlock());
    // The new positions' slots and each block's fill, block by block (a prefill
    // chunk spans many tokens but few blocks; a decode step, one token of one block).
    const bs = this.blockSize, table = h.table, slots: number[] = [];
    for (let p = len, end = len + tokens; p < end; ) {
      const i = Math.floor(p / bs), b = table[i]!, next = Math.min(end, (i + 1) * bs);
      for (let q = p; q < next; q++) slots.push(b * bs + (q - i * bs));
      this.filled[b]! += next - p;
      p = next;
    }
    // A full block past the hashed ones once this step has run: hash it at the next cacheFilled().
    const full = Math.floor((len + tokens) / bs);
    if (h.seq && full > h.registered) this.filling.push(seqId, full);
    h.length = len + tokens;
    this.liveTokens += tokens;
    return slots;
  }

  override slots(seqId: number): number[] {
    const h = this.holders.get(seqId);
    if (!h) return [];
    return Array.from({ length: h.length }, (_, p) => slotOf(h.table, p, this.blockSize));
  }

  /**
   * Lets go of a sequence's blocks. Its computed full blocks are hashed first
   * (they stay findable); blocks nobody holds any more go to the evictable list,
   * the sequence's last block first, so that its tail (the part least likely
   * shared) is evicted before its head.
   */
  override free(seqId: number): void {
    const h = this.holders.get(seqId);
    if (!h) return;
    this.cacheFilled();
    this.fileFilledBlocks(h);
    if (h.table.length > 0 && this.refs[h.table[0]!] === 2) this.sharedFirst--;
    for (let i = h.table.length - 1; i >= 0; i--) {
      const b = h.table[i]!;
      if (--this.refs[b]! > 0) continue;
      this.liveTokens -= this.filled[b]!;
      if (this.hashOfBlock[b] !== undefined) this.evictable.add(b);
      else {
        this.filled[b] = 0;
        this.uncached.push(b);
      }
    }
    this.holders.delete(seqId);
  }

  // ------------------------------------------------ the prefix cache

  /** The chained hashes of a sequence's first `n` full blocks (computed once per sequence). */
  chain(seq: Sequence, n: number): readonly BlockHash[] {
    return this.extendChain(seq, this.chainOf(seq), n);
  }

  /** Hashes a sequence's blocks past those its chain `c` holds, up to `n`. */
  private extendChain(seq: Sequence, c: BlockHash[], n: number): BlockHash[] {
    if (c.length >= n) return c;
    const bs = this.blockSize;
    if (n * bs > seq.length) throw new RangeError(`PrefixCachingBlockManager.chain: sequence ${seq.id} has ${seq.length} tokens, not ${n} full blocks of ${bs}`);
    const p = seq.promptIds, o = seq.outputIds, ids = this.scratch, np = p.length;
    for (let b = c.length; b < n; b++) {
      const start = b * bs;
      if (start + bs <= np) for (let i = 0; i < bs; i++) ids[i] = p[start + i]!;
      else for (let i = 0; i < bs; i++) ids[i] = start + i < np ? p[start + i]! : o[start + i - np]!;
      c.push(hashBlock(c[b - 1], ids));
    }
    return c;
  }

  /**
   * The longest run of cached blocks that holds the sequence's first tokens.
   * It stops one token short of the sequence's end: its last token is always
   * computed (its logits pick the next token), and when the sequence fills a
   * whole number of blocks that means its last block is computed again, in a
   * block of its own (writing into a shared block could change what another
   * sequence reads; vLLM makes the same choice). Claims nothing: see admit.
   */
  lookup(seq: Sequence): CachedPrefix {
    const limit = Math.floor((seq.length - 1) / this.blockSize);
    const chain = this.chain(seq, limit);
    if (chain.length > 0 && this.fillingMayMatch(chain[0]!)) this.cacheFilled();
    const blocks: number[] = [];
    let revived = 0;
    for (const hash of chain) {
      const b = this.blockOfHash.get(hash);
      if (b === undefined) break;
      blocks.push(b);
      if (this.refs[b] === 0) revived++;
    }
    return { blocks, tokens: blocks.length * this.blockSize, revived, next: chain[blocks.length] };
  }

  /** Whether a sequence can take a looked-up prefix and `newTokens` more: the revived blocks leave the free pool too. */
  canAdmit(prefix: CachedPrefix, newTokens: number): boolean {
    return this.blocksFor(prefix.tokens + newTokens) - prefix.blocks.length + prefix.revived <= this.freeBlocks;
  }

  /**
   * Gives a sequence that holds no blocks the prefix a lookup found (one more
   * reference on each block) and `newTokens` new positions after it. All or
   * nothing: a stale prefix (a block evicted since the lookup) is an error, a
   * shortage an OutOfBlocksError, and neither changes anything.
   */
  admit(seq: Sequence, prefix: CachedPrefix, newTokens: number): number[] {
    if (this.holders.has(seq.id)) throw new Error(`PrefixCachingBlockManager.admit: sequence ${seq.id} already holds blocks`);
    // No filing first: filing gives hashes only to blocks that have none, so the
    // prefix's blocks (found in the table) read the same either way.
    const chain = this.chain(seq, prefix.blocks.length);
    prefix.blocks.forEach((b, i) => {
      if (this.hashOfBlock[b] !== chain[i]) throw new Error(`PrefixCachingBlockManager.admit: block ${b} no longer holds sequence ${seq.id}'s block ${i} (evicted since the lookup)`);
    });
    const revived = prefix.blocks.filter((b) => this.refs[b] === 0).length;
    const needed = this.blocksFor(prefix.tokens + newTokens) - prefix.blocks.length + revived;
    if (needed > this.freeBlocks) throw new OutOfBlocksError(needed, this.freeBlocks, this.numBlocks);
    for (const b of prefix.blocks) {
      const before = this.refs[b]!;
      this.refs[b] = before + 1;
      if (before === 0) {
        this.evictable.delete(b);
        this.liveTokens += this.filled[b]!;
      }
    }
    if (prefix.blocks.length > 0 && this.refs[prefix.blocks[0]!] === 2) this.sharedFirst++;
    this.holders.set(seq.id, { table: [...prefix.blocks], length: prefix.tokens, seq, registered: prefix.blocks.length, chain: this.chains.get(seq) });
    const c = this.counters;
    c.queries++;
    c.queryTokens += seq.length;
    if (prefix.blocks.length > 0) c.hits++;
    c.hitBlocks += prefix.blocks.length;
    c.hitTokens += prefix.tokens;
    c.revivedBlocks += revived;
    return this.append(seq.id, newTokens);
  }

  /**
   * Hashes a sequence's blocks that filled with computed K/V since the last call
   * (prompt and output tokens alike), so later requests find them. A block whose
   * hash is already cached elsewhere (two sequences computed the same prefix at
   * once) stays unhashed and is freed normally.
   */
  cacheFilledBlocks(seqId: number): void {
    this.cacheFilled();
    const h = this.holders.get(seqId);
    if (h) this.fileFilledBlocks(h);
  }

  /** Files a holder's computed full blocks past those already filed, the first `upTo` at most. */
  private fileFilledBlocks(h: Holder, upTo = Infinity): void {
    if (!h.seq) return;
    const full = Math.min(upTo, Math.floor(Math.min(h.seq.cachedTokens, h.length) / this.blockSize));
    if (full <= h.registered) return;
    const chain = this.extendChain(h.seq, (h.chain ??= this.chainOf(h.seq)), full);
    for (let i = h.registered; i < full; i++) {
      const b = h.table[i]!, hash = chain[i]!;
      if (this.hashOfBlock[b] !== undefined || this.blockOfHash.has(hash)) continue;
      this.hashOfBlock[b] = hash;
      this.blockOfHash.set(hash, b);
    }
    h.registered = full;
  }

  /**
   * Marks the end of a step (the scheduler calls it as the next one is
   * scheduled): the blocks that step filled have their K/V now, and are filed
   * in the table before anything next reads it (see toFile).
   */
  stepDone(): void {
    const f = this.filling;
    for (let i = 0; i < f.length; i++) this.toFile.push(f[i]!);
    if (f.length > 0) this.toFileFirsts = undefined;
    f.length = 0;
    if (this.toFile.length > 4 * this.numBlocks) this.cacheFilled(); // nothing has read the table for a long time: keep the list bounded
  }

  /** Files the blocks of finished steps (cacheFilledBlocks for each sequence stepDone noted, in order). */
  cacheFilled(): void {
    const f = this.toFile;
    if (f.length === 0) return;
    this.toFile = [];
    this.toFileFirsts = undefined;
    for (let i = 0; i < f.length; i += 2) {
      const h = this.holders.get(f[i]!);
      if (h) this.fileFilledBlocks(h, f[i + 1]!);
    }
  }

  /**
   * Whether filing the blocks waiting in toFile could change what a lookup
   * whose chain starts with `first` finds. A chained hash names its whole
   * prefix, so a block can lie on that chain only if its sequence's first block
   * has the same hash: with no shared first block (the throughput workload),
   * a prefill step's lookups leave the filing of the last step's thousand-odd
   * prompt blocks to overlap().
   */
  private fillingMayMatch(first: BlockHash): boolean {
    const f = this.toFile;
    if (f.length === 0) return false;
    if (!this.toFileFirsts) {
      const firsts = new Set<BlockHash>();
      for (let i = 0; i < f.length; i += 2) {
        const h = this.holders.get(f[i]!);
        if (h?.seq && h.seq.length >= this.blockSize) firsts.add(this.extendChain(h.seq, (h.chain ??= this.chainOf(h.seq)), 1)[0]!);
      }
      this.toFileFirsts = firsts;
    }
    return this.toFileFirsts.has(first);
  }

  /**
   * Computes, ahead of time, the hashes that the next cacheFilled() and the
   * next lookups will need: the blocks the sequences noted by append complete
   * in the step now running (a hash depends only on token ids, all known once
   * the step is scheduled), and the prompts of `waiting` sequences, first to
   * last, until `tokenBudget` tokens of them are covered (about what the next
   * step can admit). Only the per-sequence chains grow: nothing becomes
   * findable before its K/V is computed, so no decision changes.
   */
  hashAhead(waiting: readonly Sequence[], tokenBudget: number): void {
    const f = this.filling, bs = this.blockSize;
    for (let i = 0; i < f.length; i += 2) {
      const h = this.holders.get(f[i]!);
      if (h?.seq) this.extendChain(h.seq, (h.chain ??= this.chainOf(h.seq)), Math.min(f[i + 1]!, Math.floor(h.seq.length / bs)));
    }
    let left = tokenBudget;
    for (let i = 0; i < waiting.length && left > 0; i++) {
      const seq = waiting[i]!;
      this.chain(seq, Math.floor((seq.length - 1) / bs)); // what lookup(seq) hashes
      left -= seq.length;
    }
  }

  /** Whether some block starts the tables of two or more sequences (only then can a step hold two sequences with the same first block). */
  get sharesFirstBlocks(): boolean {
    return this.sharedFirst > 0;
  }

  private chainOf(seq: Sequence): BlockHash[] {
    let c = this.chains.get(seq);
    if (!c) this.chains.set(seq, (c = []));
    return c;
  }

  /** Forgets every cached block nobody holds (they become plain free blocks); returns how many. */
  dropCached(): number {
    this.cacheFilled();
    const n = this.evictable.size;
    for (const b of this.evictable) {
      this.blockOfHash.delete(this.hashOfBlock[b]!);
      this.hashOfBlock[b] = undefined;
      this.filled[b] = 0;
      this.uncached.push(b);
    }
    this.evictable.clear();
    return n;
  }

  /** Counters since this manager was made. */
  stats(): PrefixCacheStats & { cachedBlocks: number; evictableBlocks: number } {
    this.cacheFilled();
    return { ...this.counters, cachedBlocks: this.blockOfHash.size, evictableBlocks: this.evictable.size };
  }

  /** How many sequences hold block `b`. */
  refCount(b: number): number {
    return this.refs[b]!;
  }

  /** The evictable blocks, next to be evicted first. */
  evictionOrder(): number[] {
    return [...this.evictable];
  }

  /**
   * Checks every invariant and throws naming the first that fails: reference
   * counts equal the holders' tables, every block is held, evictable or free
   * exactly once, hashes map both ways, live tokens add up.
   */
  audit(): void {
    this.cacheFilled();
    const counted = new Int32Array(this.numBlocks);
    let tokens = 0;
    for (const [id, h] of this.holders) {
      if (h.table.length !== this.blocksFor(h.length)) throw new Error(`audit: sequence ${id} has ${h.table.length} blocks for ${h.length} tokens`);
      for (const b of h.table) counted[b]!++;
    }
    const state = new Int8Array(this.numBlocks);
    for (let b = 0; b < this.numBlocks; b++) {
      if (counted[b] !== this.refs[b]) throw new Error(`audit: block ${b} has reference count ${this.refs[b]}, held by ${counted[b]} tables`);
      if (this.refs[b]! > 0) {
        state[b] = 1;
        tokens += this.filled[b]!;
      }
    }
    for (const b of this.evictable) {
      if (state[b]) throw new Error(`audit: block ${b} is evictable and ${state[b] === 1 ? 'held' : 'listed twice'}`);
      if (this.hashOfBlock[b] === undefined) throw new Error(`audit: evictable block ${b} has no hash`);
      state[b] = 2;
    }
    for (const b of this.uncached) {
      if (state[b]) throw new Error(`audit: free block ${b} is also ${state[b] === 1 ? 'held' : 'listed elsewhere'}`);
      if (this.hashOfBlock[b] !== undefined) throw new Error(`audit: free block ${b} still has a hash`);
      state[b] = 3;
    }
    const firsts = new Map<number, number>();
    for (const h of this.holders.values()) if (h.table.length > 0) firsts.set(h.table[0]!, (firsts.get(h.table[0]!) ?? 0) + 1);
    const shared = [...firsts.values()].filter((n) => n > 1).length;
    if (shared !== this.sharedFirst) throw new Error(`audit: ${shared} blocks start two or more tables, the count says ${this.sharedFirst}`);
    const lost = state.findIndex((s) => s === 0);
    if (lost >= 0) throw new Error(`audit: block ${lost} is neither held, evictable nor free (leaked)`);
    for (const [hash, b] of this.blockOfHash) if (this.hashOfBlock[b] !== hash) throw new Error(`audit: hash table entry for block ${b} does not match its hash`);
    const hashed = this.hashOfBlock.filter((h) => h !== undefined).length;
    if (hashed !== this.blockOfHash.size) throw new Error(`audit: ${hashed} blocks have hashes, the table has ${this.blockOfHash.size}`);
    if (tokens !== this.liveTokens) throw new Error(`audit: held blocks store ${tokens} tokens, the count says ${this.liveTokens}`);
  }

  /** A free block: a never-hashed one, else the least recently used cached one, evicted. */
  private takeFreeBlock(): number {
    let b = this.uncached.pop();
    if (b === undefined) {
      this.cacheFilled(); // an eviction reads the table
      const oldest = this.evictable.oldest();
      if (oldest === undefined) throw new OutOfBlocksError(1, 0, this.numBlocks);
      b = oldest;
      this.evictable.delete(b);
      this.blockOfHash.delete(this.hashOfBlock[b]!);
      this.hashOfBlock[b] = undefined;
      this.filled[b] = 0;
      this.counters.evictions++;
    }
    this.refs[b] = 1;
    return b;
  }
}

/**
 * Blocks in the order they were added, as a doubly linked list threaded through
 * two arrays indexed by block: add, delete and the oldest are O(1) with no
 * allocation and no hashing (a Set did the same with a hash table that grows to
 * every cached block; about 70 blocks join it each time a sequence finishes).
 */
class BlockQueue {
  /** prev/next of block b; numBlocks is the list's head-and-tail sentinel, -1 marks a block not listed. */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly end: number;
  size = 0;

  constructor(numBlocks: number) {
    this.prev = new Int32Array(numBlocks + 1).fill(-1);
    this.next = new Int32Array(numBlocks + 1).fill(-1);
    this.end = numBlocks;
    this.prev[this.end] = this.next[this.end] = this.end;
  }

  has(b: number): boolean {
    return b !== this.end && this.next[b] !== -1;
  }

  /** Appends b (the newest); a no-op when it is listed already, as Set.add. */
  add(b: number): void {
    if (this.has(b)) return;
    const last = this.prev[this.end]!;
    this.next[last] = b;
    this.prev[b] = last;
    this.next[b] = this.end;
    this.prev[this.end] = b;
    this.size++;
  }

  delete(b: number): boolean {
    if (!this.has(b)) return false;
    const p = this.prev[b]!, n = this.next[b]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.prev[b] = this.next[b] = -1;
    this.size--;
    return true;
  }

  /** The block listed longest, or undefined when none is. */
  oldest(): number | undefined {
    const b = this.next[this.end]!;
    return b === this.end ? undefined : b;
  }

  clear(): void {
    for (let b = this.next[this.end]!; b !== this.end; ) {
      const n = this.next[b]!;
      this.prev[b] = this.next[b] = -1;
      b = n;
    }
    this.prev[this.end] = this.next[this.end] = this.end;
    this.size = 0;
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let b = this.next[this.end]!; b !== this.end; b = this.next[b]!) yield b;
  }
}
