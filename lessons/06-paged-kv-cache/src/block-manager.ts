// The KV cache as virtual memory: the pool is cut into fixed-size blocks (the
// pages), each sequence owns a block table (its page table) mapping its
// logical positions to physical slots, and free blocks wait on a free list.
// A sequence holds at most one partly filled block: at most blockSize - 1
// slots of slack, whatever its final length.

export class OutOfBlocksError extends Error {
  constructor(
    readonly needed: number,
    readonly free: number,
    readonly total: number,
  ) {
    super(`KV cache out of blocks: ${needed} more needed, ${free} free of ${total}`);
    this.name = 'OutOfBlocksError';
  }
}

export class BlockManager {
  private readonly freeList: number[];
  private readonly tables = new Map<number, number[]>();
  private readonly lengths = new Map<number, number>();

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new RangeError(`BlockManager: numBlocks must be a positive integer, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`BlockManager: blockSize must be a positive integer, got ${blockSize}`);
    // Pop from the end: block 0 is handed out first.
    this.freeList = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  get freeBlocks(): number {
    return this.freeList.length;
  }

  get usedBlocks(): number {
    return this.numBlocks - this.freeList.length;
  }

  /** Tokens stored over all sequences. */
  get usedTokens(): number {
    let n = 0;
    for (const l of this.lengths.values()) n += l;
    return n;
  }

  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  has(seqId: number): boolean {
    return this.tables.has(seqId);
  }

  length(seqId: number): number {
    return this.lengths.get(seqId) ?? 0;
  }

  blockTable(seqId: number): readonly number[] {
    return this.tables.get(seqId) ?? [];
  }

  /** Whether `tokens` more tokens fit for this sequence (new or existing). */
  canAppend(seqId: number, tokens: number): boolean {
    const len = this.length(seqId);
    return this.blocksFor(len + tokens) - this.blockTable(seqId).length <= this.freeList.length;
  }

  /**
   * Extends a sequence by `tokens` positions (creating it if new) and returns
   * the physical slots of the new positions. All or nothing: on a shortage it
   * throws OutOfBlocksError and changes nothing.
   */
  append(seqId: number, tokens: number): number[] {
    if (!Number.isInteger(tokens) || tokens < 0) throw new RangeError(`BlockManager.append: tokens must be a non-negative integer, got ${tokens}`);
    const table = this.tables.get(seqId) ?? [];
    const len = this.length(seqId);
    const needed = this.blocksFor(len + tokens) - table.length;
    if (needed > this.freeList.length) throw new OutOfBlocksError(needed, this.freeList.length, this.numBlocks);
    for (let i = 0; i < needed; i++) table.push(this.freeList.pop()!);
    this.tables.set(seqId, table);
    this.lengths.set(seqId, len + tokens);
    const slots: number[] = [];
    for (let p = len; p < len + tokens; p++) slots.push(slotOf(table, p, this.blockSize));
    return slots;
  }

  /** Physical slots of positions [0, length) of a sequence: what attention reads. */
  slots(seqId: number): number[] {
    const table = this.blockTable(seqId);
    return Array.from({ length: this.length(seqId) }, (_, p) => slotOf(table, p, this.blockSize));
  }

  /** Returns a sequence's blocks to the free list. */
  free(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    for (let i = table.length - 1; i >= 0; i--) this.freeList.push(table[i]!);
    this.tables.delete(seqId);
    this.lengths.delete(seqId);
  }
}

/** The pool slot of a sequence's token at `position`: its block (from the block table) times the block size, plus the offset in it. */
export function slotOf(table: readonly number[], position: number, blockSize: number): number {
  return table[Math.floor(position / blockSize)]! * blockSize + (position % blockSize);
}
