// Lesson 15 replaces no part of the engine: it serves the newest lesson's engine
// (lesson 14's: GPU sampling with log-probs and seeds, prefix caching, --tp N GPUs) behind HTTP. The
// server takes its recipe as a parameter (createServer({ recipe })); this is the
// default. `recipe` is the same engine under lesson 15's name, so `pnpm bench`
// measures, offline, exactly the engine the server drives.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { recipe as newest } from '@aios/lesson-14-tensor-parallelism';

/** The engine the server drives by default: the newest lesson's recipe. */
export const servedRecipe: Recipe = newest;

export const recipe: Recipe = {
  ...servedRecipe,
  name: 'serving',
  lesson: 15,
  summary: `lesson ${servedRecipe.lesson}'s engine (${servedRecipe.name}) behind an OpenAI-compatible HTTP server`,
};
