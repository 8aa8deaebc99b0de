/**
 * The supervisor's public contract: what `headroom tune`, the HTTP server and tests use to
 * start and follow a fine-tune. Implemented in supervisor.ts (the only file that spawns).
 */
import type { RunSummary, TrainerEvent } from './events.ts'
import type { LossImpl } from '../planner/types.ts'
import type { DistributedOptions } from './torchrun.ts'
import type { DeviceChoice, MethodChoice, WeightsMode } from './trainer-choices.ts'

export { WEIGHTS_MODES, type WeightsMode } from './trainer-choices.ts'

export type TuneOptions = {
  /** training_config YAML (ConfigMap or bare document); default: KAITO's qlora template adapted for the device. */
  config?: string
  /** Model directory, hub id, or omitted for the embedded tiny Phi-3. */
  model?: string
  /** Dataset path or URL; default: the dataset shipped in examples/. */
  data?: string
  /** Output directory; default: runs/<runId>. */
  output?: string
  maxSteps?: number
  device?: DeviceChoice
  /** Fine-tuning method; `auto` (default) follows the config: 4/8-bit quantization → qlora, else lora. */
  method?: MethodChoice
  /** A run id or run directory to continue from its last checkpoint. */
  resume?: string
  skipBadRows?: boolean
  /** Retry once with the planner's recommended configuration after an OOM. */
  autoFit?: boolean
  /** The levers (issue 13), passed to the trainer as --loss, --offload-activations, --packing; they override the config's keys. */
  loss?: LossImpl
  offloadActivations?: boolean
  packing?: boolean
  /**
   * Where the base's weights come from (train.py --weights): `pretrained` (default) needs the real
   * ones; `auto` builds random ones from the model's config when they are absent; `random` always
   * does. Random weights measure memory and speed; the loss means nothing.
   */
  weights?: WeightsMode
  runId?: string
  /** Extra environment for the trainer process. */
  env?: Record<string, string>
} & DistributedOptions


export interface RunHandle {
  readonly id: string
  readonly outputDir: string
  /** Every validated trainer event, in order. */
  on(kind: 'event', listener: (event: TrainerEvent) => void): this
  /** Trainer stdout/stderr lines that are not events. */
  on(kind: 'log', listener: (line: string) => void): this
  /** Sends SIGTERM (checkpoint, then exit) or SIGINT to the trainer. */
  cancel(signal?: 'SIGTERM' | 'SIGINT'): void
  /** Resolves when the trainer exits, with the run summary (never rejects for a failed run). */
  readonly done: Promise<RunSummary>
  /** The planner's pre-flight warning (oom-advice.ts preflightWarning): the worst case exceeds the device; else null. */
  readonly warning: string | null
}
