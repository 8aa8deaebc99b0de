/**
 * The arithmetic core of the planner: every term of one PlanInput at its peak moment, with no
 * warnings or formatting, cheap enough for the fit search to call tens of thousands of times.
 */
import { BYTES_PER_ELEMENT } from '../units.ts'
import type { Breakdown, PlanInput } from './types.ts'
import { ADAPTER_BYTES_PER_PARAM, loraParams } from './adapters.ts'
import { activationTerms, layerActivations, QUANT_SAVES_INPUT, streamBytes } from './activations.ts'
import { lossBytes } from './logits.ts'
import { optimizerTerms } from './optimizer.ts'
import { overheadTerms } from './overhead.ts'
import { modelShape, type ModelShape } from './shape.ts'
import { matchTargets, type TargetMatch } from './targets.ts'
import { KBIT_PREPARED_BYTES_PER_PARAM, quantBytesPerParam, weightTerms } from './weights.ts'

export type MemoryTerms = {
  shape: ModelShape
  match: TargetMatch
  trainableParams: number
  breakdown: Breakdown
  peakBytes: number
  peakAllocatedBytes: number
  /**
   * Which moment sets the peak: loading, the end of the forward (only on a PlanPath with a 4-bit head, the previous
   * step's graph kept, or a chunked head loop), the loss at the start of backward, the head's backward (a 4-bit head
   * under a chunked head loop), one block's backward, or optimizer.step().
   */
  moment: 'load' | 'forward' | 'loss' | 'head' | 'block' | 'step'
  /** Pinned host memory the offloaded checkpoint holds (every block's input), bytes; 0 without offloading. Not device memory. */
  hostBytes: number
}

/**
 * The training stack's code path, where it changes memory. Headroom (and KAITO) run transformers + peft +
 * bitsandbytes 0.50.2: peft's k-bit preparation casts embeddings, norms and lm_head to fp32 (so the hidden states
 * become fp32), and 4-bit matmuls keep no input. Other stacks differ, and the accuracy bench plans their published
 * rows with their own path: lit-gpt's 2023 QLoRA quantized without peft's preparation (bf16 stream) on a
 * bitsandbytes that kept the input (ctx.tensors = (A, B)); torchtune's torchao NF4 does neither.
 */
export type PlanPath = {
  /** peft prepare_model_for_kbit_training ran (fp32 casts of the unquantized parameters and the stream). */
  kbitPrepared: boolean
  /** The quantized matmul keeps its input for backward. */
  quantSavesInput: boolean
  /**
   * Opt-in, absent for Headroom: the stack materialises each quantized Linear's weight in 16-bit on the device and
   * quantizes it there, one Linear at a time, after the rest of the model is resident; this many bytes per element of
   * the largest quantized Linear are alive at once during that conversion. The load is then a moment of its own, and
   * the peak is the larger of it and the training step. (Headroom's bitsandbytes path quantizes while transformers
   * loads, before training: its load transient is the `--phase load` plan, not part of the training peak.)
   */
  quantizeOnDeviceBytesPerElement?: number
  /**
   * Opt-in, absent for Headroom: bytes per element of the LoRA weights (and so of their gradients, AdamW states and
   * the adapter branch's input) when the stack keeps them in 16-bit. peft casts them to fp32 (ADAPTER_BYTES_PER_PARAM);
   * lit-gpt's `--precision bf16-true` (and torchtune, which builds under set_default_dtype) keep them in bf16:
   * lightning fabric HalfPrecision.convert_module is module.to(torch.bfloat16), LoRA A/B included.
   */
  adapterBytesPerParam?: number
  /**
   * Opt-in, absent for Headroom (peft leaves lm_head in 16/32-bit): the output head is a 4-bit Linear too, and this many
   * bytes per head element are alive while its weight is dequantized for a matmul. Its weight then counts at 4-bit,
   * and its input is kept like any 4-bit Linear's when quantSavesInput. lightning fabric's BitsandbytesPrecision
   * (lit-gpt 2023 and litgpt 2024 `--quantize bnb.*`) replaces every torch.nn.Linear with no ignore_modules, the head
   * included; its _Linear4bit._quantize_weight quantizes `weight.to(dtype=torch.half)`, so bitsandbytes 0.41/0.42's
   * MatMul4Bit.forward runs `dequantize_4bit(B)` (fp16, 2 B) `.to(A.dtype)` (bf16, 2 B more): 4 B per element at once.
   */
  quantizedHeadDequantBytesPerElement?: number
  /**
   * Opt-in, absent for Headroom: the training loop keeps the step's logits referenced until the next forward has
   * returned (litgpt 2024 finetune/lora.py fit: `logits = model(input_ids, lm_head_chunk_size=128)`, no `del`), and
   * through their grad_fn the whole autograd graph. Backward frees saved tensors, not attributes a custom Function set
   * on its ctx: the older bitsandbytes' MatMul4Bit kept its input as `ctx.tensors = (A, B)`, so the previous step's
   * 4-bit inputs (LayerActivations.quantInputBytesPerToken, every block) and its logits are alive beside this step's
   * at the end of the next forward, a moment of its own ('forward'). Planned with the previous step as long as this
   * one: the rows that use it (litgpt config hub, Alpaca2k truncated at max_seq_length 512, batches padded to their
   * longest) meet consecutive full-length batches.
   */
  keepsPreviousStepGraph?: boolean
  /**
   * Opt-in, absent for Headroom (transformers' loss, LOSS_BYTES_PER_LOGIT = 12): the loop takes the head's output in
   * chunks and holds it in a dtype of its own (ChunkedHeadLoop). Only the full loss: `--loss chunked` keeps its own.
   */
  chunkedHeadLoop?: ChunkedHeadLoop
}

/**
 * lit-gpt 2023 and litgpt 2024 under Lightning Fabric (finetune/lora.py @8641822:216-220, @e5493986:304-307):
 * `logits = model(input_ids, lm_head_chunk_size=128)`, a list of 128-token head outputs, then chunked_cross_entropy
 * over the list. Fabric's `_FabricModule.forward` ends with `precision.convert_output(output)`, which casts every
 * floating-point output to `torch.get_default_dtype()`, float32 (lightning @71aed751 wrappers.py:123, half.py:51-52,
 * bitsandbytes.py:142-143; the same at 2.3.0.dev20240428 and 2.4.0.dev20240728, litgpt's pins). Measured on CPU with
 * the real Fabric 2.1.0 and lit-gpt 8641822 at Llama-2-7B's widths (bench/litgpt_fabric_step.py, 1,304 tokens;
 * bench/results/litgpt-fabric-step.json): 7.997 B per logit alive when backward starts (the fp32 logits and
 * log_softmax's fp32 output), 8 B per logit of one chunk more inside its LogSoftmaxBackward, and 6.0 B per logit when
 * the head's backward starts (the fp32 logits and every chunk's gradient, already cast back to bf16: the engine runs
 * all of Fabric's casts, made after the forward, before any head node).
 */
export type ChunkedHeadLoop = {
  /** Bytes per logit element of the logits the loop holds: float32 after Fabric's convert_output, 4. */
  heldBytesPerLogit: number
  /** Bytes per logit element the loss saves for backward: cross_entropy's log_softmax output, in the held dtype, 4. */
  lossSavedBytesPerLogit: number
  /** Tokens per head chunk (lm_head_chunk_size, 128): a chunk's backward adds its incoming and outgoing gradient. */
  chunkTokens: number
}

/** transformers + peft + bitsandbytes 0.50.2, as Headroom's trainer and KAITO run them. */
export const HEADROOM_PATH: PlanPath = { kbitPrepared: true, quantSavesInput: QUANT_SAVES_INPUT }

/** A plan with everything but batch and sequence length fixed; `at` evaluates one (batch, seq). */
export type PreparedPlan = {
  at(batch: number, seq: number): MemoryTerms
}

/**
 * Does the batch- and length-independent work of a plan once (target matching, weights,
 * adapters, optimizer, per-token activation coefficients), so that searches over batch and
 * seq evaluate the full peak with a few multiplications each.
 * @example prepareTerms(input).at(4, 2048).peakBytes
 */
export function prepareTerms(input: PlanInput, path: PlanPath = HEADROOM_PATH): PreparedPlan {
  const shape = modelShape(input.model)
  const arch = input.model
  const full = input.method === 'full'
  const match = matchTargets(shape, input.targets)
  const trainableParams = full ? arch.params : loraParams(shape, match, input.rank)
  const quantized = input.quant !== 'none'
  const w = weightTerms(shape, {
    method: input.method,
    dtype: input.dtype,
    quant: full ? 'none' : input.quant,
    doubleQuant: input.doubleQuant,
    phase: input.phase,
    kbitPrepared: path.kbitPrepared,
  })
  const shards = input.gpus > 1 && input.parallelism === 'fsdp' ? input.gpus : 1
  // FSDP FULL_SHARD gathers one wrapped block at a time and prefetches the next: two unsharded blocks.
  const gatherBytes =
    shards > 1 ? 2 * shape.layerParams * (quantized && !full ? quantBytesPerParam(input.quant, input.doubleQuant, input.dtype) : BYTES_PER_ELEMENT[input.dtype]) : 0
  // PlanPath.quantizedHeadDequantBytesPerElement: the head is a 4-bit Linear, not a 16/32-bit weight.
  const headQuantized = quantized && !full && path.quantizedHeadDequantBytesPerElement !== undefined && arch.lmHeadParams > 0
  const headUnquantizedBytes = path.kbitPrepared ? KBIT_PREPARED_BYTES_PER_PARAM : BYTES_PER_ELEMENT[input.dtype]
  const headSavingBytes = headQuantized && input.phase !== 'load'
    ? arch.lmHeadParams * (headUnquantizedBytes - quantBytesPerParam(input.quant, input.doubleQuant, input.dtype))
    : 0
  const weightBytes = (w.weightBytes - headSavingBytes) / shards + gatherBytes

  if (input.phase === 'load') {
    return {
      at() {
        const o = overheadTerms(input.device, input.expandableSegments, w.loadTransientBytes, false, input.overhead)
        const breakdown: Breakdown = {
          weights: weightBytes + w.loadTransientBytes,
          adapters: 0,
          gradients: 0,
          optimizer: 0,
          activations: 0,
          logits: 0,
          overhead: o.contextBytes + o.slackBytes + o.workspaceBytes,
        }
        return finish(shape, match, trainableParams, breakdown, o.contextBytes + o.slackBytes, 'load')
      },
    }
  }

  const adapterElementBytes = path.adapterBytesPerParam ?? ADAPTER_BYTES_PER_PARAM
  const paramBytes = full ? BYTES_PER_ELEMENT[input.dtype] : adapterElementBytes
  const adapterBytes = full ? 0 : (trainableParams * adapterElementBytes) / shards
  const gradientBytes = (trainableParams * paramBytes) / shards
  const largestTrainableTensor = full
    ? Math.max(shape.largestUnquantizedParams, shape.largestLinearParams)
    : Math.max(0, ...match.modules.map((m) => input.rank * Math.max(m.inFeatures, m.outFeatures)))
  const opt = optimizerTerms(input.optimizer, trainableParams / shards, paramBytes, largestTrainableTensor / shards, input.device)
  // DDP keeps gradient buckets beside .grad (gradient_as_bucket_view=False): one more gradient-sized buffer.
  const bucketBytes = input.gpus > 1 && input.parallelism === 'ddp' ? trainableParams * paramBytes : 0
  const layer = layerActivations(shape, match, {
    method: input.method,
    dtype: input.dtype,
    quant: full ? 'none' : input.quant,
    kbitPrepared: quantized && !full && path.kbitPrepared,
    attention: input.attention,
    gradientCheckpointing: input.gradientCheckpointing,
    rank: input.rank,
    quantSavesInput: path.quantSavesInput,
    loraDropout: input.loraDropout,
    device: input.device,
    adapterBytes: adapterElementBytes,
  })
  // The offloaded checkpoint moves the block inputs that checkpointing saves; without checkpointing there are none
  // to move, and on CPU host memory is the device (plan.ts warns in both cases).
  const offload = input.offloadActivations === true && input.gradientCheckpointing && input.device === 'cuda'
  // Full fine-tuning: the output head's gradient appears first in backward, while activations are still held.
  // LoRA: backward frees each block's activations as it writes that block's adapter gradients, so while the
  // activations are held only the top block's gradients exist; all of them exist at optimizer.step(), the
  // 'step' moment. Measured (headroom sweep examples/sweeps/seed-rank.yaml, tiny Phi-3, rank 1,024): peak
  // 292.1e6 B = resident + every gradient, not + the 40.9e6 B of activations as well (predicted 333.1e6 B).
  const headGradBytes = full ? (arch.vocabSize * arch.hiddenSize * paramBytes) / shards : gradientBytes / arch.numLayers
  const resident = weightBytes + adapterBytes + opt.stateBytes + bucketBytes
  const stepAllocated = resident + gradientBytes + opt.stepTransientBytes
  // The stack's on-device quantization of the largest quantized Linear, the whole model otherwise resident.
  const quantizeTransientBytes =
    quantized && !full && path.quantizeOnDeviceBytesPerElement !== undefined ? path.quantizeOnDeviceBytesPerElement * shape.largestLinearParams : 0
  const loadAllocated = weightBytes + adapterBytes + quantizeTransientBytes
  // The head's output (the logits) is in the stream's dtype; a 4-bit head keeps its input (the final norm's output).
  const S = streamBytes({ dtype: input.dtype, kbitPrepared: quantized && !full && path.kbitPrepared })
  const headInputBytesPerToken = headQuantized && path.quantSavesInput ? arch.hiddenSize * S : 0
  const headDequantBytes = headQuantized ? arch.lmHeadParams * (path.quantizedHeadDequantBytesPerElement ?? 0) : 0
  const loop = path.chunkedHeadLoop !== undefined && (input.loss ?? 'full') === 'full' ? path.chunkedHeadLoop : undefined
  // The logits the loop holds: the stack's own dtype under a chunked head loop, the head's output (the stream) otherwise.
  const heldBytesPerLogit = loop?.heldBytesPerLogit ?? S
  const forwardMoment = headQuantized || path.keepsPreviousStepGraph === true || loop !== undefined

  return {
    at(batch: number, seq: number): MemoryTerms {
      const act = activationTerms(layer, arch.numLayers, batch, seq, input.gradientCheckpointing, offload)
      const tokens = batch * seq
      const logitElements = tokens * arch.vocabSize
      // ChunkedHeadLoop: the held logits and the loss's saved output, plus one chunk's two gradients in its backward.
      const loss = loop
        ? logitElements * (loop.heldBytesPerLogit + loop.lossSavedBytesPerLogit) + batch * Math.min(loop.chunkTokens, seq) * arch.vocabSize * 2 * loop.heldBytesPerLogit
        : lossBytes(input.loss ?? 'full', arch.vocabSize, batch, seq, layer.checkpointBytesPerToken)
      // The final norm's saved fp32 input is alive at the loss, not in any block's backward (finalNormBytesPerToken).
      const finalNorm = tokens * (layer.finalNormBytesPerToken + headInputBytesPerToken)
      const lossWins = loss + finalNorm >= act.layerBackwardBytes
      const backwardChurn = act.heldBytes + (lossWins ? loss + finalNorm : act.layerBackwardBytes)
      const backwardAllocated = resident + headGradBytes + backwardChurn
      const stepWins = stepAllocated > backwardAllocated
      const churn = stepWins ? opt.stepTransientBytes : backwardChurn
      const o = overheadTerms(input.device, input.expandableSegments, churn, true, input.overhead)
      if (quantizeTransientBytes > 0) {
        const ol = overheadTerms(input.device, input.expandableSegments, quantizeTransientBytes, false, input.overhead)
        const trainPeak = stepWins ? stepAllocated : backwardAllocated
        if (loadAllocated + ol.slackBytes > trainPeak + o.slackBytes + o.workspaceBytes) {
          const breakdown: Breakdown = {
            weights: weightBytes + quantizeTransientBytes, adapters: adapterBytes, gradients: 0, optimizer: 0, activations: 0, logits: 0,
            overhead: ol.contextBytes + ol.slackBytes + ol.workspaceBytes,
          }
          return finish(shape, match, trainableParams, breakdown, ol.contextBytes + ol.slackBytes, 'load')
        }
      }
      if (forwardMoment) {
        const trainPeak = (stepWins ? stepAllocated : backwardAllocated) + o.slackBytes + o.workspaceBytes
        const logitsOut = logitElements * S
        // keepsPreviousStepGraph: the previous step's logits, as the loop holds them, and its 4-bit inputs (PlanPath).
        const previousLogits = path.keepsPreviousStepGraph ? logitElements * heldBytesPerLogit : 0
        const previousInputs = path.keepsPreviousStepGraph ? tokens * (arch.numLayers * layer.quantInputBytesPerToken + headInputBytesPerToken) : 0
        // Three moments around the head, each with this step's saved tensors: the head's last chunk in the forward
        // (a 4-bit head's weight dequantized), the end of the loop's cast (the head's output and its cast copy), and,
        // under a chunked head loop, the head's backward (the held logits, every chunk's gradient in the stream's dtype,
        // a 4-bit head's weight dequantized again; the previous step is gone by then: the loop rebound its logits).
        const moments: { moment: 'forward' | 'head'; weights: number; logits: number; activations: number }[] = [
          { moment: 'forward', weights: headDequantBytes, logits: logitsOut + previousLogits, activations: previousInputs },
        ]
        if (loop) moments.push({ moment: 'forward', weights: 0, logits: logitsOut + logitElements * heldBytesPerLogit + previousLogits, activations: previousInputs })
        if (loop && headQuantized) moments.push({ moment: 'head', weights: headDequantBytes, logits: logitElements * (heldBytesPerLogit + S), activations: 0 })
        const top = moments.reduce((x, y) => (y.weights + y.logits + y.activations > x.weights + x.logits + x.activations ? y : x))
        const forwardChurn = act.heldBytes + finalNorm + top.weights + top.logits + top.activations
        const forwardAllocated = resident + forwardChurn
        const of = overheadTerms(input.device, input.expandableSegments, forwardChurn, true, input.overhead)
        if (forwardAllocated + of.slackBytes + of.workspaceBytes > trainPeak) {
          const breakdown: Breakdown = {
            weights: weightBytes + top.weights, adapters: adapterBytes, gradients: bucketBytes, optimizer: opt.stateBytes,
            activations: act.heldBytes + finalNorm + top.activations,
            logits: top.logits,
            overhead: of.contextBytes + of.slackBytes + of.workspaceBytes,
          }
          return finish(shape, match, trainableParams, breakdown, of.contextBytes + of.slackBytes, top.moment)
        }
      }
      const hostBytes = offload ? arch.numLayers * tokens * layer.checkpointBytesPerToken : 0
      const breakdown: Breakdown = {
        weights: weightBytes,
        adapters: adapterBytes,
        gradients: (stepWins ? gradientBytes : headGradBytes) + bucketBytes,
        optimizer: opt.stateBytes + (stepWins ? opt.stepTransientBytes : 0),
        activations: stepWins ? 0 : act.heldBytes + (lossWins ? finalNorm : act.layerBackwardBytes),
        logits: stepWins || !lossWins ? 0 : loss,
        overhead: o.contextBytes + o.slackBytes + o.workspaceBytes,
      }
      return finish(shape, match, trainableParams, breakdown, o.contextBytes + o.slackBytes, stepWins ? 'step' : lossWins ? 'loss' : 'block', hostBytes)
    },
  }
}

/**
 * Every term of the plan at the moment of peak memory on one device.
 * @example memoryTerms(input).peakBytes
 */
export function memoryTerms(input: PlanInput, path: PlanPath = HEADROOM_PATH): MemoryTerms {
  return prepareTerms(input, path).at(input.batch, input.seq)
}

function finish(
  shape: ModelShape,
  match: TargetMatch,
  trainableParams: number,
  breakdown: Breakdown,
  notAllocatedBytes: number,
  moment: MemoryTerms['moment'],
  hostBytes = 0,
): MemoryTerms {
  const b = breakdown
  b.weights = Math.round(b.weights)
  b.adapters = Math.round(b.adapters)
  b.gradients = Math.round(b.gradients)
  b.optimizer = Math.round(b.optimizer)
  b.activations = Math.round(b.activations)
  b.logits = Math.round(b.logits)
  b.overhead = Math.round(b.overhead)
  const peakBytes = b.weights + b.adapters + b.gradients + b.optimizer + b.activations + b.logits + b.overhead
  const peakAllocatedBytes = peakBytes - Math.round(notAllocatedBytes)
  return { shape, match, trainableParams, breakdown, peakBytes, peakAllocatedBytes, moment, hostBytes }
}

/** Peak bytes only, for searches. @example peakBytesOf({ ...input, seq: 4096 }) */
export function peakBytesOf(input: PlanInput): number {
  return memoryTerms(input).peakBytes
}
