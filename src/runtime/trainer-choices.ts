/**
 * The choices of the trainer's flags (python -m headroom_runtime.train --device/--method/--parallelism/--weights), once:
 * `headroom tune`'s options, POST /v1/runs' schema, the event schema and the supervisor's types derive from these.
 * test/runtime/trainer-choices.test.ts compares them with train.py's argparse choices, so the two sides cannot drift.
 * (--loss's and --parallelism's choices are plan fields too: planner/fields.ts holds them.)
 */
import { PARALLELISMS } from '../planner/fields.ts'

/** train.py --device: `auto` takes a GPU when torch can use one. */
export const DEVICE_CHOICES = ['auto', 'cpu', 'cuda'] as const
export type DeviceChoice = (typeof DEVICE_CHOICES)[number]

/** train.py --method: `auto` follows the config (4/8-bit quantization → qlora, else lora). */
export const METHOD_CHOICES = ['auto', 'lora', 'qlora', 'full'] as const
export type MethodChoice = (typeof METHOD_CHOICES)[number]

/** train.py --parallelism, under torchrun: the plan field's choices (how a multi-GPU plan spreads the model). */
export { PARALLELISMS } from '../planner/fields.ts'
export type Parallelism = (typeof PARALLELISMS)[number]

/** train.py --weights. */
export const WEIGHTS_MODES = ['pretrained', 'auto', 'random'] as const
export type WeightsMode = (typeof WEIGHTS_MODES)[number]
