/**
 * Base-model weights on one device: 16/32-bit, LLM.int8, or 4-bit NF4/FP4 with and without
 * double quantization, with the modules bitsandbytes leaves unquantized.
 */
import { BYTES_PER_ELEMENT, type Dtype, type Quant } from '../units.ts'
import type { Method, Phase } from './types.ts'
import type { ModelShape } from './shape.ts'

// QLoRA paper (Dettmers et al. 2023) §3: 4-bit codes plus one fp32 absmax per block of 64 = 4 + 32/64 bits.
export const NF4_BITS_PER_PARAM = 4 + 32 / 64
// QLoRA paper §3 "Double Quantization": absmax as 8-bit in blocks of 256 plus one fp32 per 256 blocks = 4 + 8/64 + 32/(64*256).
export const NF4_DOUBLE_QUANT_BITS_PER_PARAM = 4 + 8 / 64 + 32 / (64 * 256)
// bitsandbytes Int8Params: int8 weight (CB) plus one fp32 absmax per output row (SCB).
export const INT8_BYTES_PER_PARAM = 1
export const INT8_SCALE_BYTES_PER_ROW = 4
// peft prepare_model_for_kbit_training: "cast all non INT8 parameters to fp32" (src/peft/utils/other.py).
export const KBIT_PREPARED_BYTES_PER_PARAM = 4

export type WeightOptions = {
  method: Method
  dtype: Dtype
  quant: Quant
  doubleQuant: boolean
  phase: Phase
  /** peft's prepare_model_for_kbit_training runs before training (its fp32 casts); true on Headroom's path. */
  kbitPrepared?: boolean
}

export type WeightTerms = {
  /** Resident weights, bytes. */
  weightBytes: number
  /** Quantized Linear weights, bytes (what FSDP shards as packed storage). */
  quantizedBytes: number
  /** Extra bytes alive while bitsandbytes quantizes one 16-bit weight on the device during loading. */
  loadTransientBytes: number
}

/** Bytes per quantized Linear weight scalar (excluding per-row scales). */
export function quantBytesPerParam(quant: Quant, doubleQuant: boolean, dtype: Dtype): number {
  if (quant === 'int8') return INT8_BYTES_PER_PARAM
  if (quant === 'nf4' || quant === 'fp4') return (doubleQuant ? NF4_DOUBLE_QUANT_BITS_PER_PARAM : NF4_BITS_PER_PARAM) / 8
  return BYTES_PER_ELEMENT[dtype]
}

/**
 * The base model's weights; quantized models keep embeddings, lm_head, norms and biases in
 * 16-bit when loaded and in fp32 once peft prepares them for k-bit training (phase train).
 * @example weightTerms(shape, { method: 'qlora', dtype: 'bf16', quant: 'nf4', doubleQuant: true, phase: 'load' })
 */
export function weightTerms(shape: ModelShape, o: WeightOptions): WeightTerms {
  const arch = shape.arch
  const dtypeBytes = BYTES_PER_ELEMENT[o.dtype]
  if (o.quant === 'none') {
    return { weightBytes: arch.params * dtypeBytes, quantizedBytes: 0, loadTransientBytes: 0 }
  }
  const L = arch.numLayers
  let quantizedBytes = L * shape.linearWeightParamsPerLayer * quantBytesPerParam(o.quant, o.doubleQuant, o.dtype)
  if (o.quant === 'int8') quantizedBytes += L * shape.linearOutRowsPerLayer * INT8_SCALE_BYTES_PER_ROW
  const prepared = o.phase === 'train' && (o.kbitPrepared ?? true)
  const unquantizedBytes = shape.unquantizedParams * (prepared ? KBIT_PREPARED_BYTES_PER_PARAM : dtypeBytes)
  // transformers moves each checkpoint tensor to the device in torch_dtype, then bitsandbytes quantizes it there.
  const loadTransientBytes = o.phase === 'load' ? shape.largestLinearParams * dtypeBytes : 0
  return { weightBytes: quantizedBytes + unquantizedBytes, quantizedBytes, loadTransientBytes }
}
