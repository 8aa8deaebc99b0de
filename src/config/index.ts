/**
 * The tuning config's public surface: KAITO's training_config schema, the parser (with
 * file:line:column issues), the rules, `checkConfig` and the mapping to the planner's input.
 * @module
 */
export {
  trainingConfigSchema,
  tuningDocumentSchema,
  SECTION_SCHEMAS,
  SECTION_NAMES,
  TORCH_DTYPES,
  HEADROOM_ONLY_FIELDS,
  RENAMED_FIELDS,
  REMOVED_FIELDS,
  DEPRECATED_FIELDS,
} from './schema.ts'
export type {
  TrainingConfig,
  TuningDocument,
  SectionName,
  ModelConfig,
  QuantizationConfig,
  LoraConfig,
  TrainingArguments,
  DatasetConfig,
  DataCollator,
} from './schema.ts'
export { parseTuningConfig, loadTuningConfig, readTuningFile, MAX_ALIAS_COUNT } from './parse.ts'
export type { ParseResult, ParseTuningOptions, TuningUnit, WorkspaceInfo } from './parse.ts'
export { RULES, runRules } from './rules.ts'
export type { Rule, RuleContext, Target, TuningMethod } from './rules.ts'
export { toPlanInput, RUNTIME_DEFAULTS } from './plan-input.ts'
export type { PlanRequestOptions } from './plan-input.ts'
export { decode, decodeExplained, encode, TORCH_DTYPE_NAMES, ATTN_IMPLEMENTATIONS, OPTIM_NAMES } from './codec.ts'
export type { DecodeContext, Decoded, Knob, Sections } from './codec.ts'
export { checkConfig } from './check.ts'
export type { CheckOptions, CheckResult } from './check.ts'
export { renderTuningConfigMap } from './render.ts'
export type { RenderOptions } from './render.ts'
export { LORA_PARAMS_TEMPLATE, QLORA_PARAMS_TEMPLATE, DEFAULT_TEMPLATES } from './templates.ts'
export { generateTuningConfigMap, INIT_SAFETY_MARGIN } from './generate.ts'
export type { GenerateOptions } from './generate.ts'
