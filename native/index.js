'use strict';
// Loads the compiled addon, or explains how to build it.
const path = require('node:path');
const fs = require('node:fs');

const candidates = [
  path.join(__dirname, 'build', 'Release', 'aios_native.node'),
  path.join(__dirname, 'build', 'Debug', 'aios_native.node'),
];
const found = candidates.find((p) => fs.existsSync(p));
if (!found) {
  throw new Error(
    'The AIOS native addon is not built (looked for native/build/Release/aios_native.node).\n' +
      'Build it with `pnpm install` at the repository root, or `pnpm --filter @aios/native build`.\n' +
      'It needs cmake and a C++17 compiler; CUDA is optional (see docs/gpu-setup.md).',
  );
}
module.exports = require(found);
module.exports.path = found;
