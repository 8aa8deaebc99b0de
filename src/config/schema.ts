/**
 * The zod schema of KAITO's `training_config`: six sections, each listing the fields that the
 * Python side (KAITO v0.12.0's base image) accepts. Field lists come from KAITO's
 * `presets/workspace/tuning/text-generation/cli.py` dataclasses, transformers 5.x
 * `TrainingArguments` + TRL 1.x `SFTConfig`, peft 0.11.1 `LoraConfig` and transformers
 * `BitsAndBytesConfig` / `DataCollatorForLanguageModeling` (docs/kaito-compat.md).
 *
 * Which keys a section accepts is not decided here: it is the list the Python trainer accepts,
 * read from the installed libraries into trainer-fields.json (trainer-fields.ts). The shapes
 * below type the keys Headroom checks (memory knobs and the common fields); every other key
 * the trainer accepts is let through unchecked, and a typed key the trainer refuses fails
 * test/config/trainer-contract.test.ts.
 *
 * Objects are strict because KAITO's HfArgumentParser raises on any unknown key. Parsing never
 * fills defaults in (rules must see what the user wrote); `meta({default})` records what the
 * runtime uses when a key is absent, so editors can show it, and RUNTIME_DEFAULTS repeats the
 * memory knobs for the planner.
 */
import { z } from 'zod'
import { TRAINER_FIELDS } from './trainer-fields.ts'

/** Strings `getattr(torch, name)` resolves to a floating dtype (KAITO's ModelConfig.__post_init__). */
export const TORCH_DTYPES = ['float32', 'float', 'float16', 'half', 'bfloat16', 'float64', 'double'] as const

const str = () => z.string()
const bool = () => z.boolean()
const int = () => z.int()
const num = () => z.number()
const strList = () => z.array(z.string())
const dict = () => z.record(z.string(), z.unknown())
const opt = <T extends z.ZodType>(t: T, description?: string, dflt?: unknown) => {
  const meta: Record<string, unknown> = {}
  if (description) meta.description = description
  if (dflt !== undefined) meta.default = dflt
  return (Object.keys(meta).length ? t.meta(meta) : t).optional()
}

/**
 * A section's schema: every key the trainer accepts (trainer-fields.json), typed where `typed`
 * says how, and nothing else. The static type lists the typed keys; the rest are `unknown`.
 */
function trainerSection<S extends z.ZodRawShape>(name: string, typed: S): z.ZodObject<S, z.core.$strict> {
  const accepted = TRAINER_FIELDS.sections[name]
  if (!accepted) throw new Error(`trainer-fields.json has no section ${name}: rerun scripts/gen-trainer-fields.ts`)
  const untyped: Record<string, z.ZodType> = {}
  for (const key of accepted) {
    if (!(key in typed)) untyped[key] = z.unknown().meta({ description: `Accepted by the trainer (${name} of the installed libraries); Headroom does not check its value.` }).optional()
  }
  return z.strictObject({ ...typed, ...untyped }) as unknown as z.ZodObject<S, z.core.$strict>
}

export const modelConfigSchema = trainerSection('ModelConfig', {
  pretrained_model_name_or_path: opt(str(), 'Model directory or hub id; KAITO mounts the preset at /workspace/tfs/weights.', '/workspace/tfs/weights'),
  state_dict: opt(dict()),
  cache_dir: opt(str()),
  force_download: opt(bool(), undefined, false),
  proxies: opt(z.record(z.string(), z.string())),
  output_loading_info: opt(bool(), undefined, false),
  local_files_only: opt(bool(), 'KAITO templates set true: weights are pre-pulled into the pod.', false),
  revision: opt(str(), undefined, 'main'),
  trust_remote_code: opt(bool(), undefined, false),
  torch_dtype: opt(z.enum(TORCH_DTYPES), 'Memory knob: dtype of the unquantized weights (bfloat16 halves float32).'),
  device_map: opt(z.union([str(), z.record(z.string(), z.union([z.string(), z.int()]))]), undefined, 'auto'),
  chat_template: opt(str(), 'A Jinja file path or an inline template.'),
  // Headroom extension: KAITO's ModelConfig dataclass has no such field (see HEADROOM_ONLY_FIELDS).
  attn_implementation: opt(
    z.enum(['eager', 'sdpa', 'flash_attention_2', 'flash_attention_3', 'flex_attention']),
    'Memory knob (Headroom runtime only): eager keeps heads x seq^2 attention scores; sdpa and flash do not.',
    'sdpa',
  ),
})

export const quantizationConfigSchema = trainerSection('QuantizationConfig', {
  quant_method: opt(z.literal('bitsandbytes'), undefined, 'bitsandbytes'),
  load_in_8bit: opt(bool(), 'Memory knob: LLM.int8 weights (about 1 byte per parameter).', false),
  load_in_4bit: opt(bool(), 'Memory knob: 4-bit weights (QLoRA, about 0.5 byte per parameter).', false),
  llm_int8_threshold: opt(num().min(0), undefined, 6.0),
  llm_int8_skip_modules: opt(strList()),
  llm_int8_enable_fp32_cpu_offload: opt(bool(), undefined, false),
  llm_int8_has_fp16_weight: opt(bool(), undefined, false),
  bnb_4bit_compute_dtype: opt(z.enum(TORCH_DTYPES), 'dtype the 4-bit weights are dequantized to for matmuls.', 'float32'),
  bnb_4bit_quant_type: opt(z.enum(['fp4', 'nf4']), 'Memory knob: nf4 or fp4 (same size; nf4 is QLoRA\'s).', 'fp4'),
  bnb_4bit_use_double_quant: opt(bool(), 'Memory knob: quantizes the absmax constants too (about 0.37 bit per parameter saved).', false),
  bnb_4bit_quant_storage: opt(z.enum(['uint8', 'float16', 'bfloat16', 'float32', 'int8']), undefined, 'uint8'),
})

const LORA_TASK_TYPES = ['CAUSAL_LM', 'SEQ_CLS', 'SEQ_2_SEQ_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'] as const

export const loraConfigSchema = trainerSection('LoraConfig', {
  r: opt(int().positive(), 'Memory knob: adapter rank; adapter size grows linearly with it.', 8),
  target_modules: opt(
    z.union([z.array(z.string()).min(1), z.string()]),
    'Memory knob: leaf module names (e.g. qkv_proj), a regex, or "all-linear".',
  ),
  exclude_modules: opt(z.union([strList(), str()]), 'Module names or a regex that target_modules must not match.'),
  lora_alpha: opt(num().positive(), undefined, 8),
  lora_dropout: opt(num().min(0).lt(1), 'Memory knob (small): a dropout mask per adapted input when > 0.', 0.0),
  fan_in_fan_out: opt(bool(), undefined, false),
  bias: opt(z.enum(['none', 'all', 'lora_only']), undefined, 'none'),
  use_rslora: opt(bool(), undefined, false),
  use_dora: opt(bool(), undefined, false),
  modules_to_save: opt(strList()),
  init_lora_weights: opt(z.union([bool(), z.enum(['gaussian', 'eva', 'olora', 'pissa', 'pissa_niter_16', 'loftq', 'corda'])]), undefined, true),
  layers_to_transform: opt(z.union([int().min(0), z.array(int().min(0))])),
  layers_pattern: opt(z.union([str(), strList()])),
  rank_pattern: opt(z.record(z.string(), int().positive())),
  alpha_pattern: opt(z.record(z.string(), num())),
  megatron_config: opt(dict()),
  megatron_core: opt(str(), undefined, 'megatron.core'),
  loftq_config: opt(dict()),
  layer_replication: opt(z.array(z.tuple([int(), int()]))),
  task_type: opt(z.enum(LORA_TASK_TYPES)),
  peft_type: opt(z.literal('LORA')),
  inference_mode: opt(bool(), undefined, false),
  base_model_name_or_path: opt(str()),
  revision: opt(str()),
  auto_mapping: opt(dict()),
})

const INTERVALS = ['no', 'steps', 'epoch'] as const
const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical', 'passive'] as const

export const trainingArgumentsSchema = trainerSection('TrainingArguments', {
  output_dir: opt(str(), 'Where the adapter is written; KAITO mounts the results volume here (under /mnt).', 'trainer_output'),
  per_device_train_batch_size: opt(int().min(1), 'Memory knob: micro-batch per GPU; activations and logits grow linearly with it.', 8),
  num_train_epochs: opt(num().positive(), undefined, 3),
  max_steps: opt(int().min(-1), undefined, -1),
  learning_rate: opt(num().positive(), undefined, 2e-5),
  lr_scheduler_type: opt(str(), undefined, 'linear'),
  lr_scheduler_kwargs: opt(z.union([dict(), str()])),
  warmup_steps: opt(num().min(0), undefined, 0),
  optim: opt(str(), 'Memory knob: adamw_* keeps 8 bytes per trainable parameter; *_8bit keeps 2.', 'adamw_torch_fused'),
  optim_args: opt(str()),
  weight_decay: opt(num().min(0), undefined, 0),
  adam_beta1: opt(num().min(0).lt(1), undefined, 0.9),
  adam_beta2: opt(num().min(0).lt(1), undefined, 0.999),
  adam_epsilon: opt(num().positive(), undefined, 1e-8),
  optim_target_modules: opt(z.union([str(), strList()])),
  gradient_accumulation_steps: opt(int().min(1), 'Raises the effective batch without raising memory.', 1),
  average_tokens_across_devices: opt(bool(), undefined, true),
  max_grad_norm: opt(num().min(0), undefined, 1.0),
  label_smoothing_factor: opt(num().min(0).lt(1), undefined, 0),
  bf16: opt(bool(), 'bfloat16 mixed precision; TRL turns it on unless fp16 is set. Needs compute capability >= 8.0.'),
  fp16: opt(bool(), undefined, false),
  bf16_full_eval: opt(bool(), undefined, false),
  fp16_full_eval: opt(bool(), undefined, false),
  tf32: opt(bool()),
  gradient_checkpointing: opt(bool(), 'Memory knob: keeps one activation per layer and recomputes the rest (TRL default true).', true),
  gradient_checkpointing_kwargs: opt(z.union([dict(), str()])),
  torch_compile: opt(bool(), undefined, false),
  torch_compile_backend: opt(str()),
  torch_compile_mode: opt(str()),
  use_liger_kernel: opt(bool(), undefined, false),
  liger_kernel_config: opt(z.record(z.string(), z.boolean())),
  use_cache: opt(bool(), undefined, false),
  neftune_noise_alpha: opt(num().min(0)),
  torch_empty_cache_steps: opt(int().min(1)),
  auto_find_batch_size: opt(bool(), undefined, false),
  logging_strategy: opt(z.enum(INTERVALS), undefined, 'steps'),
  logging_steps: opt(num().positive(), undefined, 10),
  logging_first_step: opt(bool(), undefined, false),
  log_on_each_node: opt(bool(), undefined, true),
  logging_nan_inf_filter: opt(bool(), undefined, true),
  include_num_input_tokens_seen: opt(z.union([bool(), z.enum(['all', 'non_padding', 'no'])]), undefined, 'no'),
  log_level: opt(z.enum(LOG_LEVELS), undefined, 'passive'),
  log_level_replica: opt(z.enum(LOG_LEVELS), undefined, 'warning'),
  disable_tqdm: opt(bool()),
  report_to: opt(z.union([str(), strList()]), undefined, 'none'),
  run_name: opt(str()),
  project: opt(str(), undefined, 'huggingface'),
  trackio_space_id: opt(str()),
  eval_strategy: opt(z.enum(INTERVALS), undefined, 'no'),
  eval_steps: opt(num().positive()),
  eval_delay: opt(num().min(0), undefined, 0),
  per_device_eval_batch_size: opt(int().min(1), undefined, 8),
  prediction_loss_only: opt(bool(), undefined, false),
  eval_on_start: opt(bool(), undefined, false),
  eval_do_concat_batches: opt(bool(), undefined, true),
  eval_use_gather_object: opt(bool(), undefined, false),
  eval_accumulation_steps: opt(int().min(1)),
  include_for_metrics: opt(strList()),
  batch_eval_metrics: opt(bool(), undefined, false),
  save_only_model: opt(bool(), undefined, false),
  save_strategy: opt(z.enum(['no', 'steps', 'epoch', 'best']), undefined, 'steps'),
  save_steps: opt(num().positive(), undefined, 500),
  save_on_each_node: opt(bool(), undefined, false),
  save_total_limit: opt(int().min(0)),
  enable_jit_checkpoint: opt(bool(), undefined, false),
  push_to_hub: opt(bool(), undefined, false),
  hub_token: opt(str()),
  hub_private_repo: opt(bool()),
  hub_model_id: opt(str()),
  hub_strategy: opt(z.enum(['end', 'every_save', 'checkpoint', 'all_checkpoints']), undefined, 'every_save'),
  hub_always_push: opt(bool(), undefined, false),
  hub_revision: opt(str()),
  load_best_model_at_end: opt(bool(), undefined, false),
  metric_for_best_model: opt(str()),
  greater_is_better: opt(bool()),
  ignore_data_skip: opt(bool(), undefined, false),
  restore_callback_states_from_checkpoint: opt(bool(), undefined, false),
  full_determinism: opt(bool(), undefined, false),
  seed: opt(int().min(0), undefined, 42),
  data_seed: opt(int().min(0)),
  use_cpu: opt(bool(), undefined, false),
  accelerator_config: opt(z.union([dict(), str()])),
  parallelism_config: opt(dict()),
  dataloader_drop_last: opt(bool(), undefined, false),
  dataloader_num_workers: opt(int().min(0), undefined, 0),
  dataloader_pin_memory: opt(bool(), undefined, true),
  dataloader_persistent_workers: opt(bool(), undefined, false),
  dataloader_prefetch_factor: opt(int().min(1)),
  remove_unused_columns: opt(bool(), undefined, true),
  label_names: opt(strList()),
  train_sampling_strategy: opt(z.enum(['random', 'sequential', 'group_by_length']), undefined, 'random'),
  length_column_name: opt(str(), undefined, 'length'),
  ddp_find_unused_parameters: opt(bool(), 'KAITO templates set false to avoid errors in distributed training.'),
  ddp_bucket_cap_mb: opt(int().min(1)),
  ddp_broadcast_buffers: opt(bool()),
  ddp_backend: opt(z.enum(['nccl', 'gloo', 'mpi', 'xccl', 'hccl', 'cncl', 'mccl'])),
  ddp_timeout: opt(int().positive(), undefined, 1800),
  fsdp: opt(z.union([str(), strList()])),
  fsdp_config: opt(z.union([dict(), str()])),
  deepspeed: opt(z.union([dict(), str()])),
  debug: opt(z.union([str(), strList()]), undefined, ''),
  skip_memory_metrics: opt(bool(), undefined, true),
  do_train: opt(bool(), undefined, false),
  do_eval: opt(bool(), undefined, false),
  do_predict: opt(bool(), undefined, false),
  resume_from_checkpoint: opt(str()),
  warmup_ratio: opt(num().min(0).max(1)),
  local_rank: opt(int(), undefined, -1),
  // TRL SFTConfig fields
  model_init_kwargs: opt(z.union([dict(), str()])),
  chat_template_path: opt(str()),
  dataset_text_field: opt(str(), undefined, 'text'),
  dataset_kwargs: opt(dict()),
  dataset_num_proc: opt(int().min(1)),
  eos_token: opt(str()),
  max_length: opt(int().min(1), 'Memory knob: tokens per sequence after truncation; activations grow with it.', 1024),
  truncation_mode: opt(z.enum(['keep_start', 'keep_end']), undefined, 'keep_start'),
  shuffle_dataset: opt(bool(), undefined, false),
  packing: opt(bool(), 'Memory knob: packs samples into max_length blocks (every sequence is then full length).', false),
  packing_strategy: opt(z.enum(['bfd', 'bfd_split', 'wrapped']), undefined, 'bfd'),
  padding_free: opt(bool(), undefined, false),
  pad_to_multiple_of: opt(int().min(1)),
  eval_packing: opt(bool()),
  completion_only_loss: opt(bool()),
  assistant_only_loss: opt(bool(), undefined, false),
  loss_type: opt(z.enum(['nll', 'dft', 'chunked_nll']), 'Memory knob: chunked_nll (the default) avoids materialising all logits at once.', 'chunked_nll'),
  activation_offloading: opt(bool(), undefined, false),
  pad_token: opt(str()),
})

export const datasetConfigSchema = trainerSection('DatasetConfig', {
  dataset_path: opt(str(), 'Dataset file under /mnt (KAITO joins it under /mnt).'),
  dataset_extension: opt(str()),
  shuffle_dataset: opt(bool(), undefined, true),
  shuffle_seed: opt(int().min(0), undefined, 42),
  context_column: opt(str()),
  response_column: opt(str(), undefined, 'text'),
  messages_column: opt(str()),
  train_test_split: opt(num().gt(0).max(1), 'Fraction used for training; 1 = all data (the templates set 1).', 0.8),
})

export const dataCollatorSchema = trainerSection('DataCollator', {
  mlm: opt(bool(), 'Forced to false by KAITO for tokenizers without a mask token (every causal LM).', true),
  mlm_probability: opt(num().gt(0).lt(1), undefined, 0.15),
  mask_replace_prob: opt(num().min(0).max(1), undefined, 0.8),
  random_replace_prob: opt(num().min(0).max(1), undefined, 0.1),
  pad_to_multiple_of: opt(int().min(1)),
  return_tensors: opt(z.enum(['pt', 'tf', 'np']), undefined, 'pt'),
  seed: opt(int().min(0)),
  whole_word_mask: opt(bool(), undefined, false),
})

/** The six sections KAITO's webhook accepts, in KAITO's template order. */
export const SECTION_SCHEMAS = {
  ModelConfig: modelConfigSchema,
  QuantizationConfig: quantizationConfigSchema,
  LoraConfig: loraConfigSchema,
  TrainingArguments: trainingArgumentsSchema,
  DataCollator: dataCollatorSchema,
  DatasetConfig: datasetConfigSchema,
} as const

export type SectionName = keyof typeof SECTION_SCHEMAS
export const SECTION_NAMES = Object.keys(SECTION_SCHEMAS) as SectionName[]

/** `training_config`: every section optional (KAITO requires none). */
export const trainingConfigSchema = z.strictObject({
  ModelConfig: modelConfigSchema.optional(),
  QuantizationConfig: quantizationConfigSchema.optional(),
  LoraConfig: loraConfigSchema.optional(),
  TrainingArguments: trainingArgumentsSchema.optional(),
  DataCollator: dataCollatorSchema.optional(),
  DatasetConfig: datasetConfigSchema.optional(),
})

/** The document inside `data["training_config.yaml"]` (or a bare file). */
export const tuningDocumentSchema = z
  .object({ training_config: trainingConfigSchema })
  .meta({
    title: 'KAITO training_config.yaml',
    description:
      'The document KAITO mounts at /mnt/config/training_config.yaml (ConfigMap key training_config.yaml). Generated by scripts/gen-schema.ts from src/config/schema.ts.',
  })

export type TrainingConfig = z.infer<typeof trainingConfigSchema>
export type TuningDocument = z.infer<typeof tuningDocumentSchema>
export type ModelConfig = z.infer<typeof modelConfigSchema>
export type QuantizationConfig = z.infer<typeof quantizationConfigSchema>
export type LoraConfig = z.infer<typeof loraConfigSchema>
export type TrainingArguments = z.infer<typeof trainingArgumentsSchema>
export type DatasetConfig = z.infer<typeof datasetConfigSchema>
export type DataCollator = z.infer<typeof dataCollatorSchema>

/** Fields Headroom's runtime reads that KAITO's dataclasses do not define (an error for a KAITO cluster). */
export const HEADROOM_ONLY_FIELDS: Record<string, string> = {
  'ModelConfig.attn_implementation': 'KAITO v0.12.0 has no ModelConfig.attn_implementation',
  // Headroom's chunked cross-entropy (issue 13); KAITO's tuning runtime computes the full loss only.
  'TrainingArguments.loss_implementation': "KAITO v0.12.0 has no TrainingArguments.loss_implementation (its runtime computes the full loss; Headroom's trainer chunks it)",
}

/**
 * Names from older libraries, with the name the current stack uses: the trainer refuses them
 * too, with the same fix (python/headroom_runtime/config.py RENAMED, via trainer-fields.json).
 */
export const RENAMED_FIELDS: Readonly<Record<string, { to: string; why: string }>> = TRAINER_FIELDS.renamed

/** Keys the installed libraries dropped with no new name, with what to do instead (config.py REMOVED). */
export const REMOVED_FIELDS: Readonly<Record<string, string>> = TRAINER_FIELDS.removed

/** Fields still accepted but ignored or deprecated by the runtime, with what to do instead. */
export const DEPRECATED_FIELDS: Record<string, string> = {
  'TrainingArguments.warmup_ratio': 'deprecated in transformers 5: use warmup_steps (a value below 1 is a ratio)',
  'TrainingArguments.pad_token': 'deprecated in TRL 1.1: set the tokenizer\'s pad_token instead',
  'DatasetConfig.context_column': 'declared but unused by KAITO since PR #460: the dataset goes to SFTTrainer unchanged',
  'DatasetConfig.response_column': 'declared but unused by KAITO since PR #460: the dataset goes to SFTTrainer unchanged',
  'DatasetConfig.messages_column': 'declared but unused by KAITO since PR #460: the dataset goes to SFTTrainer unchanged',
}

/** The field names of a section, for "did you mean". */
export function sectionFields(section: SectionName): string[] {
  return Object.keys(SECTION_SCHEMAS[section].shape)
}
