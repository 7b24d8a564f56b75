// The memory the ranks of one process share (one SharedArrayBuffer, handed to
// every worker thread at start): a control block the ranks synchronize on with
// Atomics, the step plan rank 0 writes for the others, the first failure's
// message, and, on the CPU, the buffers the collectives go through.
//
// Every wait here has a deadline and watches the abort flag: a rank that throws
// records why and sets the flag, and every other rank waiting on the group wakes
// up and throws with that message instead of waiting forever.

/** Indices into the control block. */
export const CTRL = {
  /** Ranks arrived at the current barrier. */
  count: 0,
  /** Bumped when a barrier opens. */
  generation: 1,
  /** 0, or 1 + the rank that failed first. */
  abort: 2,
  /** Bumped when rank 0 has written a step (or the stop). */
  step: 3,
  /** What the step is: STEP_RUN or STEP_STOP. */
  stepKind: 4,
  /** Ints of the plan, in the half of the plan area the step's parity picks. */
  planLength: 5,
  /** Ranks that have exited. */
  exited: 6,
  /** The number of the last vote (agree) some rank refused. */
  refused: 7,
  /** 1 + the rank that refused it. */
  refusedBy: 8,
  /** Free for a tool of its own (rank-costs.ts: the echo rank's acknowledgements); the engine never touches it. */
  scratch: 9,
  size: 16,
} as const;

export const STEP_RUN = 1;
export const STEP_STOP = 2;
const ERROR_BYTES = 4096;
const CLOCK_SLOTS = 1;

export interface GroupShape {
  /** Ranks in the group. */
  size: number;
  /** Ints one encoded plan may take (the area holds two: steps alternate halves). */
  planInts: number;
  /** Bytes of each rank's collective buffer (0 where NCCL carries the collectives). */
  slotBytes: number;
}

export class GroupMemory {
  readonly ctrl: Int32Array;
  /** The two halves of the plan area. */
  readonly plans: [Int32Array, Int32Array];
  readonly slots: Uint8Array[];
  /** Where the ranks' reduced chunk is assembled. */
  readonly result: Uint8Array;
  /** A wall-clock stamp in ms (performance.timeOrigin + now()): when rank 0 published the current step (StepTrace). */
  readonly clock: Float64Array;
  private readonly error: Uint8Array;

  constructor(
    readonly sab: SharedArrayBuffer,
    readonly shape: GroupShape,
  ) {
    const { size, planInts, slotBytes } = shape;
    let at = 0;
    const take = (bytes: number) => {
      const start = at;
      at += Math.ceil(bytes / 8) * 8;
      if (at > sab.byteLength) throw new Error(`GroupMemory: the shared buffer (${sab.byteLength} bytes) is smaller than the layout needs`);
      return start;
    };
    this.ctrl = new Int32Array(sab, take(CTRL.size * 4), CTRL.size);
    this.clock = new Float64Array(sab, take(CLOCK_SLOTS * 8), CLOCK_SLOTS);
    this.plans = [new Int32Array(sab, take(planInts * 4), planInts), new Int32Array(sab, take(planInts * 4), planInts)];
    this.error = new Uint8Array(sab, take(ERROR_BYTES), ERROR_BYTES);
    this.slots = Array.from({ length: size }, () => new Uint8Array(sab, take(slotBytes), slotBytes));
    this.result = new Uint8Array(sab, take(slotBytes), slotBytes);
  }

  static bytesFor(shape: GroupShape): number {
    const r = (n: number) => Math.ceil(n / 8) * 8;
    return r(CTRL.size * 4) + CLOCK_SLOTS * 8 + 2 * r(shape.planInts * 4) + ERROR_BYTES + (shape.size + 1) * r(shape.slotBytes);
  }

  static create(shape: GroupShape): GroupMemory {
    return new GroupMemory(new SharedArrayBuffer(GroupMemory.bytesFor(shape)), shape);
  }

  get size(): number {
    return this.shape.size;
  }

  /** Counts this rank's thread out (it has freed what it holds): what waitExited waits for. */
  exit(): void {
    Atomics.add(this.ctrl, CTRL.exited, 1);
    Atomics.notify(this.ctrl, CTRL.exited);
  }

  /** Waits until `ranks` threads have counted out (exit), for at most `timeoutMs`; returns how many have. */
  waitExited(ranks: number, timeoutMs = Infinity): number {
    const c = this.ctrl, deadline = performance.now() + timeoutMs;
    let n = Atomics.load(c, CTRL.exited);
    while (n < ranks && performance.now() < deadline) {
      Atomics.wait(c, CTRL.exited, n, 100);
      n = Atomics.load(c, CTRL.exited);
    }
    return n;
  }

  /** Records the first failure and wakes every waiting rank. */
  fail(rank: number, message: string): void {
    if (Atomics.compareExchange(this.ctrl, CTRL.abort, 0, rank + 1) === 0) {
      const bytes = new TextEncoder().encode(message).subarray(0, ERROR_BYTES - 4);
      new DataView(this.sab, this.error.byteOffset, 4).setUint32(0, bytes.length, true);
      this.error.set(bytes, 4);
    }
    Atomics.notify(this.ctrl, CTRL.generation);
    Atomics.notify(this.ctrl, CTRL.step);
  }

  /** Throws the recorded failure, if any rank failed. */
  checkAbort(self: number): void {
    const who = Atomics.load(this.ctrl, CTRL.abort);
    if (who === 0) return;
    const n = new DataView(this.sab, this.error.byteOffset, 4).getUint32(0, true);
    const msg = new TextDecoder().decode(this.error.slice(4, 4 + n));
    throw new Error(who - 1 === self ? msg : `tensor-parallel group stopped: rank ${who - 1} failed: ${msg}`);
  }

  /**
   * Vote number `vote` (the same on every rank, counting from 1): true only if every
   * rank said ok. Two barriers: a refusal is written before the first, read between
   * them, so no rank writes the next vote before every rank has read this one.
   * Returns the refusing rank too (the first to write, if several refused).
   */
  agree(rank: number, vote: number, ok: boolean, what: string, timeoutMs: number): { ok: boolean; refusedBy?: number } {
    const c = this.ctrl;
    if (!ok && Atomics.exchange(c, CTRL.refused, vote) !== vote) Atomics.store(c, CTRL.refusedBy, rank + 1);
    this.barrier(rank, `${what} (votes cast)`, timeoutMs);
    const refused = Atomics.load(c, CTRL.refused) === vote;
    const by = Atomics.load(c, CTRL.refusedBy) - 1;
    this.barrier(rank, `${what} (votes read)`, timeoutMs);
    return refused ? { ok: false, refusedBy: by } : { ok: true };
  }

  /**
   * Waits until every rank has arrived. A rank that does not arrive within
   * timeoutMs fails the group with a message naming the wait.
   */
  barrier(rank: number, what: string, timeoutMs: number): void {
    const c = this.ctrl;
    this.checkAbort(rank);
    const gen = Atomics.load(c, CTRL.generation);
    if (Atomics.add(c, CTRL.count, 1) === this.size - 1) {
      Atomics.store(c, CTRL.count, 0);
      Atomics.add(c, CTRL.generation, 1);
      Atomics.notify(c, CTRL.generation);
      return;
    }
    const deadline = performance.now() + timeoutMs;
    while (Atomics.load(c, CTRL.generation) === gen) {
      const left = deadline - performance.now();
      if (left <= 0) {
        const arrived = Atomics.load(c, CTRL.count);
        this.fail(rank, `rank ${rank} waited ${Math.round(timeoutMs)} ms at ${what} and only ${arrived} of ${this.size} ranks arrived (a rank died or is stuck)`);
        this.checkAbort(rank);
      }
      Atomics.wait(c, CTRL.generation, gen, Math.min(left, 1000));
      this.checkAbort(rank);
    }
  }
}
