/**
 * The trainer's event stream (DESIGN.md §2.2): one JSON object per line on the Python
 * trainer's stdout; any other line is a log line. This zod schema is the contract;
 * docs/events.md documents it and python/tests check the trainer's output against it.
 * Byte counts are bytes; times are Unix epoch milliseconds (`t`).
 */
import { z } from 'zod'
import { DEVICES, METHODS } from '../planner/fields.ts'
import { PARALLELISMS, WEIGHTS_MODES } from './trainer-choices.ts'

const bytes = z.number().int().nonnegative()

/** Memory as the trainer measured it at the end of a step. */
export const memorySample = z.object({
  /** Live tensor bytes now (CUDA: memory_allocated; CPU: tracked live tensor bytes). */
  allocatedBytes: bytes,
  /** Allocator-held bytes (CUDA: memory_reserved; CPU: equals allocatedBytes). */
  reservedBytes: bytes,
  /** Peak live tensor bytes since the run started (CUDA: max_memory_allocated). */
  peakAllocatedBytes: bytes,
  /** Device-level used bytes (CUDA: NVML used; CPU: process RSS). */
  deviceUsedBytes: bytes,
  /** Process resident set size, when known. */
  rssBytes: bytes.optional(),
})

const base = {
  t: z.number(),
  /** The rank that sent it, on every event of a distributed run (torchrun); absent for one process. */
  rank: z.number().int().nonnegative().optional(),
}

export const startEvent = z.object({
  ...base,
  type: z.literal('start'),
  device: z.enum(DEVICES),
  deviceName: z.string().optional(),
  model: z.object({ name: z.string(), params: z.number().int().nonnegative() }),
  method: z.enum(METHODS),
  /** What the matmuls run in, after the CPU capability decision (python/headroom_runtime/_device.py). */
  computeDtype: z.enum(['float32', 'bfloat16', 'float16']).optional(),
  totalSteps: z.number().int().nonnegative(),
  /** Number of training examples after filtering and truncation. */
  examples: z.number().int().nonnegative().optional(),
  trainableParams: z.number().int().nonnegative().optional(),
  /** The resolved configuration the trainer runs with (sections of training_config). */
  config: z.record(z.string(), z.unknown()),
  /**
   * The planner's worst case at the configured max_length (every batch padded to it), passed to
   * the trainer by the supervisor and echoed back. Not the run's prediction: that is known only
   * once a batch is seen (step.predictedPeakBytes, summary.predictedPeakBytes).
   */
  predicted: z.object({ peakAllocatedBytes: bytes, peakBytes: bytes.optional() }).nullable().optional(),
  resumedFromStep: z.number().int().nonnegative().optional(),
  /** Distributed runs: ranks in the run and how the model is spread over them. */
  ranks: z.number().int().positive().optional(),
  parallelism: z.enum(PARALLELISMS).optional(),
  /** The effective batch = perDeviceBatch x ranks x gradientAccumulation (examples per optimizer step). */
  perDeviceBatch: z.number().int().positive().optional(),
  gradientAccumulation: z.number().int().positive().optional(),
  effectiveBatch: z.number().int().positive().optional(),
  /** Where the base's weights came from (train.py --weights); `random`: built from the config, the loss means nothing. */
  weights: z
    .object({ mode: z.enum(WEIGHTS_MODES), source: z.enum(['pretrained', 'random']), configFrom: z.string().optional(), tokenizer: z.string().optional(), note: z.string().optional() })
    .optional(),
})

export const stepEvent = z.object({
  ...base,
  type: z.literal('step'),
  step: z.number().int().positive(),
  totalSteps: z.number().int().nonnegative(),
  loss: z.number(),
  lr: z.number(),
  /** Tokens in this step's batch (non-padding). */
  tokens: z.number().int().nonnegative(),
  /** Sequence length of this step's batch after padding. */
  seqLen: z.number().int().nonnegative().optional(),
  tokensPerSecond: z.number().nonnegative(),
  epoch: z.number().nonnegative().optional(),
  memory: memorySample,
  /**
   * Added by the supervisor, never by the trainer: the planner's peak for the longest batch
   * trained so far (micro-batch x longest seqLen seen), the run's one prediction.
   */
  predictedPeakBytes: bytes.optional(),
})

export const evalEvent = z.object({
  ...base,
  type: z.literal('eval'),
  step: z.number().int().nonnegative(),
  loss: z.number(),
})

export const checkpointEvent = z.object({
  ...base,
  type: z.literal('checkpoint'),
  step: z.number().int().nonnegative(),
  path: z.string(),
  /** Why it was written: the save strategy, or a signal (preemption). */
  reason: z.enum(['save_strategy', 'signal', 'final']).optional(),
})

export const oomEvent = z.object({
  ...base,
  type: z.literal('oom'),
  step: z.number().int().nonnegative(),
  seqLen: z.number().int().nonnegative(),
  batch: z.number().int().nonnegative(),
  message: z.string(),
  /** What was already tried before giving up (e.g. `empty_cache`). */
  tried: z.array(z.string()),
})

export const errorEvent = z.object({
  ...base,
  type: z.literal('error'),
  /** config: bad training_config; data: bad dataset; model: cannot load model; internal: a bug. */
  kind: z.enum(['config', 'data', 'model', 'oom', 'signal', 'internal']),
  message: z.string(),
  /** The config key or file location at fault, e.g. `DatasetConfig.dataset_path` or `data.jsonl:17`. */
  path: z.string().optional(),
})

/** Run states (src/runtime/lifecycle.ts holds the transitions). lost: the supervisor died without recording an end. */
export const runState = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled', 'oom', 'preempted', 'lost'])
export type RunState = z.infer<typeof runState>

export const runSummary = z.object({
  state: runState,
  steps: z.number().int().nonnegative(),
  firstLoss: z.number().nullable(),
  lastLoss: z.number().nullable(),
  adapterDir: z.string().nullable(),
  device: z.enum(DEVICES),
  /** The planner's peak for the longest batch the run really trained on (batch x longest seq seen); null before any batch. */
  predictedPeakBytes: bytes.nullable(),
  /** The planner's worst case at the configured max_length, beside it (optional for older reporters). */
  predictedMaxLengthPeakBytes: bytes.nullable().optional(),
  measuredPeakBytes: bytes.nullable(),
  /** Ranks in the run (1 for one process) and each rank's measured peak, in rank order (null: not measured). */
  ranks: z.number().int().positive().optional(),
  measuredPeakBytesPerRank: z.array(bytes).nullable().optional(),
  /**
   * Non-padding tokens per second over the run's steady steps: after its first step, outside the
   * CPU steps whose memory is measured (python/headroom_runtime/_throughput.py); null before any step.
   */
  tokensPerSecond: z.number().nonnegative().nullable().optional(),
})
export type RunSummary = z.infer<typeof runSummary>

export const doneEvent = z.object({
  ...base,
  type: z.literal('done'),
  summary: runSummary.partial({ predictedPeakBytes: true }).extend({ seconds: z.number().nonnegative().optional() }),
})

export const trainerEvent = z.discriminatedUnion('type', [
  startEvent,
  stepEvent,
  evalEvent,
  checkpointEvent,
  oomEvent,
  errorEvent,
  doneEvent,
])
export type TrainerEvent = z.infer<typeof trainerEvent>
export type StepEvent = z.infer<typeof stepEvent>
export type StartEvent = z.infer<typeof startEvent>

/**
 * Classifies one stdout line: a valid event, or a log line. A line that looks like JSON but
 * fails the schema is reported as `invalid` so contract drift is loud, not silent.
 */
export function parseEventLine(
  line: string,
): { kind: 'event'; event: TrainerEvent } | { kind: 'log'; line: string } | { kind: 'invalid'; line: string; error: string } {
  const trimmed = line.trim()
  if (!trimmed.startsWith('{')) return { kind: 'log', line }
  let raw: unknown
  try {
    raw = JSON.parse(trimmed)
  } catch {
    return { kind: 'log', line }
  }
  const parsed = trainerEvent.safeParse(raw)
  if (parsed.success) return { kind: 'event', event: parsed.data }
  return { kind: 'invalid', line, error: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') }
}
