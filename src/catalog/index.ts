/**
 * The catalog's public surface: model architectures (catalog, config.json, hub), GPUs and
 * cloud instance types.
 * @module
 */
export { archFromHfConfig, linearParams, SUPPORTED_MODEL_TYPES } from './hf-config.ts'
export type { HfConfig } from './hf-config.ts'
export { findModelSync, listModels } from './models.ts'
export { loadModel } from './load.ts'
export type { LoadModelOptions } from './load.ts'
export { findGpu, listGpus } from './gpus.ts'
export { findHardware } from './hardware.ts'
export { SKUS } from './skus.ts'
export type { Sku } from './skus.ts'
export { linearModuleNames } from './module-names.ts'
export type { Gpu, Hardware, LinearModule, ModelArch, ModelType } from './types.ts'
export { defaultLoraTargets, KAITO_PHI3_TARGETS, PEFT_DEFAULT_TARGETS } from './lora-defaults.ts'
