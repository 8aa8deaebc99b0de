/**
 * The plan fields: one table, the single truth for every door into the planner (DESIGN.md §1
 * "One truth per fact"). The commander options of `headroom plan`, the request and HTTP body
 * schemas, the defaults, the error messages, the planner's enum types, the command a
 * recommendation prints and the dashboard form (`GET /v1/plan-fields`) are all derived from
 * it. Pure data: no I/O.
 */
import { z } from 'zod'
import type { Dtype, Quant } from '../units.ts'
import { LOSS_CHUNK_TOKENS } from './logits.ts'

export const PHASES = ['load', 'train', 'inference'] as const
export const METHODS = ['full', 'lora', 'qlora'] as const
export const DTYPES = ['fp32', 'fp16', 'bf16'] as const
export const QUANTS = ['none', 'int8', 'nf4', 'fp4'] as const
export const ATTENTIONS = ['eager', 'sdpa', 'flash'] as const
export const OPTIMIZERS = ['adamw', 'adamw_8bit', 'paged_adamw_8bit', 'sgd'] as const
export const DEVICES = ['cuda', 'cpu'] as const
export const PARALLELISMS = ['ddp', 'fsdp'] as const
export const LOSSES = ['full', 'chunked'] as const

// units.ts owns Dtype and Quant (bytes per element); the table must list exactly those values.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
export const DTYPES_MATCH_UNITS: Same<(typeof DTYPES)[number], Dtype> = true
export const QUANTS_MATCH_UNITS: Same<(typeof QUANTS)[number], Quant> = true

/**
 * How a field is typed on the command line and in JSON: `choice` (one of `choices`), `boolean`
 * (`--x` / `--no-x`), `count` (a whole number from 1 to a bound), `number` (a real number), `string`, or
 * `list` (comma-separated on the command line, a string or an array in JSON). A number's own
 * range is its schema's (loraDropout: 0 <= p < 1).
 */
export type FieldKind = 'choice' | 'boolean' | 'count' | 'number' | 'string' | 'list'

export type PlanField = {
  /** The JSON field name (camelCase), also the key in the table. */
  name: string
  /** The CLI flag; a boolean also gets `--no-<flag>`. */
  flag: `--${string}`
  /** The `<value>` placeholder in help. */
  arg?: string
  kind: FieldKind
  choices?: readonly string[]
  /** What the resolver uses when neither the request nor --config sets it; undefined when it depends on other fields. */
  default?: string | number | boolean
  /** Said in help when the default depends on other fields. */
  defaultNote?: string
  help: string
  /** Completes "<field> must be ...". */
  expect: string
  /** Values a test (and the dashboard) can try: every choice, both booleans, three numbers, a few strings. */
  samples: readonly (string | number | boolean)[]
  /** Shown in the dashboard form's plan explorer (the catalog selects are filled from /v1/models and /v1/gpus). */
  form?: { label: string; catalog?: 'models' | 'gpus'; min?: number; max?: number }
}

// Upper bounds keep absurd requests out of the planner (a plan of 1e11 sequences is a typo, not a
// question); each is far above any real job: 64k LoRA rank, 64k sequences, 10M tokens, 4,096 GPUs.
const count = (max: number) => z.number().int().min(1).max(max)

// A field's zod type is kept with its literal types so `PlanRequest` is inferred from the table.
function field<const S extends z.ZodType, const F extends Omit<PlanField, 'name'>>(schema: S, f: F): F & { schema: S } {
  return { ...f, schema }
}

/**
 * Every plan field, in the order help and printed commands list them. The seed's case is the
 * default: KAITO's qlora-params template (nf4, double quant, bf16, r 8, alpha 8, batch 1) for
 * phi-3-mini-128k-instruct on an A100-80GB; seq 2048 is Headroom's choice (the seed saw 16-bit
 * LoRA stop near 3,500 tokens; 2,048 is a common fine-tuning length).
 */
export const PLAN_FIELDS = {
  model: field(z.string().min(1), {
    flag: '--model',
    arg: 'model',
    kind: 'string',
    default: 'phi-3-mini-128k-instruct',
    help: 'catalog id, path/to/config.json or hub id',
    expect: 'a catalog id, a config.json path or a hub id, e.g. phi-3-mini-128k-instruct',
    samples: ['phi-3-mini-128k-instruct', 'llama-3.1-8b', 'qwen2.5-0.5b-instruct'],
    form: { label: 'Model', catalog: 'models' },
  }),
  config: field(z.string().min(1), {
    flag: '--config',
    arg: 'file',
    kind: 'string',
    help: 'KAITO training_config or ConfigMap YAML; flags override it',
    expect: 'the path of a training_config or ConfigMap YAML file',
    samples: [],
  }),
  phase: field(z.enum(PHASES), {
    flag: '--phase',
    arg: 'phase',
    kind: 'choice',
    choices: PHASES,
    default: 'train',
    help: 'load = model loaded, before the first step; inference = generate for --batch sequences of --seq tokens (weights + KV cache + prefill)',
    expect: `one of ${PHASES.join(', ')}`,
    samples: PHASES,
  }),
  method: field(z.enum(METHODS), {
    flag: '--method',
    arg: 'method',
    kind: 'choice',
    choices: METHODS,
    default: 'qlora',
    help: 'fine-tuning method',
    expect: `one of ${METHODS.join(', ')}`,
    samples: METHODS,
    form: { label: 'Method' },
  }),
  dtype: field(z.enum(DTYPES), {
    flag: '--dtype',
    arg: 'dtype',
    kind: 'choice',
    choices: DTYPES,
    default: 'bf16',
    help: 'weights and compute dtype; alone, the unquantized precision',
    expect: `one of ${DTYPES.join(', ')}`,
    samples: DTYPES,
    form: { label: 'Precision' },
  }),
  quant: field(z.enum(QUANTS), {
    flag: '--quant',
    arg: 'quant',
    kind: 'choice',
    choices: QUANTS,
    // The seed's (KAITO's qlora template); the resolver uses it for qlora only.
    default: 'nf4',
    defaultNote: 'nf4 for qlora, none otherwise',
    help: 'bitsandbytes quantization of the base weights',
    expect: `one of ${QUANTS.join(', ')}`,
    samples: QUANTS,
  }),
  doubleQuant: field(z.boolean(), {
    flag: '--double-quant',
    kind: 'boolean',
    default: true,
    defaultNote: 'on for the seed case, off with an explicit quant',
    help: 'quantize the 4-bit block scales too (off: fp32 scales)',
    expect: 'true or false',
    samples: [true, false],
  }),
  rank: field(count(65_536), {
    flag: '--rank',
    arg: 'n',
    kind: 'count',
    default: 8,
    help: 'LoRA rank',
    expect: 'a whole number from 1 to 65,536, e.g. 8',
    samples: [4, 16, 64],
    form: { label: 'LoRA rank', min: 1, max: 1024 },
  }),
  alpha: field(z.number().positive().max(1_000_000), {
    flag: '--alpha',
    arg: 'n',
    kind: 'number',
    default: 8,
    help: 'LoRA alpha',
    expect: 'a number above 0 and at most 1,000,000, e.g. 16',
    samples: [4, 16, 32],
  }),
  // 0 is KAITO's: its lora-params and qlora-params templates both set lora_dropout: 0.0 (the seed's case).
  loraDropout: field(z.number().min(0).lt(1), {
    flag: '--lora-dropout',
    arg: 'p',
    kind: 'number',
    default: 0,
    help: "LoRA dropout probability (KAITO's templates: 0); above 0 keeps a dropped input copy and mask per adapted module",
    expect: 'a number from 0 up to but not including 1, e.g. 0.05',
    samples: [0, 0.05, 0.1],
  }),
  targets: field(z.union([z.string(), z.array(z.string())]), {
    flag: '--targets',
    arg: 'modules',
    kind: 'list',
    defaultNote: "the model's usual LoRA targets",
    help: 'LoRA target modules, comma-separated, or all-linear',
    expect: 'module names separated by commas, e.g. qkv_proj,o_proj, or all-linear',
    samples: ['all-linear', 'qkv_proj,o_proj', 'o_proj,down_proj'],
  }),
  batch: field(count(65_536), {
    flag: '--batch',
    arg: 'n',
    kind: 'count',
    default: 1,
    help: 'micro-batch per device',
    expect: 'a whole number of sequences from 1 to 65,536, e.g. 1',
    samples: [1, 2, 8],
    form: { label: 'Batch', min: 1, max: 512 },
  }),
  seq: field(count(10_000_000), {
    flag: '--seq',
    arg: 'n',
    kind: 'count',
    default: 2048,
    help: 'tokens per sequence',
    expect: 'a whole number of tokens from 1 to 10,000,000, e.g. 2048',
    samples: [512, 4096, 16384],
    form: { label: 'Sequence length', min: 1 },
  }),
  gradientCheckpointing: field(z.boolean(), {
    flag: '--grad-checkpointing',
    kind: 'boolean',
    defaultNote: 'on for qlora (peft turns it on for k-bit models), off otherwise',
    help: 'recompute activations in backward (off: keep every activation)',
    expect: 'true or false',
    samples: [true, false],
    form: { label: 'Gradient checkpointing' },
  }),
  attention: field(z.enum(ATTENTIONS), {
    flag: '--attention',
    arg: 'impl',
    kind: 'choice',
    choices: ATTENTIONS,
    default: 'sdpa',
    help: 'attention implementation',
    expect: `one of ${ATTENTIONS.join(', ')}`,
    samples: ATTENTIONS,
    form: { label: 'Attention' },
  }),
  optimizer: field(z.enum(OPTIMIZERS), {
    flag: '--optimizer',
    arg: 'name',
    kind: 'choice',
    choices: OPTIMIZERS,
    default: 'adamw',
    help: 'optimizer',
    expect: `one of ${OPTIMIZERS.join(', ')}`,
    samples: OPTIMIZERS,
    form: { label: 'Optimizer' },
  }),
  gpu: field(z.string().min(1), {
    flag: '--gpu',
    arg: 'gpu',
    kind: 'string',
    default: 'A100-80GB',
    help: 'GPU name or Azure SKU, e.g. A100-80GB, Standard_NC24ads_A100_v4',
    expect: 'a GPU name or Azure SKU, e.g. A100-80GB or Standard_NC24ads_A100_v4',
    samples: ['A100-80GB', 'T4', 'Standard_NC48ads_A100_v4'],
    form: { label: 'GPU', catalog: 'gpus' },
  }),
  gpus: field(count(4_096), {
    flag: '--gpus',
    arg: 'n',
    kind: 'count',
    defaultNote: "the SKU's count, else 1",
    help: 'GPUs',
    expect: 'a whole number of GPUs from 1 to 4,096',
    samples: [1, 2, 8],
  }),
  parallelism: field(z.enum(PARALLELISMS), {
    flag: '--parallelism',
    arg: 'kind',
    kind: 'choice',
    choices: PARALLELISMS,
    // accelerate's default (and KAITO's) is DDP.
    default: 'ddp',
    help: 'multi-GPU strategy',
    expect: `one of ${PARALLELISMS.join(', ')}`,
    samples: PARALLELISMS,
  }),
  device: field(z.enum(DEVICES), {
    flag: '--device',
    arg: 'device',
    kind: 'choice',
    choices: DEVICES,
    default: 'cuda',
    help: 'cpu: no CUDA context or allocator slack',
    expect: `one of ${DEVICES.join(', ')}`,
    samples: DEVICES,
  }),
  // The levers of issue 13 (docs/memory-model.md, "Levers"); the trainer's flags of the same names.
  loss: field(z.enum(LOSSES), {
    flag: '--loss',
    arg: 'impl',
    kind: 'choice',
    choices: LOSSES,
    // transformers' ForCausalLMLoss over the whole b x s x V logits: what the trainer runs unless asked.
    default: 'full',
    help: `cross-entropy over the vocabulary: full (b x s x V fp32 logits) or chunked (${LOSS_CHUNK_TOKENS.toLocaleString('en-US')} tokens at a time, recomputed in backward)`,
    expect: `one of ${LOSSES.join(', ')}`,
    samples: LOSSES,
    form: { label: 'Loss' },
  }),
  offloadActivations: field(z.boolean(), {
    flag: '--offload-activations',
    kind: 'boolean',
    default: false,
    help: 'keep the checkpointed block inputs in pinned host memory (CUDA, with checkpointing); two blocks stay on the GPU',
    expect: 'true or false',
    samples: [true, false],
    form: { label: 'Offload activations' },
  }),
  packing: field(z.boolean(), {
    flag: '--packing',
    kind: 'boolean',
    default: false,
    help: 'padding-free packing of examples: no compute on padding; batch x seq is the token budget, the peak is unchanged',
    expect: 'true or false',
    samples: [true, false],
    form: { label: 'Packing' },
  }),
  // Written by `headroom sweep --calibrate --profile NAME` under the user's config dir (src/sweep/profiles.ts).
  deviceProfile: field(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), {
    flag: '--device-profile',
    arg: 'name',
    kind: 'string',
    help: 'overhead terms fitted by `headroom sweep --calibrate --profile NAME` on this device, instead of the published constants',
    expect: 'a profile name (letters, digits, dot, dash, underscore), e.g. cpu or A100-80GB',
    samples: [],
  }),
} as const

export type PlanFieldName = keyof typeof PLAN_FIELDS
export const PLAN_FIELD_NAMES = Object.keys(PLAN_FIELDS) as PlanFieldName[]

/** The table's entry for a field, with its name. */
export function planField(name: PlanFieldName): PlanField & { schema: z.ZodType } {
  return { name, ...PLAN_FIELDS[name] } as PlanField & { schema: z.ZodType }
}

type Shape = { [K in PlanFieldName]: z.ZodOptional<(typeof PLAN_FIELDS)[K]['schema']> }

/**
 * The plan request: every field optional (the resolver fills defaults after --config), strict
 * (an unknown key is an error).
 */
export const planRequest = z.strictObject(
  Object.fromEntries(PLAN_FIELD_NAMES.map((n) => [n, PLAN_FIELDS[n].schema.optional()])) as unknown as Shape,
)
export type PlanRequest = z.infer<typeof planRequest>

type StaticDefaults = {
  [K in PlanFieldName as (typeof PLAN_FIELDS)[K] extends { default: unknown } ? K : never]: (typeof PLAN_FIELDS)[K] extends { default: infer D } ? D : never
}

/** The fields whose default does not depend on other fields, e.g. `PLAN_DEFAULTS.seq === 2048`. */
export const PLAN_DEFAULTS = Object.fromEntries(
  PLAN_FIELD_NAMES.flatMap((n) => {
    const f: PlanField = planField(n)
    return f.default === undefined ? [] : [[n, f.default]]
  }),
) as StaticDefaults

/** How an edge names a field: `flags` on the command line (`--grad-checkpointing`), `fields` in JSON (`gradientCheckpointing`). */
export type FieldNames = 'flags' | 'fields'

/** `--grad-checkpointing` or `gradientCheckpointing`; a name not in the table is returned as is. */
export function fieldName(name: string, names: FieldNames = 'fields'): string {
  if (names === 'fields' || !(name in PLAN_FIELDS)) return name
  return PLAN_FIELDS[name as PlanFieldName].flag
}

/**
 * One field set to one value, as an edge writes it: `--seq 4096`, `--no-grad-checkpointing`;
 * or `seq: 4096`, `gradientCheckpointing: false`.
 */
export function fieldSetting(name: string, value: unknown, names: FieldNames = 'fields'): string {
  if (names === 'fields') return `${name}: ${JSON.stringify(value)}`
  const f = name in PLAN_FIELDS ? planField(name as PlanFieldName) : null
  const flag = f?.flag ?? `--${name}`
  if (f?.kind === 'boolean' || typeof value === 'boolean') return value ? flag : `--no-${flag.slice(2)}`
  return `${flag} ${Array.isArray(value) ? value.join(',') : String(value)}`
}

/**
 * A request as command-line arguments, in table order, e.g. `['--method', 'lora', '--no-grad-checkpointing']`.
 * @example flagArgs({ seq: 4096, gradientCheckpointing: true }) // ['--seq', '4096', '--grad-checkpointing']
 */
export function flagArgs(request: PlanRequest): string[] {
  const args: string[] = []
  for (const n of PLAN_FIELD_NAMES) {
    const value = request[n]
    if (value === undefined) continue
    const f = planField(n)
    if (f.kind === 'boolean') args.push(value ? f.flag : `--no-${f.flag.slice(2)}`)
    else args.push(f.flag, Array.isArray(value) ? value.join(',') : String(value))
  }
  return args
}

/** The table as JSON for clients (the dashboard form): everything but the zod types. */
export function planFieldsJson(): (Omit<PlanField, 'default'> & { default: string | number | boolean | null })[] {
  return PLAN_FIELD_NAMES.map((n) => {
    const { schema: _schema, ...rest } = planField(n)
    return { ...rest, default: rest.default ?? null }
  })
}
