export * from './backend.ts';
export * from './dtype.ts';
export { Tensor, type TensorOptions, type HostData, numelOf, contiguousStrides, formatShape } from './tensor.ts';
export * as ops from './ops.ts';
