// `pnpm lesson 6`: a few generations, the course workload, the record, the comparison.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
