/**
 * Hand-made architectures for rule tests, so config/ tests do not depend on the catalog's
 * numbers. Shapes from each checkpoint's config.json (Phi-3-mini: hidden 3072, intermediate
 * 8192, fused qkv_proj and gate_up_proj; Llama-3-8B: hidden 4096, 8 KV heads).
 */
import type { ModelArch } from '../../src/catalog/types.ts'

// The planner tests' hand-made Phi-3-mini; one copy of those numbers.
export { phi3Mini as PHI3_MINI } from '../planner/fixtures.ts'

export const LLAMA_8B: ModelArch = {
  name: 'llama-3-8b',
  modelType: 'llama',
  hiddenSize: 4096,
  intermediateSize: 14336,
  numLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 8,
  headDim: 128,
  vocabSize: 128256,
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: false,
  layerLinears: [
    { name: 'q_proj', inFeatures: 4096, outFeatures: 4096, bias: false },
    { name: 'k_proj', inFeatures: 4096, outFeatures: 1024, bias: false },
    { name: 'v_proj', inFeatures: 4096, outFeatures: 1024, bias: false },
    { name: 'o_proj', inFeatures: 4096, outFeatures: 4096, bias: false },
    { name: 'gate_proj', inFeatures: 4096, outFeatures: 14336, bias: false },
    { name: 'up_proj', inFeatures: 4096, outFeatures: 14336, bias: false },
    { name: 'down_proj', inFeatures: 14336, outFeatures: 4096, bias: false },
  ],
  layerNormParams: 2 * 4096,
  embedParams: 128256 * 4096,
  lmHeadParams: 128256 * 4096,
  finalNormParams: 4096,
  params: 8_030_261_248,
}

export const T4 = {
  gpu: { name: 'T4', aliases: [], memoryBytes: 16e9, bf16Tflops: 0, bandwidthGBps: 320, bf16: false, computeCapability: '7.5' },
  count: 1,
}
