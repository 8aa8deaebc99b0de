/**
 * Hand-built architectures and GPUs for planner tests, with the numbers of the published
 * config.json files, so the planner's tests do not depend on the catalog.
 */
import type { Gpu, LinearModule, ModelArch } from '../../src/catalog/types.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { GIB } from '../../src/units.ts'

const lin = (name: string, inFeatures: number, outFeatures: number): LinearModule => ({ name, inFeatures, outFeatures, bias: false })

// microsoft/Phi-3-mini-128k-instruct config.json: hidden 3072, intermediate 8192, 32 layers, 32 heads, vocab 32064.
export const phi3Mini: ModelArch = {
  name: 'phi-3-mini-128k-instruct',
  hfId: 'microsoft/Phi-3-mini-128k-instruct',
  modelType: 'phi3',
  hiddenSize: 3072,
  intermediateSize: 8192,
  numLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 32,
  headDim: 96,
  vocabSize: 32064,
  maxPositionEmbeddings: 131072,
  tieWordEmbeddings: false,
  layerLinears: [lin('qkv_proj', 3072, 9216), lin('o_proj', 3072, 3072), lin('gate_up_proj', 3072, 16384), lin('down_proj', 8192, 3072)],
  layerNormParams: 2 * 3072,
  embedParams: 32064 * 3072,
  lmHeadParams: 32064 * 3072,
  finalNormParams: 3072,
  params: 3_821_079_552,
}

// meta-llama/Llama-2-7b-hf config.json: hidden 4096, intermediate 11008, 32 layers, 32 heads, vocab 32000.
export const llama2_7b: ModelArch = {
  name: 'llama-2-7b',
  modelType: 'llama',
  hiddenSize: 4096,
  intermediateSize: 11008,
  numLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 32,
  headDim: 128,
  vocabSize: 32000,
  maxPositionEmbeddings: 4096,
  tieWordEmbeddings: false,
  layerLinears: [
    lin('q_proj', 4096, 4096), lin('k_proj', 4096, 4096), lin('v_proj', 4096, 4096), lin('o_proj', 4096, 4096),
    lin('gate_proj', 4096, 11008), lin('up_proj', 4096, 11008), lin('down_proj', 11008, 4096),
  ],
  layerNormParams: 2 * 4096,
  embedParams: 32000 * 4096,
  lmHeadParams: 32000 * 4096,
  finalNormParams: 4096,
  params: 6_738_415_616,
}

export const a100_80: Gpu = {
  name: 'A100-80GB',
  aliases: [],
  memoryBytes: 80 * GIB,
  bf16Tflops: 312,
  bandwidthGBps: 2039,
  bf16: true,
  computeCapability: '8.0',
}

export const t4: Gpu = {
  name: 'T4',
  aliases: [],
  memoryBytes: 16 * GIB,
  bf16Tflops: 0,
  bandwidthGBps: 320,
  bf16: false,
  computeCapability: '7.5',
}

/** The seed's case: Phi-3-mini-128k, KAITO's qlora defaults, A100-80GB. */
export const seedInput: PlanInput = {
  model: phi3Mini,
  phase: 'train',
  method: 'qlora',
  dtype: 'bf16',
  quant: 'nf4',
  doubleQuant: true,
  rank: 8,
  alpha: 8,
  // KAITO's qlora-params template: lora_dropout 0.0.
  loraDropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj'],
  batch: 1,
  seq: 2048,
  gradientCheckpointing: true,
  attention: 'sdpa',
  optimizer: 'adamw',
  gpu: a100_80,
  gpus: 1,
  parallelism: 'ddp',
  device: 'cuda',
  expandableSegments: true,
}

/** LoRA bf16 without quantization or checkpointing: the seed's "LoRA exceeds 80 GB" case. */
export const seedLora: PlanInput = { ...seedInput, method: 'lora', quant: 'none', doubleQuant: false, gradientCheckpointing: false, attention: 'eager' }
