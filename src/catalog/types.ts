/**
 * The shapes the catalog hands to the planner. Dimensions are element counts; parameter
 * counts are numbers of scalars; memory is bytes.
 */

/** The Hugging Face `model_type` values Headroom understands. */
export type ModelType = 'llama' | 'mistral' | 'phi3' | 'qwen2' | 'gemma2'

/** One nn.Linear inside a decoder block, with the module name peft matches against. */
export type LinearModule = {
  /** Leaf module name as peft's target_modules sees it, e.g. `qkv_proj`, `down_proj`. */
  name: string
  inFeatures: number
  outFeatures: number
  bias: boolean
}

/** A decoder-only transformer, described well enough to count every parameter and activation. */
export type ModelArch = {
  /** Catalog id, e.g. `phi-3-mini-128k-instruct`; for a loaded config.json, its path or hub id. */
  name: string
  /** Hugging Face hub id, e.g. `microsoft/Phi-3-mini-128k-instruct`. */
  hfId?: string
  modelType: ModelType
  hiddenSize: number
  intermediateSize: number
  numLayers: number
  numAttentionHeads: number
  numKeyValueHeads: number
  headDim: number
  vocabSize: number
  maxPositionEmbeddings: number
  tieWordEmbeddings: boolean
  /** Sliding-window attention span in tokens, when the architecture uses one. */
  slidingWindow?: number
  /** The Linear modules of one decoder block, in forward order. */
  layerLinears: LinearModule[]
  /** Non-Linear parameters in one decoder block (RMSNorm weights), scalars. */
  layerNormParams: number
  /** Input embedding parameters (vocabSize x hiddenSize), scalars. */
  embedParams: number
  /** Output head parameters; 0 when tied to the embedding. */
  lmHeadParams: number
  /** Final norm parameters, scalars. */
  finalNormParams: number
  /** Total parameters; equals the published count for catalog models. */
  params: number
}

/** A GPU model. */
export type Gpu = {
  /** Canonical name, e.g. `A100-80GB`. */
  name: string
  /** Other spellings accepted on the command line, e.g. `a100`, `NVIDIA A100 80GB`. */
  aliases: string[]
  /** Memory as the vendor sells it, bytes (80 GB cards report ~79.2 GiB usable). */
  memoryBytes: number
  /** Dense bf16 tensor throughput, TFLOP/s (0 when the GPU has no bf16). */
  bf16Tflops: number
  /** Memory bandwidth, GB/s. */
  bandwidthGBps: number
  /** Native bfloat16 support (compute capability >= 8.0). */
  bf16: boolean
  computeCapability: string
}

/** What a job runs on: a GPU model and how many of them (from a name or an Azure SKU). */
export type Hardware = {
  gpu: Gpu
  count: number
  /** The cloud instance type when the user named one, e.g. `Standard_NC24ads_A100_v4`. */
  sku?: string
}
