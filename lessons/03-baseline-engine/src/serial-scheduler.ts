// One request at a time, first come first served: the current sequence runs
// its prefill, then one decode step after another until it finishes; only then
// does the next one start. Lesson 07 batches; lesson 08 schedules continuously.
import type { Scheduler, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';

export class SerialScheduler implements Scheduler {
  private readonly waiting: Sequence[] = [];
  private current: Sequence | undefined;

  add(seq: Sequence): void {
    this.waiting.push(seq);
  }

  get pending(): number {
    return this.waiting.length + (this.current ? 1 : 0);
  }

  schedule(): StepPlan | undefined {
    if (!this.current) {
      this.current = this.waiting.shift();
      if (!this.current) return undefined;
      this.current.status = 'running';
      return { sequences: [this.current], newTokens: [this.current.length - this.current.cachedTokens], phase: 'prefill' };
    }
    return { sequences: [this.current], newTokens: [1], phase: 'decode' };
  }

  finished(seq: Sequence): void {
    if (seq === this.current) this.current = undefined;
  }

  abort(seq: Sequence): void {
    if (seq === this.current) this.current = undefined;
    const i = this.waiting.indexOf(seq);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  stats() {
    return { waiting: this.waiting.length, running: this.current ? 1 : 0 };
  }
}
