/**
 * Inference memory (`plan --phase inference`): the peak of transformers' `generate` for
 * `batch` sequences of `seq` tokens, as Headroom's serving engine runs it. The peak is the
 * prefill of the whole prompt: weights + adapters + the KV cache of every layer + one decoder
 * block's transient tensors + the last position's logits + (CUDA) context and allocator slack.
 * Decoding afterwards adds one token per step to a cache that is already counted.
 * docs/memory-model.md ("Inference") cites each term.
 */
import { BYTES_PER_ELEMENT, type Dtype } from '../units.ts'
import type { ModelArch } from '../catalog/types.ts'
import type { Breakdown, PlanInput } from './types.ts'
import { ADAPTER_BYTES_PER_PARAM, loraParams } from './adapters.ts'
import { overheadTerms, usableMemoryBytes } from './overhead.ts'
import { modelShape, type ModelShape } from './shape.ts'
import { matchTargets, type TargetMatch } from './targets.ts'
import { weightTerms } from './weights.ts'
import { largestFitting } from './fit.ts'

// generation/utils.py (transformers 5.17) _sample: next_token_logits = outputs.logits[:, -1].to(copy=True,
// dtype=torch.float32); logits processors and softmax (sampling) make fp32 [b, V] tensors of the same size.
// Units: bytes per vocabulary entry per sequence beyond the model's own [b, 1, V] output in the compute dtype.
export const GENERATE_FP32_LOGITS_COPIES = 2
// transformers eager_attention_forward: softmax(attn_weights, dtype=torch.float32) beside the scores in the
// compute dtype. Units: fp32 bytes per (head x query x key).
const EAGER_SOFTMAX_BYTES = 4
/** The most concurrent sequences maxConcurrentSequences searches up to. */
export const MAX_CONCURRENT_SEQUENCES = 65_536

/**
 * KV cache bytes per token: K and V for every layer, kv_heads x head_dim elements each
 * (cache_utils.py DynamicLayer.update: torch.cat of [b, kv_heads, s, head_dim] per layer; the
 * same count as KAITO's nodesestimator bytesPerToken and vLLM's per-token block size).
 * @example kvCacheBytesPerToken(phi3mini, 'bf16') // 2 x 32 x 32 x 96 x 2 = 393,216
 */
export function kvCacheBytesPerToken(arch: ModelArch, dtype: Dtype): number {
  return 2 * arch.numLayers * arch.numKeyValueHeads * arch.headDim * BYTES_PER_ELEMENT[dtype]
}

/**
 * Tokens per sequence the cache holds at the prefill peak. transformers 5.17's
 * DynamicSlidingWindowLayer keeps the last `sliding_window - 1` tokens as a *view* of the full
 * prefill tensor (full_key_states[:, :, -w+1:, :]), so the prompt's whole storage stays alive
 * until the first decode step: a sliding window caps nothing at the peak of a prefill of
 * `seq` tokens (measured: a 64-token prompt with window 16 keeps 64 tokens of storage). vLLM's
 * paged cache does cap sliding layers at the window (it frees blocks that leave it).
 * @example kvCacheTokens(mistral, 8192) // 8192, even with sliding_window 4096
 */
export function kvCacheTokens(_arch: ModelArch, seq: number): number {
  return seq
}

/**
 * The KV cache of `batch` sequences of `seq` tokens, bytes.
 * @example kvCacheBytes(phi3mini, 'bf16', 1, 4096) // 1,610,612,736
 */
export function kvCacheBytes(arch: ModelArch, dtype: Dtype, batch: number, seq: number): number {
  return batch * kvCacheTokens(arch, seq) * kvCacheBytesPerToken(arch, dtype)
}

/** One decoder block's prefill transients, as coefficients of tokens (b*s) and of b*s^2, plus a constant. */
export type PrefillLayer = {
  /** Bytes per token of the hidden-state stream alive through the block (4h). */
  streamBytesPerToken: number
  /** Bytes per token of attention's projections and outputs. */
  attentionBytesPerToken: number
  /** Bytes per (token x sequence length) of attention: eager's scores and fp32 softmax over every head. */
  attentionBytesPerTokenSeq: number
  /** Bytes per token of the gated MLP's intermediates. */
  mlpBytesPerToken: number
  /** Bytes per (token x sequence length) held through the whole forward: eager's 4D additive mask. */
  maskBytesPerTokenSeq: number
  /** A dequantized copy of the largest 4-bit weight (bitsandbytes prefill matmul), bytes. */
  dequantBytes: number
  /** Bytes per token of that Linear's output, alive beside its dequantized weight. */
  dequantOutputBytesPerToken: number
}

// peft lora.Linear.forward: result = base_layer(x); result = result + lora_B(lora_A(dropout(x))) * scaling. While the
// sum is formed, the base output, lora_B's output and the scaled copy are alive: 3 outputs where a plain Linear has 1.
// Units: output-sized tensors alive at an adapted Linear's peak.
export const LORA_OUTPUT_COPIES = 3

/**
 * The peak of one decoder block during a no-grad prefill, in the compute dtype S. Alive together
 * (measured with MemTracker on the tiny Phi-3, transformers 5.17, module by module):
 * - the stream, 4h: the embedding output (the model's forward keeps `inputs_embeds` referenced
 *   through the layer loop), the block's input (the loop's `hidden_states`), the residual after
 *   attention, and the normed input of the MLP;
 * - the larger of attention: the q/k/v projections (q + 2kv, freed once the cache holds k and v),
 *   the rotated q and k (q + kv), the attention output (q) and o_proj's output (h);
 *   and the gated MLP: fused gate_up keeps [2I] alive through its chunks, act(gate) [I] and the
 *   product [I] (4I); unfused gate and up are freed as consumed, leaving act, up and the product (3I).
 * A Linear that carries a served LoRA adapter holds LORA_OUTPUT_COPIES of its output at once
 * (fused gate_up: 3 x 2I = 6I, above the 4I of the plain MLP).
 * 4-bit weights: bitsandbytes dequantizes the weight for a multi-token matmul; the copy of the
 * largest Linear and that Linear's output are a third moment beside attention and the MLP.
 * Eager attention adds heads x s^2 scores in S and their fp32 softmax (S + 4 B per element)
 * while attention runs, not during the MLP: the block's peak is the larger of the two phases.
 * The block's new K and V are the cache's and are counted there.
 * @example prefillLayer(modelShape(arch), 'bf16', 'sdpa', false, new Set(['qkv_proj'])).mlpBytesPerToken
 */
export function prefillLayer(
  shape: ModelShape,
  dtype: Dtype,
  attention: PlanInput['attention'],
  fourBit: boolean,
  adapted: ReadonlySet<string> = new Set(),
): PrefillLayer {
  const arch = shape.arch
  const S = BYTES_PER_ELEMENT[dtype]
  const h = arch.hiddenSize
  const q = shape.queryDim
  const kv = shape.keyValueDim
  const I = arch.intermediateSize
  // Output copies alive while the Linears of a role run: LORA_OUTPUT_COPIES when any of them is adapted.
  const copies = (role: string) => (shape.linears.some((m) => m.role === role && adapted.has(m.name)) ? LORA_OUTPUT_COPIES : 1)
  const fusedMlp = arch.layerLinears.some((m) => m.name === 'gate_up_proj')
  // q, k and v projections (fused or one after another; an adapted one holds its extra copies of the last output).
  const c = copies('attn-in')
  const projections = shape.fusedQkv ? (q + 2 * kv) * c : Math.max(q * c, q + kv * c, q + kv + kv * c)
  const attn = Math.max(projections, q + 2 * kv + (q + kv) + q + h * copies('attn-out'))
  const mlpIn = fusedMlp ? 2 * I * copies('mlp-in') : I + I * copies('mlp-in')
  const mlpCore = fusedMlp ? 4 * I : 3 * I
  const mlpOut = (fusedMlp ? 3 * I : I) + h * copies('mlp-out')
  const mlp = Math.max(mlpIn, mlpCore, mlpOut)
  const eager = attention === 'eager'
  return {
    streamBytesPerToken: 4 * h * S,
    attentionBytesPerToken: attn * S,
    // Scores in S plus the fp32 softmax of them, per head; the mask-added copy replaces the scores.
    attentionBytesPerTokenSeq: eager ? arch.numAttentionHeads * (S + EAGER_SOFTMAX_BYTES) : 0,
    mlpBytesPerToken: mlp * S,
    // sdpa and flash take is_causal without a mask when no sequence is padded (equal-length prompts).
    maskBytesPerTokenSeq: eager ? S : 0,
    dequantBytes: fourBit ? shape.largestLinearParams * S : 0,
    dequantOutputBytesPerToken: fourBit ? largestOutFeatures(shape) * S : 0,
  }
}

function largestOutFeatures(shape: ModelShape): number {
  let best = shape.linears[0]
  for (const m of shape.linears) if (m.inFeatures * m.outFeatures > best.inFeatures * best.outFeatures) best = m
  return best.outFeatures
}

/**
 * Activations of the largest prefill (batch x seq tokens through one block, plus the mask),
 * bytes.
 * @example prefillActivationBytes(prefillLayer(shape, 'bf16', 'sdpa', false), 1, 4096)
 */
export function prefillActivationBytes(layer: PrefillLayer, batch: number, seq: number): number {
  const tokens = batch * seq
  const attention = tokens * layer.attentionBytesPerToken + tokens * seq * layer.attentionBytesPerTokenSeq
  const mlp = tokens * layer.mlpBytesPerToken
  // The dequantized weight lives only through its own matmul, beside that matmul's output: a third moment.
  const dequant = layer.dequantBytes > 0 ? tokens * layer.dequantOutputBytesPerToken + layer.dequantBytes : 0
  return tokens * layer.streamBytesPerToken + Math.max(attention, mlp, dequant) + tokens * seq * layer.maskBytesPerTokenSeq
}

/**
 * Logits of generate's prefill: only the last position (generate sets logits_to_keep=1 when the
 * model's forward accepts it: generation/utils.py, transformers 5.17), [b, 1, V] in the compute
 * dtype, then fp32 copies for the logits processors and sampling.
 * @example generateLogitsBytes(32064, 'bf16', 1) // 32064 x (2 + 8) = 320,640
 */
export function generateLogitsBytes(vocabSize: number, dtype: Dtype, batch: number): number {
  return batch * vocabSize * (BYTES_PER_ELEMENT[dtype] + GENERATE_FP32_LOGITS_COPIES * 4)
}

export type InferenceTerms = {
  shape: ModelShape
  match: TargetMatch
  /** LoRA parameters of the served adapter (0 for a fully fine-tuned or base model). */
  trainableParams: number
  /** The KV cache at the peak, bytes (part of breakdown.activations). */
  kvCacheBytes: number
  /** One block's prefill transients, bytes (the rest of breakdown.activations). */
  prefillBytes: number
  breakdown: Breakdown
  peakBytes: number
  peakAllocatedBytes: number
  moment: 'prefill'
}

/** An inference plan with everything but batch and sequence length fixed. */
export type PreparedInference = { at(batch: number, seq: number): InferenceTerms }

/**
 * Does the batch- and length-independent work once. Weights as loaded for serving: 16/32-bit,
 * or quantized with bitsandbytes' unquantized modules left in the compute dtype (no peft k-bit
 * fp32 casts: those are for training). `lora`/`qlora` serve an unmerged peft adapter, whose
 * weights peft loads in fp32 (PeftModel.from_pretrained autocast_adapter_dtype=True); `full`
 * serves the model alone.
 * @example prepareInference(input).at(8, 2048).peakBytes
 */
export function prepareInference(input: PlanInput): PreparedInference {
  const shape = modelShape(input.model)
  const arch = input.model
  const full = input.method === 'full'
  const match = matchTargets(shape, input.targets)
  const adapterParams = full ? 0 : loraParams(shape, match, input.rank)
  // A quantized model served alone (method full, quant nf4) keeps its quantized weights.
  const quant = input.quant
  const w = weightTerms(shape, { method: input.method, dtype: input.dtype, quant, doubleQuant: input.doubleQuant, phase: 'inference' })
  const adapterBytes = adapterParams * ADAPTER_BYTES_PER_PARAM
  // Only 4-bit matmuls dequantize a whole weight; LLM.int8 multiplies in int8 (its small input copies are not modelled).
  const fourBit = quant === 'nf4' || quant === 'fp4'
  const layer = prefillLayer(shape, input.dtype, input.attention, fourBit, full ? new Set() : match.moduleNames)
  return {
    at(batch: number, seq: number): InferenceTerms {
      const kv = kvCacheBytes(arch, input.dtype, batch, seq)
      const prefill = prefillActivationBytes(layer, batch, seq)
      const logits = generateLogitsBytes(arch.vocabSize, input.dtype, batch)
      // The prefill's block transients are what the caching allocator churns; the cache grows and stays.
      const o = overheadTerms(input.device, input.expandableSegments, prefill, true, input.overhead)
      const breakdown: Breakdown = {
        weights: Math.round(w.weightBytes),
        adapters: Math.round(adapterBytes),
        gradients: 0,
        optimizer: 0,
        activations: Math.round(kv + prefill),
        logits: Math.round(logits),
        overhead: Math.round(o.contextBytes + o.slackBytes + o.workspaceBytes),
      }
      const b = breakdown
      const peakBytes = b.weights + b.adapters + b.activations + b.logits + b.overhead
      return {
        shape,
        match,
        trainableParams: adapterParams,
        kvCacheBytes: Math.round(kv),
        prefillBytes: Math.round(prefill),
        breakdown,
        peakBytes,
        peakAllocatedBytes: peakBytes - Math.round(o.contextBytes + o.slackBytes),
        moment: 'prefill',
      }
    },
  }
}

/**
 * Every term of the inference peak for input's batch and seq.
 * @example inferenceTerms({ ...input, phase: 'inference' }).kvCacheBytes
 */
export function inferenceTerms(input: PlanInput): InferenceTerms {
  return prepareInference(input).at(input.batch, input.seq)
}

function budgetOf(input: PlanInput, budgetBytes?: number): number | null {
  if (budgetBytes !== undefined) return budgetBytes
  return input.gpu ? usableMemoryBytes(input.gpu) : null
}

/**
 * Longest sequence (prompt + generated tokens, capped at max_position_embeddings) whose
 * inference peak at input.batch fits; 0 when none does, null without a GPU or budget.
 * @example inferenceMaxSeqLen({ ...input, phase: 'inference', batch: 8 })
 */
export function inferenceMaxSeqLen(input: PlanInput, budgetBytes?: number): number | null {
  const budget = budgetOf(input, budgetBytes)
  if (budget === null) return null
  const plan = prepareInference(input)
  return largestFitting(input.model.maxPositionEmbeddings, (seq) => plan.at(input.batch, seq).peakBytes <= budget)
}

/**
 * The most sequences of input.seq tokens one device holds at once, when they are prefilled
 * together as one generate batch (up to MAX_CONCURRENT_SEQUENCES); 0 when one does not fit,
 * null without a GPU or budget. An engine that prefills in chunks (vLLM) bounds activations by
 * its token budget instead and holds a few more: the KV cache is what limits both.
 * @example maxConcurrentSequences({ ...input, phase: 'inference', seq: 4096 })
 */
export function maxConcurrentSequences(input: PlanInput, budgetBytes?: number): number | null {
  const budget = budgetOf(input, budgetBytes)
  if (budget === null) return null
  const plan = prepareInference(input)
  return largestFitting(MAX_CONCURRENT_SEQUENCES, (batch) => plan.at(batch, input.seq).peakBytes <= budget)
}
