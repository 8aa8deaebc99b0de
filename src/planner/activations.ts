/**
 * Activations saved for backward, counted tensor by tensor for the Hugging Face decoder block
 * (RMSNorm, rotary attention, gated MLP) as transformers + peft + bitsandbytes run it. The
 * structure follows Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
 * Transformer Models"): a per-token term in s*b*h and an eager-attention term in a*s^2*b;
 * the constants are re-derived per tensor because Llama-style blocks differ from GPT's 34*sbh.
 */
import { BYTES_PER_ELEMENT, type Dtype, type Quant } from '../units.ts'
import type { Attention, Device, Method } from './types.ts'
import { ADAPTER_BYTES_PER_PARAM } from './adapters.ts'
import type { LinearRole, ModelShape } from './shape.ts'
import type { TargetMatch } from './targets.ts'

// transformers RMSNorm: hidden_states.to(torch.float32) is saved by pow/mul for backward.
const NORM_INTERNAL_BYTES = 4
// transformers eager_attention_forward: softmax(..., dtype=torch.float32) saves its fp32 output.
const SOFTMAX_BYTES = 4
// sdpa / flash kernels save one fp32 logsumexp per head per token.
const LOGSUMEXP_BYTES = 4
// One block's backward rises above its saved tensors by the gated MLP's gradient buffers: grads of gate, up and act(gate),
// alive together, in the stream dtype. Measured with MemTracker (live tensor bytes): module backward peaks 4,608 B/token
// on tiny Llama = 3 x intermediate 384 x 4 B, 6,144 on tiny Phi-3 (fused gate_up: 2 x 768 x 4 B), and at Phi-3-mini's
// real widths with a real bitsandbytes 4-bit block (docs/accuracy.md, "QLoRA at real widths"). Autograd allocates the
// same buffers on every device, so CUDA uses it too (it used to take a whole block's saved tensors, a judgement).
// Units: intermediate-size tensors per token.
export const BACKWARD_MLP_GRADS = 3

const NONE: ReadonlySet<string> = new Set()

/**
 * Bytes per element of the mask a LoRA dropout keeps for backward, by device. torch 2.13
 * aten/src/ATen/native/Dropout.cpp: `dropout` takes the fused `native_dropout` only when
 * is_fused_kernel_acceptable (CUDA/XPU/lazy input), which saves a bool mask (1 B per element); on
 * CPU it runs `_dropout_impl`, input * (bernoulli(1-p) / (1-p)), whose mul saves the scaled noise in
 * the input's dtype. peft casts the input to lora_A's dtype (fp32) before dropout, so CPU keeps
 * 4 B per element: measured with MemTracker at Phi-3-mini's widths (docs/accuracy.md, "LoRA dropout").
 */
export function dropoutMaskBytesPerElement(device: Device, adapterBytes: number = ADAPTER_BYTES_PER_PARAM): number {
  return device === 'cuda' ? 1 : adapterBytes
}

export type ActivationOptions = {
  method: Method
  dtype: Dtype
  quant: Quant
  /** peft prepared the quantized model for k-bit training (its fp32 casts reach the hidden states). */
  kbitPrepared: boolean
  attention: Attention
  gradientCheckpointing: boolean
  rank: number
  /** The bitsandbytes release keeps each 4-bit matmul's input for backward (see QUANT_SAVES_INPUT). */
  quantSavesInput: boolean
  /** peft LoraConfig.lora_dropout, 0 <= p < 1; only whether it is above 0 changes memory. */
  loraDropout: number
  /** Where the step runs: the dropout mask's size differs (dropoutMaskBytesPerElement). */
  device: Device
  /** Bytes per element of the LoRA weights, and so of the adapter branch's input (PlanPath.adapterBytesPerParam). */
  adapterBytes?: number
}

/** Saved bytes of one decoder block, as coefficients of tokens (b*s) and of b*s^2. */
export type LayerActivations = {
  /** Bytes per token of one block's saved tensors. */
  bytesPerToken: number
  /** Bytes per (token x sequence length) of one block: eager attention's a*s^2 probabilities. */
  bytesPerTokenSeq: number
  /** Bytes per token a checkpointed block keeps: its input hidden states. */
  checkpointBytesPerToken: number
  /** Bytes per (token x sequence) held once per forward: eager's 4D causal mask. */
  maskBytesPerTokenSeq: number
  /** A dequantized 16-bit copy of the largest 4-bit weight, alive one at a time, bytes. */
  dequantBytes: number
  /** Bytes per token one block's backward needs above its saved tensors (gradient buffers). */
  backwardBytesPerToken: number
  /** Bytes per (token x sequence length) of the same: eager attention's probability gradients. */
  backwardBytesPerTokenSeq: number
  /**
   * Bytes per token of the gated MLP's own saved tensors (gate, up, act(gate)): autograd frees them when the MLP's
   * backward has run, before attention's backward allocates the softmax gradient.
   */
  mlpSavedBytesPerToken: number
  /**
   * Bytes per token of a recomputed block that are its checkpointed input itself, not a new tensor: the first
   * RMSNorm's hidden_states.to(torch.float32) returns its input unchanged when the stream is already fp32.
   */
  checkpointSharedBytesPerToken: number
  /**
   * Bytes per token the first block keeps less when nothing before it needs a gradient (no checkpointing, so no
   * enable_input_require_grads): its first adapted input does not require grad, so its dropouts keep no mask.
   */
  firstBlockNoMaskBytesPerToken: number
  /**
   * Bytes per token of a checkpointed block while its recompute runs the gated MLP's input Linear with a LoRA
   * adapter (RECOMPUTE_LORA_SUM): what the block has saved by then (less the checkpoint-shared norm input), the
   * decoder layer's residual and normed input where they are tensors of their own, and the adapted Linear's output
   * three times over. 0 when no MLP input Linear is adapted.
   */
  recomputePeakBytesPerToken: number
  /**
   * Bytes per token the final RMSNorm keeps until the loss's backward has run: its fp32 input, saved for backward
   * (its output, the lm_head's input, is not kept: the lm_head is frozen). Alive at the loss, freed before any block's
   * backward.
   */
  finalNormBytesPerToken: number
  /** Bytes per token of the hidden-state gradient alive through the top block's backward (GRAD_STREAM_BYTES_PER_ELEMENT). */
  gradStreamBytesPerToken: number
  /**
   * Bytes per token of one block's inputs that its 4-bit matmuls keep (quantSavesInput; 0 otherwise): one per
   * Linear role, the input itself when the stream is the compute dtype, else its cast copy. Part of bytesPerToken;
   * named apart because the older bitsandbytes kept them as a ctx attribute, which backward does not free
   * (PlanPath.keepsPreviousStepGraph).
   */
  quantInputBytesPerToken: number
  /**
   * Bytes per token the MLP's output Linear (down_proj) keeps for backward (its input, LoRA cast and lora_A output):
   * freed when that Linear's backward has run, the first thing a block's backward does, before the MLP's gradient
   * buffers exist.
   */
  mlpOutSavedBytesPerToken: number
  /**
   * Bytes per token of the gradient of the MLP output Linear's input while that Linear's backward runs: the adapter
   * branch's (adapter dtype) and the sum with the base branch's (stream dtype), intermediate-wide each.
   */
  mlpOutGradBytesPerToken: number
  /** The MLP output Linear's dequantized 16-bit weight (4-bit base), alive during that Linear's backward, bytes. */
  mlpOutDequantBytes: number
  /** Bytes per token of the gradient of the MLP input Linears' outputs (gate and up: 2 x intermediate), stream dtype. */
  mlpInGradBytesPerToken: number
  /** The largest MLP input Linear's dequantized 16-bit weight (4-bit base), bytes. */
  mlpInDequantBytes: number
  /** The largest attention Linear's dequantized 16-bit weight (4-bit base), bytes. */
  attnDequantBytes: number
}

/**
 * peft lora.Linear.forward (0.21): `result = self.base_layer(x)` then `result = result + lora_B(lora_A(dropout(
 * x.to(lora_A.weight.dtype)))) * scaling`: at the multiply the base output (stream dtype), lora_B's output and its
 * scaled copy (both in the adapter dtype) are alive together, out_features wide each, before the sum replaces
 * them. In a checkpointed block's recompute this happens at the MLP's input Linear, before the MLP's saved
 * tensors exist but with attention's saved again and the decoder layer's residual and post-attention norm output
 * (2 x hidden, stream dtype) alive as locals. Measured at Phi-3-mini's widths (bench/block_peak.py, sdpa, bf16,
 * LoRA all-linear r8, live tensor bytes): the block-backward peak is the multiply in gate_up_proj's recompute,
 * 163,840 B/token of transient = 16,384 x (2 + 2 x 4), 274,664 B/token of block in all, above the MLP phase's
 * whole block + gradient buffers (229,632). The same rule gives tiny Phi-3 QLoRA's highest moment exactly (fp32
 * stream: the residual and the normed input are the saved norm and LoRA inputs themselves; 35,936 B/token x 512 =
 * docs/accuracy.md's 18.40 MB "recomputing gate_up_proj's LoRA sum"). docs/accuracy.md, "The checkpointed block's
 * backward at real widths".
 * Units: output-width tensors per token, in the adapter dtype.
 */
export const RECOMPUTE_LORA_SUM = 2

/**
 * Bytes per hidden element and token of the gradient entering the top block, alive through its whole backward
 * (recompute included): the final RMSNorm runs in fp32 (hidden_states.to(torch.float32)), so its backward leaves
 * fp32 gradients of its input. Measured with live tensor bytes at the block-backward peak: a bf16 stream keeps one
 * fp32 gradient and two bf16 ones (Phi-3-mini, bench/block_peak.py: 12,288 + 6,144 + 6,144 B/token = 8 x 3,072); an
 * fp32 stream (QLoRA, peft's k-bit preparation) keeps two fp32 ones, of the norm's mul and pow branches (tiny Phi-3,
 * bench/block_phases.py --method qlora --seq 512 --gc: 2 x 524,288 B = 8 x 256 x 512). Units: B per hidden element
 * per token, two fp32 hidden tensors in either case.
 */
export const GRAD_STREAM_BYTES_PER_ELEMENT = 2 * NORM_INTERNAL_BYTES

/**
 * Whether the frozen 4-bit Linears keep their input for backward, in the bitsandbytes Headroom pins (0.50.2): no,
 * on every device (8-bit ones do: see layerActivations). autograd/_functions.py MatMul4Bit.forward keeps ctx.tensors = (None, B): backward needs only
 * grad_output @ dequantize_4bit(B), whose dequantized weight is the transient `dequantBytes` below. Older releases
 * (the 2023 ones lit-gpt's published QLoRA rows ran) kept ctx.tensors = (A, B); a PlanPath can say so. Measured on CPU
 * at real widths (bench/qlora-cpu-measure.ts): QLoRA's saved tensors equal an fp32 LoRA's, per token, to the byte.
 */
export const QUANT_SAVES_INPUT = false

/** Bytes per element of the hidden states between blocks. */
export function streamBytes(o: Pick<ActivationOptions, 'dtype' | 'kbitPrepared'>): number {
  // peft casts the embedding and norms to fp32, and bitsandbytes returns out.to(inp_dtype): the stream becomes fp32.
  return o.kbitPrepared ? 4 : BYTES_PER_ELEMENT[o.dtype]
}

/**
 * One block's saved activations under these settings.
 * @example layerActivations(shape, match, { method: 'lora', dtype: 'bf16', quant: 'none', kbitPrepared: false, attention: 'eager', gradientCheckpointing: false, rank: 8, quantSavesInput: false, loraDropout: 0, device: 'cuda' })
 */
export function layerActivations(shape: ModelShape, match: TargetMatch, o: ActivationOptions): LayerActivations {
  const arch = shape.arch
  const h = arch.hiddenSize
  const S = streamBytes(o)
  const C = BYTES_PER_ELEMENT[o.dtype]
  const full = o.method === 'full'
  const quantized = o.quant !== 'none'
  const lora: ReadonlySet<string> = full ? NONE : match.moduleNames
  const q = shape.queryDim
  const kv = shape.keyValueDim
  const groups = arch.numAttentionHeads / Math.max(1, arch.numKeyValueHeads)

  let perToken = shape.normsPerLayer * h * NORM_INTERNAL_BYTES
  // Full fine-tuning: norm weights need their normalised input for the weight gradient.
  if (full) perToken += shape.normsPerLayer * h * S

  // Inputs of the block's Linears, by where they come from.
  const dims: Record<LinearRole, number> = { 'attn-in': h, 'attn-out': q, 'mlp-in': h, 'mlp-out': arch.intermediateSize }
  const A = o.adapterBytes ?? ADAPTER_BYTES_PER_PARAM
  const dropoutMask = o.loraDropout > 0 ? dropoutMaskBytesPerElement(o.device, A) : 0
  let firstBlockNoMask = 0
  let firstBlockRole: LinearRole | null = null
  const roleBytes: Record<LinearRole, number> = { 'attn-in': 0, 'attn-out': 0, 'mlp-in': 0, 'mlp-out': 0 }
  let mlpInputSaved = false
  let quantInputs = 0
  for (const role of ['attn-in', 'attn-out', 'mlp-in', 'mlp-out'] as const) {
    const d = dims[role]
    let shared = false
    let copies = 0
    let quantKeeps = false
    for (const m of shape.linears) {
      if (m.role !== role) continue
      // A trainable Linear keeps its input for the weight gradient (torch addmm backward).
      if (full) shared = true
      // bitsandbytes 0.50.2 MatMul8bitLt keeps A itself (ctx.tensors = (CAt, subA, A); CAt is None for a frozen
      // weight): the input, no copy.
      if (o.quant === 'int8') shared = true
      // Older bitsandbytes MatMul4Bit kept A = x.to(compute_dtype), a copy when the stream is not the compute dtype
      // (see QUANT_SAVES_INPUT).
      else if (quantized && o.quantSavesInput) {
        if (S === C) shared = true
        else {
          copies += C * d
          quantInputs += C * d
        }
        quantKeeps = true
      }
      if (lora.has(m.name)) {
        // peft lora.Linear.forward: lora_B(lora_A(dropout(x.to(lora_A.weight.dtype)))); lora_B keeps A's output.
        // Dropout 0 is nn.Identity: lora_A keeps the cast input (the stream itself when that is fp32). Above 0,
        // nn.Dropout makes a new fp32 tensor per module, which lora_A keeps, and keeps its own mask; the cast
        // copy is then kept by neither (the mask's mul needs only the noise), and the block's other
        // savers of x are counted by role above, so p changes nothing beyond p > 0.
        // (A: the adapter weights' bytes per element, the dtype x is cast to.)
        if (dropoutMask > 0) copies += (A + dropoutMask) * d
        else if (S === A) shared = true
        else copies += A * d
        copies += A * o.rank
        // The mul inside dropout saves its mask only for a gradient of its input; in block 0 the first adapted
        // input has no trainable parameter upstream. Measured: docs/accuracy.md, "LoRA dropout".
        if (firstBlockRole === null || firstBlockRole === role) {
          firstBlockRole = role
          firstBlockNoMask += dropoutMask * d
        }
      }
    }
    // flash_attention_2 returns [b, s, heads, d]; o_proj's input is a view of the kernel output saved below.
    const free = role === 'attn-out' && o.attention === 'flash'
    roleBytes[role] = (shared && !free ? S * d : 0) + copies
    // The Linears of one role read the same tensor: kept once when it is the input itself (cast copies are per Linear, above).
    if (quantKeeps && S === C) quantInputs += S * d
    if (role === 'mlp-in') mlpInputSaved = shared
    perToken += roleBytes[role]
  }

  // Attention core: rotated q and k are new tensors; v is a view of the fused qkv output on Phi-3.
  const vBytes = shape.fusedQkv ? (q + 2 * kv) * S : kv * S
  let perTokenSeq = 0
  let mask = 0
  if (o.attention === 'eager') {
    // eager repeats k and v to every head (repeat_kv) before the two matmuls that save them.
    const kSaved = groups > 1 ? q * S : kv * S
    const vSaved = groups > 1 ? q * S : vBytes
    perToken += q * S + kSaved + vSaved
    // Saved probabilities: fp32 softmax output, plus its cast to the query dtype when that differs.
    perTokenSeq = arch.numAttentionHeads * (SOFTMAX_BYTES + (S === SOFTMAX_BYTES ? 0 : S))
    // The 4D additive causal mask [b, 1, s, s] in the activations' dtype.
    mask = S
  } else {
    // sdpa (efficient/flash kernels) and flash_attention_2 save q, k, v, the output and a logsumexp.
    perToken += q * S + kv * S + vBytes + q * S + arch.numAttentionHeads * LOGSUMEXP_BYTES
  }

  // Gated MLP: act(gate) keeps gate, the product keeps up and act(gate) — 3 x intermediate either fused or not.
  perToken += 3 * arch.intermediateSize * S

  // The recompute's LoRA sum at the MLP's input Linears (RECOMPUTE_LORA_SUM), largest over them: the block saved up to
  // the MLP (its own saved tensors and down_proj's input not yet made), the layer's residual and normed input, the
  // outputs of MLP input Linears already run (gate, and act(gate) with it, when gate and up are apart), and the sum.
  // The residual is a new tensor unless the post-attention norm's fp32 input already is it (fp32 stream); the normed
  // input is one unless an MLP input Linear saves it as it is (the adapter cast is a no-op on an fp32 stream). The
  // first norm's fp32 copy is the checkpoint itself on an fp32 stream (checkpointSharedBytesPerToken).
  const checkpointShared = S === NORM_INTERNAL_BYTES ? h * S : 0
  const locals = (S === NORM_INTERNAL_BYTES ? 0 : h * S) + (mlpInputSaved ? 0 : h * S)
  let recomputePeak = 0
  if (!full) {
    const beforeMlp = perToken - 3 * arch.intermediateSize * S - roleBytes['mlp-out'] + locals - checkpointShared
    let earlier = 0
    for (const m of shape.linears) {
      if (m.role !== 'mlp-in') continue
      if (lora.has(m.name)) recomputePeak = Math.max(recomputePeak, beforeMlp + earlier + m.outFeatures * (S + RECOMPUTE_LORA_SUM * A))
      earlier += m.outFeatures * S + (earlier === 0 ? arch.intermediateSize * S : 0)
    }
  }

  // One block's backward: the gated MLP's gradient buffers, and eager's fp32 softmax gradient (a*s^2, the size of
  // the saved probabilities); activationTerms says when they are alive together.
  // The MLP's Linears, for the order in which the recomputed block's backward meets them (activationTerms).
  const I = arch.intermediateSize
  let mlpOutParams = 0
  let mlpOutAdapted = false
  let mlpInParams = 0
  let attnParams = 0
  for (const m of shape.linears) {
    if (m.role === 'attn-in' || m.role === 'attn-out') attnParams = Math.max(attnParams, m.inFeatures * m.outFeatures)
    if (m.role === 'mlp-out') {
      mlpOutParams = Math.max(mlpOutParams, m.inFeatures * m.outFeatures)
      if (lora.has(m.name)) mlpOutAdapted = true
    }
    if (m.role === 'mlp-in') mlpInParams = Math.max(mlpInParams, m.inFeatures * m.outFeatures)
  }

  return {
    bytesPerToken: perToken,
    bytesPerTokenSeq: perTokenSeq,
    checkpointBytesPerToken: h * S,
    maskBytesPerTokenSeq: mask,
    dequantBytes: quantized ? shape.largestLinearParams * C : 0,
    backwardBytesPerToken: BACKWARD_MLP_GRADS * arch.intermediateSize * S,
    backwardBytesPerTokenSeq: o.attention === 'eager' ? arch.numAttentionHeads * SOFTMAX_BYTES : 0,
    mlpSavedBytesPerToken: 3 * arch.intermediateSize * S,
    checkpointSharedBytesPerToken: checkpointShared,
    firstBlockNoMaskBytesPerToken: firstBlockNoMask,
    recomputePeakBytesPerToken: recomputePeak,
    gradStreamBytesPerToken: h * GRAD_STREAM_BYTES_PER_ELEMENT,
    // The final RMSNorm's fp32 input, saved by its pow/mul (the last block's own output when the stream is fp32: not a
    // checkpoint either way). Measured at the full loss's peak, Phi-3-mini bf16 (bench/block_peak.py --loss full
    // --fake, seq 2048): 12,288 B/token, the only hidden-size tensor there besides the checkpoints.
    finalNormBytesPerToken: h * NORM_INTERNAL_BYTES,
    quantInputBytesPerToken: quantInputs,
    mlpOutSavedBytesPerToken: roleBytes['mlp-out'],
    mlpOutGradBytesPerToken: I * ((mlpOutAdapted ? A : 0) + S),
    mlpOutDequantBytes: quantized ? mlpOutParams * C : 0,
    mlpInGradBytesPerToken: 2 * I * S,
    mlpInDequantBytes: quantized ? mlpInParams * C : 0,
    attnDequantBytes: quantized ? attnParams * C : 0,
  }
}

export type ActivationTerms = {
  /** Saved activations alive when backward starts (all blocks, or only checkpoints), bytes. */
  heldBytes: number
  /** Extra bytes while one block runs its backward (recompute with checkpointing, gradient buffers), bytes. */
  layerBackwardBytes: number
}

/**
 * Checkpointed block inputs on the device at any moment when they are offloaded to host memory (an offloaded
 * gradient checkpoint, Unsloth's "unsloth" checkpointing and torchtune's OffloadActivations): the block
 * recomputing in backward, whose input was brought back, and the next one's input, prefetched on a side
 * stream so the copy overlaps the compute. Units: blocks.
 */
export const OFFLOAD_RESIDENT_BLOCKS = 2

/**
 * Saved activations for a micro-batch: every block's tensors without checkpointing; with it
 * (transformers gradient_checkpointing), only each block's input plus one block recomputed
 * at a time. With `offload` (checkpointing on, CUDA) the block inputs live in pinned host
 * memory and only OFFLOAD_RESIDENT_BLOCKS of them are on the device.
 * @example activationTerms(layer, 32, 1, 2048, true).heldBytes
 */
export function activationTerms(
  layer: LayerActivations,
  numLayers: number,
  batch: number,
  seq: number,
  gradientCheckpointing: boolean,
  offload = false,
): ActivationTerms {
  const tokens = batch * seq
  const oneLayer = tokens * layer.bytesPerToken + tokens * seq * layer.bytesPerTokenSeq
  const mask = tokens * seq * layer.maskBytesPerTokenSeq
  const mlpGrads = tokens * layer.backwardBytesPerToken
  const softmaxGrad = tokens * seq * layer.backwardBytesPerTokenSeq
  if (gradientCheckpointing) {
    const onDevice = offload ? Math.min(numLayers, OFFLOAD_RESIDENT_BLOCKS) : numLayers
    // The recomputed block (non-reentrant torch.utils.checkpoint, torch 2.13) runs its backward top down, and each
    // Linear's backward frees what that Linear saved, so the MLP's and attention's working sets are never alive
    // together. Its first norm keeps the checkpointed input itself when the stream is fp32 (already in heldBytes).
    // Measured with live tensor bytes, op by op (bench/block_phases.py; docs/accuracy.md, "Checkpointed block
    // backward" and "The MLP's backward, Linear by Linear"), the moments in order:
    //   1. the recompute, at the MLP input Linear's LoRA sum (RECOMPUTE_LORA_SUM; the highest at real widths);
    //   2. the MLP output Linear's backward: its saved input is freed first (lora_A's backward), then its input's
    //      gradient (adapter branch + sum) and, on a 4-bit base, its own dequantized weight (not the largest one);
    //   3. the gated product's backward: the gradients of the product, gate and up (BACKWARD_MLP_GRADS);
    //   4. the MLP input Linears' backward: the MLP's saved tensors freed, the gradient of their outputs and their
    //      dequantized weight; 5. attention's, whose eager softmax gradient comes after all of the MLP's is freed.
    // The gradient entering the top block is alive through all of them (GRAD_STREAM_BYTES_PER_ELEMENT).
    const block = oneLayer - tokens * layer.checkpointSharedBytesPerToken
    const recompute = tokens * layer.recomputePeakBytesPerToken + tokens * seq * layer.bytesPerTokenSeq
    const afterOut = block - tokens * layer.mlpOutSavedBytesPerToken
    const outLinear = afterOut + tokens * layer.mlpOutGradBytesPerToken + layer.mlpOutDequantBytes
    const gatedProduct = afterOut + mlpGrads
    const afterMlp = afterOut - tokens * layer.mlpSavedBytesPerToken
    const inLinears = afterMlp + tokens * layer.mlpInGradBytesPerToken + layer.mlpInDequantBytes
    // o_proj's weight is dequantized before the softmax gradient exists and qkv_proj's after it is freed; counting the
    // larger of them with it keeps this an upper bound.
    const attention = afterMlp + softmaxGrad + layer.attnDequantBytes
    const blockPeak = Math.max(recompute, outLinear, gatedProduct, inLinears, attention)
    return {
      heldBytes: onDevice * tokens * layer.checkpointBytesPerToken + mask,
      layerBackwardBytes: blockPeak + tokens * layer.gradStreamBytesPerToken,
    }
  }
  const workspace = mlpGrads + softmaxGrad + layer.dequantBytes
  return { heldBytes: numLayers * oneLayer + mask - tokens * layer.firstBlockNoMaskBytesPerToken, layerBackwardBytes: workspace }
}
