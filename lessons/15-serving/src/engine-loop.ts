// The engine keeps stepping while requests arrive. One loop owns the Engine: it
// queues a step's forward on the device (Engine.stepAsync), hands the previous
// step's deltas to their requests (the SSE writes) while the device works, then
// waits for the step off the event loop (new connections, request bodies and
// disconnects are served then), and goes on while there is work. HTTP handlers
// only submit and abort; they never step the engine.
//
//   step N:   queue forward N and its sampling | decode and write deltas N-1 | await device (event loop free) | read tokens N
//   step N+1: queue forward N+1 and its sampling | decode and write deltas N | ...
//
// The text of a delta is decoded in the hand-out too (Engine.stepAsync's deferText, for
// requests without stop strings), not between steps, where the device would wait for it.
//
//   HTTP handler --submit--> [EngineLoop] --step--> Engine --deltas--> listener (SSE writer)
//                <--abort--  (client gone: its blocks go back when the step in flight ends)
//
// Why a loop on the main thread and not a worker: see the README's "Where the loop
// runs" (measured on the CPU).
import type { Engine, Prompt, RequestDelta, StepResult } from '@aios/engine-core/engine/engine.ts';
import type { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';

/** Receives one request's deltas, in order, as the engine samples them. */
export interface DeltaListener {
  onDelta(delta: RequestDelta): void;
  /** The request is over, with this error: a step failed, this listener's onDelta threw, or the loop was closed. */
  onError(error: Error): void;
}

/** One engine request for EngineLoop.submitAll. */
export interface Submission {
  prompt: Prompt;
  params: SamplingParams;
  listener: DeltaListener;
}

/** The loop was closed: a request it ends gets this, and submit and submitAll throw it; the server answers 503. */
export class ShuttingDownError extends Error {
  constructor() {
    super('the server is shutting down');
    this.name = 'ShuttingDownError';
  }
}

/** Thrown by submit and submitAll when the bounded queue has no room: the server answers 429. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

export interface StepTiming {
  /** Seconds from queueing the step's forward to its sampled tokens (the previous step's deltas are handed out meanwhile). */
  stepSeconds: number;
  /** Seconds the loop spent between two steps, outside both. */
  overheadSeconds: number;
  /** The step's result as it came: the text of its deferred deltas is decoded later, when they are handed out (empty here). */
  result: StepResult;
}

export interface EngineLoopOptions {
  /** The most requests waiting to be scheduled (admitted and not yet running); one more is a QueueFullError. */
  maxQueue: number;
  /** Called after every step (metrics). */
  onStep?: (t: StepTiming) => void;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class EngineLoop {
  private readonly listeners = new Map<number, DeltaListener>();
  private running = false;
  /** The loop's current run (idle() awaits it). */
  private turn: Promise<void> | undefined;
  private closed = false;
  /**
   * Steps run and their seconds, for /metrics and the serving benchmark: inside the step
   * (from queueing its forward to its tokens, the previous step's deltas handed out
   * meanwhile), around it (the loop between steps), and the hand-out's own share.
   */
  readonly totals = { steps: 0, stepSeconds: 0, overheadSeconds: 0, dispatchSeconds: 0 };

  constructor(
    readonly engine: Engine,
    readonly options: EngineLoopOptions,
  ) {
    if (!Number.isInteger(options.maxQueue) || options.maxQueue < 1) throw new RangeError(`EngineLoop: maxQueue must be a positive integer, got ${options.maxQueue}`);
  }

  /** Requests waiting to be scheduled (the scheduler's count where it keeps one, else every unfinished request). */
  private get waiting(): number {
    return this.engine.parts.scheduler.stats?.().waiting ?? this.engine.pending;
  }

  /** Queues one request (see submitAll); returns its id. */
  submit(prompt: Prompt, params: SamplingParams, listener: DeltaListener): number {
    return this.submitAll([{ prompt, params, listener }])[0]!;
  }

  /**
   * Queues a client request's engine requests (its choices) all or none: the queue is
   * checked once for all of them (QueueFullError), and when the engine refuses one
   * (a RangeError with its reason) those already queued are aborted. Returns their ids.
   * The loop starts if idle.
   */
  submitAll(requests: readonly Submission[]): number[] {
    if (this.closed) throw new ShuttingDownError();
    const count = requests.length;
    const waiting = this.waiting; // the scheduler's stats: once per client request, not per choice
    if (waiting + count > this.options.maxQueue)
      throw new QueueFullError(`the queue is full: ${waiting} requests are waiting and this one needs ${count} more place${count > 1 ? 's' : ''} (at most ${this.options.maxQueue}; --max-queue)`);
    const ids: number[] = [];
    try {
      for (const r of requests) {
        const id = this.engine.addRequest(r.prompt, r.params, { detokenize: true });
        this.listeners.set(id, r.listener);
        ids.push(id);
      }
    } catch (e) {
      for (const id of ids) this.abort(id);
      throw e;
    }
    this.kick();
    return ids;
  }

  /** Ends a request (its client went away): its blocks are free now, or when the step in flight ends. */
  abort(id: number): boolean {
    this.listeners.delete(id);
    return this.engine.abort(id);
  }

  /** Unfinished requests. */
  get pending(): number {
    return this.engine.pending;
  }

  /** Resolves once the loop has stopped stepping (no work, and its last turn over). */
  async idle(): Promise<void> {
    while (this.running && this.turn) await this.turn; // a turn that ends with work left starts the next one
  }

  /** Aborts everything and stops stepping. */
  close(): void {
    this.closed = true;
    this.endAll(new ShuttingDownError());
  }

  /** Ends every open request with `error` (its client gets it and its response ends); a listener that throws stops no other. */
  private endAll(error: Error): void {
    for (const [id, l] of [...this.listeners]) {
      this.abort(id);
      try {
        l.onError(error);
      } catch {
        // its response is beyond saving; the loop must not be
      }
    }
  }

  /** Decodes the step's deferred text, then hands each delta to its request's listener (a finished request's listener goes). */
  private dispatch(step: StepResult | undefined): void {
    if (!step) return;
    this.engine.fillText(step);
    for (const d of step.deltas) {
      const l = this.listeners.get(d.id);
      if (d.finished) this.listeners.delete(d.id);
      try {
        l?.onDelta(d);
      } catch (e) {
        // One request's writer failed: that request ends with the error; the others go on.
        this.abort(d.id);
        try {
          l?.onError(e instanceof Error ? e : new Error(String(e)));
        } catch {
          // its response is beyond saving; the loop must not be
        }
      }
    }
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.turn = this.run();
  }

  private async run(): Promise<void> {
    // Start on a fresh turn: every request that arrived in this turn joins the first step.
    await yieldToEventLoop();
    let last = performance.now();
    // The step before: its deltas are handed out while the next step runs on the device.
    let previous: StepResult | undefined;
    let next: Promise<StepResult> | undefined;
    try {
      while (!this.closed && this.engine.hasWork) {
        const t0 = performance.now();
        next = this.engine.stepAsync({ deferText: true }); // the step's kernels are queued when this returns
        const queued = performance.now();
        this.dispatch(previous); // SSE writes overlap the device's forward
        const t1 = performance.now();
        const result = await next; // the wait is off the event loop: requests and disconnects are served here
        next = undefined;
        const t2 = performance.now();
        previous = result;
        const overhead = (t0 - last) / 1000;
        last = t2;
        this.totals.steps++;
        this.totals.stepSeconds += (t2 - t0) / 1000;
        this.totals.overheadSeconds += overhead;
        this.totals.dispatchSeconds += (t1 - queued) / 1000;
        this.options.onStep?.({ stepSeconds: (t2 - t0) / 1000, overheadSeconds: overhead, result });
      }
      this.dispatch(previous);
    } catch (e) {
      // A step (or the decoding of its text) that throws is a bug, not a request's fault: end every
      // request with the error, keep serving. A step still in flight (dispatch threw) is over first.
      await next?.catch(() => {});
      this.endAll(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.running = false;
    }
    if (!this.closed && this.engine.hasWork) this.kick();
  }
}
