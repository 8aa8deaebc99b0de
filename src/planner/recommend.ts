/**
 * The fit search behind `plan --recommend` and `init`: plans every combination of method,
 * quantization, gradient checkpointing, attention, optimizer, LoRA rank and micro-batch, keeps
 * what fits the GPU with a safety margin, and explains each choice in one sentence. The
 * seed's best practices are the rules: QLoRA when LoRA does not fit; a batch above 1 when
 * memory allows; low ranks (8–64); expandable_segments.
 */
import type { Dtype, Quant } from '../units.ts'
import { formatBytes, formatCount, formatGiB } from '../units.ts'
import type { Attention, LossImpl, Method, Optimizer, PlanInput, Recommendation, RecommendationReason, RecommendGoal } from './types.ts'
import { memoryTerms, prepareTerms } from './peak.ts'
import { LOSSES, OPTIMIZERS } from './fields.ts'
import { maxBatch, maxSeqLen } from './fit.ts'
import { LOSS_CHUNK_TOKENS, lossBytes } from './logits.ts'
import { usableMemoryBytes } from './overhead.ts'
import { planMemory } from './plan.ts'

export type RecommendOptions = {
  goal?: RecommendGoal
  /** Tokens per sequence to plan for (max-throughput) or to reach (max-context); default base.seq. */
  seq?: number
  /** Share of usable GPU memory kept free, 0-0.9; default 0.1. */
  safetyMargin?: number
  /** The loss implementations the search may choose; default both (a caller whose runtime lacks one narrows it). */
  losses?: readonly LossImpl[]
}

export const DEFAULT_SAFETY_MARGIN = 0.1
export const RANKS = [8, 16, 32, 64] as const
export const MAX_RECOMMENDED_BATCH = 64

type Precision = { method: Method; quant: Quant; doubleQuant: boolean }

const LORA: Precision = { method: 'lora', quant: 'none', doubleQuant: false }
const QLORA_PRECISIONS: Precision[] = [
  { method: 'qlora', quant: 'nf4', doubleQuant: true },
  { method: 'qlora', quant: 'nf4', doubleQuant: false },
  { method: 'qlora', quant: 'fp4', doubleQuant: true },
  { method: 'qlora', quant: 'int8', doubleQuant: false },
]
// Search order breaks ties in score: sdpa before flash before eager.
const ATTENTION_ORDER: Attention[] = ['sdpa', 'flash', 'eager']

// Relative step speed, a ranking heuristic only (docs/memory-model.md §Recommendation):
// transformers' performance guide: gradient checkpointing "slows down training by approximately 20%".
const CHECKPOINTING_SPEED = 0.8
// The seed: QLoRA has "a modest tradeoff in processing speed due to quantization overhead"; LLM.int8 matmuls are slower still.
const QUANT_SPEED: Record<Quant, number> = { none: 1, nf4: 0.8, fp4: 0.8, int8: 0.5 }
// eager attention runs unfused softmax over heads x seq^2 scores; sdpa and flash use fused kernels.
const ATTENTION_SPEED: Record<Attention, number> = { sdpa: 1, flash: 1, eager: 0.85 }
// Preference rather than speed: AdamW is the reference; 8-bit and paged states trade a little; plain SGD converges worse.
const OPTIMIZER_PREFERENCE: Record<Optimizer, number> = { adamw: 1, adamw_8bit: 0.99, paged_adamw_8bit: 0.98, sgd: 0.5 }

// The levers cost a little speed, so they win only where they buy a longer sequence or a bigger batch.
// Chunked loss recomputes each chunk's logits in backward: one more b*s x h x V matmul (2*b*s*h*V FLOPs) against
// training's ~6*N*b*s (Kaplan et al. 2020), under 1% for Phi-3-mini (2*3072*32064 / (6*3.8e9)); 0.99 rounds it up.
const CHUNKED_LOSS_SPEED = 0.99
// The offloaded checkpoint copies each block input (b*s*h) to host and back over PCIe on a side stream, overlapped
// with compute; Unsloth reports a small overhead for its offloaded checkpoint. A ranking heuristic, not a measurement.
const OFFLOAD_SPEED = 0.95

type Levers = { loss: LossImpl; offloadActivations: boolean }

type Candidate = { input: PlanInput; peakBytes: number; seq: number; batch: number; score: number }

/**
 * Searches the configurations around `base` for the one with the most tokens per step (or the
 * longest sequence) that fits base.gpu with the safety margin; null when nothing fits or base
 * has no GPU.
 * @example recommend(seedInput, { goal: 'max-throughput', seq: 4096 })?.input.batch
 */
export function recommend(base: PlanInput, opts: RecommendOptions = {}): Recommendation | null {
  return searchFit(base, opts).recommendation
}

/** What a search did: its answer and how many candidate configurations it planned. */
export type SearchStats = { recommendation: Recommendation | null; planned: number }

/**
 * recommend() with its count of planned candidates.
 * @example searchFit(seedInput).planned // 30,720 on the seed case
 */
export function searchFit(base: PlanInput, opts: RecommendOptions = {}): SearchStats {
  const gpu = base.gpu
  if (!gpu || base.phase !== 'train') return { recommendation: null, planned: 0 }
  const goal = opts.goal ?? 'max-throughput'
  const margin = opts.safetyMargin ?? DEFAULT_SAFETY_MARGIN
  const budget = usableMemoryBytes(gpu) * (1 - margin)
  const seqTarget = opts.seq ?? base.seq
  const losses = opts.losses ?? LOSSES
  const preferredRank = RANKS.reduce((a, r) => (Math.abs(r - base.rank) < Math.abs(a - base.rank) ? r : a), RANKS[0])
  const precisions = base.method === 'full' ? [{ method: 'full', quant: 'none', doubleQuant: false } as Precision, LORA, ...QLORA_PRECISIONS] : [LORA, ...QLORA_PRECISIONS]
  const flashOk = Number(gpu.computeCapability) >= 8
  // A GPU without native bf16 (T4, V100: the catalog's bf16 flag) trains in fp16 instead.
  const dtype: Dtype = base.dtype === 'bf16' && !gpu.bf16 && base.device === 'cuda' ? 'fp16' : base.dtype
  let planned = 0
  let best: Candidate | null = null

  const consider = (c: Candidate) => {
    if (!best || c.score > best.score) best = c
  }

  for (const p of precisions) {
    const ranks = p.method === 'full' ? [base.rank] : RANKS
    for (const gradientCheckpointing of [false, true]) {
      // Offloading moves checkpointed block inputs to host memory: only with checkpointing, and only on CUDA.
      const offloads = gradientCheckpointing && base.device === 'cuda' ? [false, true] : [false]
      const levers: Levers[] = losses.flatMap((loss) => offloads.map((offloadActivations) => ({ loss, offloadActivations })))
      for (const lever of levers) {
        for (const attention of ATTENTION_ORDER) {
          if (attention === 'flash' && !flashOk) continue
          for (const optimizer of OPTIMIZERS) {
            for (const rank of ranks) {
              const speed =
                QUANT_SPEED[p.quant] *
                (gradientCheckpointing ? CHECKPOINTING_SPEED : 1) *
                ATTENTION_SPEED[attention] *
                OPTIMIZER_PREFERENCE[optimizer] *
                // ranks beyond what was asked carry a hair of cost, so ties keep the requested rank
                (1 - Math.abs(rank - preferredRank) / 1e4) *
                // sdpa ships with torch; flash_attention_2 needs the flash-attn package: prefer sdpa on ties
                (attention === 'flash' ? 0.999 : 1) *
                (lever.loss === 'chunked' ? CHUNKED_LOSS_SPEED : 1) *
                (lever.offloadActivations ? OFFLOAD_SPEED : 1)
              const input: PlanInput = {
                ...base,
                ...p,
                ...lever,
                dtype,
                rank,
                alpha: base.alpha,
                gradientCheckpointing,
                attention,
                optimizer,
                expandableSegments: true,
                seq: seqTarget,
                batch: 1,
              }
              const prepared = prepareTerms(input)
              if (goal === 'max-throughput' || opts.seq !== undefined) {
                // Every micro-batch is planned: prepareTerms makes each one a few multiplications.
                let fitBatch = 0
                let fitPeak = 0
                for (let batch = 1; batch <= MAX_RECOMMENDED_BATCH; batch++) {
                  planned++
                  const peak = prepared.at(batch, seqTarget).peakBytes
                  if (peak <= budget && batch > fitBatch) {
                    fitBatch = batch
                    fitPeak = peak
                  }
                }
                if (fitBatch === 0) continue
                const tokens = goal === 'max-context' ? seqTarget : fitBatch * seqTarget
                consider({ input: { ...input, batch: fitBatch }, peakBytes: fitPeak, seq: seqTarget, batch: fitBatch, score: tokens * speed })
              } else {
                // Longest sequence at batch 1, by bisection (peak grows with seq).
                let lo = 0
                let hi = base.model.maxPositionEmbeddings
                planned++
                if (prepared.at(1, hi).peakBytes <= budget) lo = hi
                else {
                  while (hi - lo > 1) {
                    const mid = Math.floor((lo + hi) / 2)
                    planned++
                    if (prepared.at(1, mid).peakBytes <= budget) lo = mid
                    else hi = mid
                  }
                }
                if (lo === 0) continue
                const chosen = { ...input, seq: lo }
                consider({ input: chosen, peakBytes: prepared.at(1, lo).peakBytes, seq: lo, batch: 1, score: lo * speed })
              }
            }
          }
        }
      }
    }
  }
  const found = best as Candidate | null
  if (!found) return { recommendation: null, planned }
  const plan = planMemory(found.input)
  const recommendation: Recommendation = {
    input: found.input,
    plan,
    reasons: explain(base, found, budget, margin, goal),
    candidatesSearched: planned,
    env: { PYTORCH_CUDA_ALLOC_CONF: 'expandable_segments:True' },
  }
  return { recommendation, planned }
}

function explain(base: PlanInput, c: Candidate, budget: number, margin: number, goal: RecommendGoal): RecommendationReason[] {
  const r = c.input
  const gpu = base.gpu!
  const within = `the ${formatGiB(budget)} budget (${gpu.name} less a ${Math.round(margin * 100)}% margin)`
  const at = (i: Partial<PlanInput>) => memoryTerms({ ...r, ...i }).peakBytes
  const reasons: RecommendationReason[] = []
  const tokens = `${formatCount(c.seq)} tokens`

  if (r.method === 'full') {
    reasons.push({ knob: 'method', message: `full fine-tuning fits: ${formatGiB(c.peakBytes)} at batch ${r.batch} and ${tokens}, within ${within}.` })
  } else if (r.method === 'lora') {
    reasons.push({
      knob: 'method',
      message: `LoRA in 16-bit fits (${formatGiB(c.peakBytes)} at batch ${r.batch} and ${tokens}, within ${within}) and runs faster than QLoRA, which dequantizes its 4-bit weights on every step.`,
    })
  } else {
    const lora = at({ ...LORA, batch: 1, gradientCheckpointing: r.gradientCheckpointing })
    reasons.push({
      knob: 'method',
      message:
        lora > budget
          ? `LoRA in 16-bit needs ${formatGiB(lora)} even at batch 1 and ${tokens}, above ${within}; QLoRA stores the frozen weights in 4-bit (${formatGiB(planMemory(r).breakdown.weights)}) and fits.`
          : `QLoRA's 4-bit weights free the memory that buys batch ${r.batch}; 16-bit LoRA (${formatGiB(lora)} at batch 1) would fit fewer sequences per step.`,
    })
  }

  if (r.dtype !== base.dtype) {
    reasons.push({ knob: 'dtype', message: `${r.dtype}: the ${gpu.name} (compute capability ${gpu.computeCapability}) has no native ${base.dtype}.` })
  }

  if (r.quant === 'none') {
    reasons.push({ knob: 'quant', message: 'no quantization: the 16-bit weights fit, so nothing is lost to 4-bit rounding or dequantization time.' })
  } else if (r.quant === 'int8') {
    reasons.push({ knob: 'quant', message: 'int8 (LLM.int8) weights: 1 byte per weight and closer to 16-bit quality than 4-bit, at a slower matmul.' })
  } else {
    reasons.push({
      knob: 'quant',
      message: `${r.quant.toUpperCase()}${r.doubleQuant ? ' with double quantization (about 4.127 bits per weight, QLoRA paper)' : ' (about 4.5 bits per weight with its block-64 scales)'}: KAITO's qlora template uses nf4 with double quantization.`,
    })
  }

  if (goal === 'max-context' && base.seq !== c.seq && r.batch === 1) {
    reasons.push({ knob: 'seq', message: `${formatCount(c.seq)} tokens is the longest sequence that fits at batch 1 with these settings.` })
  }
  const next = r.batch < MAX_RECOMMENDED_BATCH ? at({ batch: r.batch + 1 }) : null
  reasons.push({
    knob: 'batch',
    message:
      r.batch > 1
        ? `batch ${r.batch} is the largest that fits (${formatCount(r.batch * c.seq)} tokens per step${next ? `; batch ${r.batch + 1} needs ${formatGiB(next)}` : ''}): the seed found batch 2-4 cuts training time 2-3x against batch 1.`
        : `batch 1: batch 2 needs ${formatGiB(at({ batch: 2 }))} at ${tokens}, above ${within}.`,
  })

  const gcOther = at({ gradientCheckpointing: !r.gradientCheckpointing })
  reasons.push({
    knob: 'gradientCheckpointing',
    message: r.gradientCheckpointing
      ? `gradient checkpointing keeps only each block's input (without it this batch needs ${formatGiB(gcOther)}); recomputing the forward costs about 20% speed.`
      : `gradient checkpointing off: everything fits without it (with it ${formatGiB(gcOther)}), and it would cost about 20% speed in recomputation.`,
  })

  reasons.push(...explainLevers(r, c, budget, goal))

  const eager = at({ attention: 'eager' })
  reasons.push({
    knob: 'attention',
    message:
      r.attention === 'eager'
        ? 'eager attention fits and is what this model runs without sdpa kernels.'
        : `${r.attention === 'sdpa' ? 'sdpa (PyTorch scaled_dot_product_attention)' : 'flash_attention_2'} never stores the heads x seq^2 attention scores that eager keeps (eager: ${formatGiB(eager)} here).`,
  })

  const trainable = memoryTerms(r).trainableParams
  const optimizerMessage: Record<Optimizer, string> = {
    adamw: `AdamW with full-precision states: ${formatBytes(memoryTerms(r).breakdown.optimizer)} for ${formatCount(trainable)} trainable parameters.`,
    adamw_8bit: `8-bit AdamW (bitsandbytes) keeps its two states in 1 byte each, ${formatBytes(memoryTerms(r).breakdown.optimizer)} here, to make room.`,
    paged_adamw_8bit: 'paged 8-bit AdamW keeps its states in unified memory that spills to host RAM, so the GPU does not hold them.',
    sgd: 'SGD without momentum keeps no optimizer state; only chosen when nothing with AdamW fits.',
  }
  reasons.push({ knob: 'optimizer', message: optimizerMessage[r.optimizer] })

  if (r.method !== 'full') {
    const r64 = at({ rank: 64 })
    reasons.push({
      knob: 'rank',
      message: `rank ${r.rank}: the seed found ranks 8-64 give comparable quality at little cost (rank 64 would need ${formatGiB(r64)} here); raise it only if the task shows a clear benefit.`,
    })
  }
  reasons.push({
    knob: 'env',
    message: 'PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True lets PyTorch grow memory segments instead of reserving fixed blocks, which avoids out-of-memory errors from fragmentation (the seed; KAITO sets it by default).',
  })
  return reasons
}

/**
 * Why the chunked loss and the offloaded checkpoint are on or off: each is on only where it buys a longer sequence
 * (max-context) or a bigger batch (max-throughput) than the same configuration without it, and the reason says how much.
 */
function explainLevers(r: PlanInput, c: Candidate, budget: number, goal: RecommendGoal): RecommendationReason[] {
  const reasons: RecommendationReason[] = []
  const longest = goal === 'max-context' && r.batch === 1
  // What the same configuration reaches without one lever, within the same budget.
  const without = (patch: Partial<PlanInput>): string => {
    const other = { ...r, ...patch }
    if (longest) {
      const n = maxSeqLen(other, { budgetBytes: budget }) ?? 0
      return n > 0 ? `the longest sequence would be ${formatCount(n)} tokens instead of ${formatCount(c.seq)}` : 'not even one token would fit'
    }
    const n = maxBatch(other, { budgetBytes: budget }) ?? 0
    return n > 0 ? `the largest batch at ${formatCount(c.seq)} tokens would be ${n} instead of ${r.batch}` : `not even batch 1 would fit at ${formatCount(c.seq)} tokens`
  }
  const tokens = r.batch * c.seq
  const vocab = r.model.vocabSize
  if (r.loss === 'chunked') {
    reasons.push({
      knob: 'loss',
      message: `chunked loss: the full cross-entropy keeps fp32 logits and their gradients over the ${formatCount(vocab)}-token vocabulary for all ${formatCount(tokens)} tokens (${formatGiB(lossBytes('full', vocab, r.batch, c.seq, 0))}); computing them ${formatCount(LOSS_CHUNK_TOKENS)} tokens at a time and recomputing each chunk in backward keeps ${formatGiB(lossBytes('chunked', vocab, r.batch, c.seq, 0))} of logits. Without it ${without({ loss: 'full' })}; the recomputed logits cost under 1% speed.`,
    })
  } else {
    reasons.push({ knob: 'loss', message: 'full loss: computing the loss in chunks would not buy a longer sequence or a bigger batch here, so the logits are computed at once.' })
  }
  if (r.offloadActivations) {
    reasons.push({
      knob: 'offloadActivations',
      message: `offloaded activations: the ${r.model.numLayers} checkpointed block inputs move to pinned host memory as the forward makes them and come back one block ahead of backward, so only 2 stay on the GPU. Without it ${without({ offloadActivations: false })}; the copies overlap the compute, a few percent of speed. The host needs ${formatGiB(memoryTerms(r).hostBytes)} of free RAM for them.`,
    })
  } else if (r.gradientCheckpointing && r.device === 'cuda') {
    reasons.push({ knob: 'offloadActivations', message: 'block inputs stay on the GPU: offloading them to host memory would not buy a longer sequence or a bigger batch here.' })
  }
  return reasons
}
