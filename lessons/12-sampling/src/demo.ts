// `pnpm lesson 12`: a few generations, the course workload, the record, the comparison with
// lesson 11. The sampler is the only part that changed: the throughput workload (temperature
// 0.6) is where it shows.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
