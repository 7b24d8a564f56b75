// Our Qwen3 forward against a golden_logits.py fixture, printed as JSON.
//   tsx engine-core/scripts/compare-golden.ts MODEL_DIR GOLDEN.json [--device cpu|cuda] [--dtype f32|bf16]
import { parseArgs } from 'node:util';

import { assertDType, defaultDevice, parseDevice } from '../src/index.ts';
import { compareWithGolden, readGolden } from '../src/model/golden.ts';
import { Qwen3Model } from '../src/model/qwen3.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { device: { type: 'string' }, dtype: { type: 'string' } } });
const [modelDir, goldenFile] = positionals;
if (!modelDir || !goldenFile) {
  console.error('usage: tsx engine-core/scripts/compare-golden.ts MODEL_DIR GOLDEN.json [--device cpu|cuda] [--dtype f32|bf16]');
  process.exit(2);
}
const device = values.device ? parseDevice(values.device) : defaultDevice();
const golden = readGolden(goldenFile);
const model = Qwen3Model.load(modelDir, { device, ...(values.dtype ? { dtype: assertDType(values.dtype) } : {}) });
const result = compareWithGolden(model, golden);
console.log(JSON.stringify({ model: modelDir, golden: goldenFile, oracle: golden.oracle, oracleDtype: golden.dtype, oracleDevice: golden.device, ours: { device, dtype: model.dtype }, ...result }));
model.dispose();
