// One request at a time, first come first served: the current sequence runs
// its prefill, then one decode step after another until it finishes; only then
// does the next one start. Lesson 07 batches; lesson 08 schedules continuously.
import type { ScheduledBatch, Scheduler } from '@aios/engine-core/engine/types.ts';
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

  schedule(): ScheduledBatch | undefined {
    if (!this.current) {
      this.current = this.waiting.shift();
      if (!this.current) return undefined;
      this.current.status = 'running';
      return { sequences: [this.current], phase: 'prefill' };
    }
    return { sequences: [this.current], phase: 'decode' };
  }

  finished(seq: Sequence): void {
    if (seq === this.current) this.current = undefined;
  }
}
