// `pnpm lesson 11`: a few generations, the course workload, the record, the comparison with
// lesson 10, and the graphs: how many, their capture time and memory, how many steps replayed.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
