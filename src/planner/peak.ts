/**
 * The arithmetic core of the planner: every term of one PlanInput at its peak moment, with no
 * warnings or formatting, cheap enough for the fit search to call tens of thousands of times.
 */
import { BYTES_PER_ELEMENT } from '../units.ts'
import type { Breakdown, PlanInput } from './types.ts'
import { ADAPTER_BYTES_PER_PARAM, loraParams } from './adapters.ts'
import { activationTerms, layerActivations, QUANT_SAVES_INPUT } from './activations.ts'
import { lossBytes } from './logits.ts'
import { optimizerTerms } from './optimizer.ts'
import { overheadTerms } from './overhead.ts'
import { modelShape, type ModelShape } from './shape.ts'
import { matchTargets, type TargetMatch } from './targets.ts'
import { quantBytesPerParam, weightTerms } from './weights.ts'

export type MemoryTerms = {
  shape: ModelShape
  match: TargetMatch
  trainableParams: number
  breakdown: Breakdown
  peakBytes: number
  peakAllocatedBytes: number
  /** Which moment sets the peak: loading, the loss at the start of backward, one block's backward, or optimizer.step(). */
  moment: 'load' | 'loss' | 'block' | 'step'
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
  const weightBytes = w.weightBytes / shards + gatherBytes

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

  return {
    at(batch: number, seq: number): MemoryTerms {
      const act = activationTerms(layer, arch.numLayers, batch, seq, input.gradientCheckpointing, offload)
      const loss = lossBytes(input.loss ?? 'full', arch.vocabSize, batch, seq, layer.checkpointBytesPerToken)
      // The final norm's saved fp32 input is alive at the loss, not in any block's backward (finalNormBytesPerToken).
      const finalNorm = batch * seq * layer.finalNormBytesPerToken
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
      const hostBytes = offload ? arch.numLayers * batch * seq * layer.checkpointBytesPerToken : 0
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
