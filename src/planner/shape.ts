/**
 * The per-architecture sums every planner term reuses, computed once per ModelArch and
 * cached, so that planning a candidate is arithmetic only (the fit search plans tens of
 * thousands of them).
 */
import type { LinearModule, ModelArch } from '../catalog/types.ts'

/** Where a Linear's input comes from inside a decoder block; decides which saved tensor it shares. */
export type LinearRole = 'attn-in' | 'attn-out' | 'mlp-in' | 'mlp-out'

export type RoledLinear = LinearModule & { role: LinearRole }

export type ModelShape = {
  arch: ModelArch
  linears: RoledLinear[]
  /** Weight scalars of one block's Linears (what bitsandbytes quantizes), elements. */
  linearWeightParamsPerLayer: number
  /** Bias scalars of one block's Linears (left in 16-bit by bitsandbytes), elements. */
  linearBiasParamsPerLayer: number
  /** Output rows of one block's Linears (LLM.int8 keeps one fp32 scale per row). */
  linearOutRowsPerLayer: number
  /** Weight scalars of the largest single Linear (the one dequantized or gathered at a time). */
  largestLinearParams: number
  /** Parameters left unquantized: embeddings, lm_head, norms, biases, elements. */
  unquantizedParams: number
  /** Largest unquantized tensor (embedding or lm_head), elements. */
  largestUnquantizedParams: number
  /** Parameters of one whole decoder block, elements. */
  layerParams: number
  normsPerLayer: number
  queryDim: number
  keyValueDim: number
  /** q, k and v come out of one Linear whose output the attention keeps alive through views (Phi-3). */
  fusedQkv: boolean
}

const ROLE_BY_NAME: Record<string, LinearRole> = {
  q_proj: 'attn-in', k_proj: 'attn-in', v_proj: 'attn-in', qkv_proj: 'attn-in', query_key_value: 'attn-in', W_pack: 'attn-in',
  o_proj: 'attn-out', out_proj: 'attn-out', dense: 'attn-out',
  gate_proj: 'mlp-in', up_proj: 'mlp-in', gate_up_proj: 'mlp-in', w1: 'mlp-in', w3: 'mlp-in', fc1: 'mlp-in',
  down_proj: 'mlp-out', w2: 'mlp-out', fc2: 'mlp-out',
}

const cache = new WeakMap<ModelArch, ModelShape>()

/** The cached aggregates of one architecture. @example modelShape(arch).queryDim */
export function modelShape(arch: ModelArch): ModelShape {
  let shape = cache.get(arch)
  if (!shape) {
    shape = computeShape(arch)
    cache.set(arch, shape)
  }
  return shape
}

function roleOf(m: LinearModule, arch: ModelArch, index: number, all: LinearModule[]): LinearRole {
  const known = ROLE_BY_NAME[m.name]
  if (known) return known
  // Unknown names: an input of the MLP width feeds down; the first Linear after attention maps back to hidden.
  if (m.inFeatures === arch.intermediateSize) return 'mlp-out'
  const firstToHidden = all.findIndex((x) => x.outFeatures === arch.hiddenSize)
  if (index < firstToHidden) return 'attn-in'
  if (index === firstToHidden) return 'attn-out'
  return 'mlp-in'
}

function computeShape(arch: ModelArch): ModelShape {
  const linears = arch.layerLinears.map((m, i, all) => ({ ...m, role: roleOf(m, arch, i, all) }))
  let weights = 0
  let biases = 0
  let rows = 0
  let largest = 0
  for (const m of linears) {
    weights += m.inFeatures * m.outFeatures
    biases += m.bias ? m.outFeatures : 0
    rows += m.outFeatures
    largest = Math.max(largest, m.inFeatures * m.outFeatures)
  }
  const L = arch.numLayers
  const unquantizedParams =
    arch.embedParams + arch.lmHeadParams + arch.finalNormParams + L * (arch.layerNormParams + biases)
  return {
    arch,
    linears,
    linearWeightParamsPerLayer: weights,
    linearBiasParamsPerLayer: biases,
    linearOutRowsPerLayer: rows,
    largestLinearParams: largest,
    unquantizedParams,
    largestUnquantizedParams: Math.max(arch.embedParams, arch.lmHeadParams),
    layerParams: weights + biases + arch.layerNormParams,
    normsPerLayer: Math.max(1, Math.round(arch.layerNormParams / arch.hiddenSize)),
    queryDim: arch.numAttentionHeads * arch.headDim,
    keyValueDim: arch.numKeyValueHeads * arch.headDim,
    fusedQkv: linears.some((m) => m.name === 'qkv_proj' || m.name === 'query_key_value' || m.name === 'W_pack'),
  }
}
