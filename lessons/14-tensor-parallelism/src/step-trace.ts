// AIOS_TP_TRACE=1: where a tensor-parallel decode step's time goes on each rank's
// host, measured from the moment rank 0 publishes the step's plan (a wall-clock
// stamp in the group's shared memory): when the rank saw the plan, when its step
// was queued (the graph replay launched, or the eager forward enqueued) and when
// its device finished. The ranks meet at every collective, so a rank that queues
// later holds the others up by that much; these lines say by how much.
import type { StepPhase } from '@aios/engine-core/engine/types.ts';

import type { GroupMemory } from './group-memory.ts';

export const traceEnabled = (): boolean => process.env.AIOS_TP_TRACE === '1';

const wallMs = (): number => performance.timeOrigin + performance.now();

export class StepTrace {
  private steps = 0;
  private readonly sums = { seen: 0, queued: 0, done: 0 };
  private publishedAt = 0;
  private phase: StepPhase | undefined;

  constructor(
    private readonly mem: GroupMemory,
    readonly rank: number,
  ) {}

  /** Rank 0, as it publishes a step. */
  published(): void {
    this.mem.clock[0] = wallMs();
  }

  /** Any rank, as it starts a step of this phase (the plan in hand). */
  seen(phase: StepPhase): void {
    this.phase = phase;
    this.publishedAt = this.mem.clock[0]!;
    if (phase === 'decode') this.sums.seen += wallMs() - this.publishedAt;
  }

  queued(): void {
    if (this.phase === 'decode') this.sums.queued += wallMs() - this.publishedAt;
  }

  done(): void {
    if (this.phase !== 'decode') return;
    this.sums.done += wallMs() - this.publishedAt;
    this.steps++;
  }

  line(): string {
    const n = Math.max(this.steps, 1), ms = (v: number) => (v / n).toFixed(3);
    return `tp trace, rank ${this.rank}: ${this.steps} decode steps, mean ms after rank 0 published the plan: seen ${ms(this.sums.seen)}, queued ${ms(this.sums.queued)}, device done ${ms(this.sums.done)}`;
  }
}
