/** Invalid tuning configs, table-driven: each case names the issue code and path it must raise. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Hardware } from '../../src/catalog/types.ts'
import type { Target, TuningMethod } from '../../src/config/rules.ts'
import { PHI3_MINI, T4 } from './arch-fixtures.ts'
import { bare, ruleIssues } from './helpers.ts'

type Case = {
  name: string
  yaml: string
  code: string
  path: string
  method?: TuningMethod
  target?: Target
  model?: typeof PHI3_MINI
  hardware?: Hardware
  /** Default error; warnings are listed separately. */
  severity?: 'error' | 'warning'
  /** Text the message must contain (the fix, the suggestion). */
  says?: string
}

const cases: Case[] = [
  { name: 'unknown section, close to a real one', yaml: bare('  LoRAConfig:\n    r: 8'), code: 'unknown_section', path: 'LoRAConfig', says: 'did you mean LoraConfig?' },
  { name: 'TokenizerParams (removed in KAITO PR #460)', yaml: bare('  TokenizerParams:\n    padding: true'), code: 'unknown_section', path: 'TokenizerParams' },
  { name: 'section is a list', yaml: bare('  LoraConfig: [1, 2]'), code: 'invalid_type', path: 'LoraConfig' },
  { name: 'misspelt LoraConfig key', yaml: bare('  LoraConfig:\n    lora_alpah: 16'), code: 'unknown_key', path: 'LoraConfig.lora_alpah', says: 'did you mean lora_alpha?' },
  { name: 'misspelt TrainingArguments key', yaml: bare('  TrainingArguments:\n    per_device_train_batchsize: 2'), code: 'unknown_key', path: 'TrainingArguments.per_device_train_batchsize', says: 'per_device_train_batch_size' },
  { name: 'unknown key with nothing close', yaml: bare('  DatasetConfig:\n    zzzzzzzz: 1'), code: 'unknown_key', path: 'DatasetConfig.zzzzzzzz' },
  { name: 'max_seq_length on a KAITO cluster', yaml: bare('  TrainingArguments:\n    max_seq_length: 2048'), target: 'cluster', code: 'renamed_key', path: 'TrainingArguments.max_seq_length', says: 'max_length' },
  { name: 'evaluation_strategy (removed in transformers 5)', yaml: bare('  TrainingArguments:\n    evaluation_strategy: "no"'), code: 'renamed_key', path: 'TrainingArguments.evaluation_strategy', says: 'eval_strategy' },
  { name: 'ModelConfig.dtype', yaml: bare('  ModelConfig:\n    dtype: bfloat16'), code: 'renamed_key', path: 'ModelConfig.dtype', says: 'torch_dtype' },
  { name: 'rank 0', yaml: bare('  LoraConfig:\n    r: 0'), code: 'out_of_range', path: 'LoraConfig.r', says: 'greater than 0' },
  { name: 'negative rank', yaml: bare('  LoraConfig:\n    r: -4'), code: 'out_of_range', path: 'LoraConfig.r' },
  { name: 'fractional rank', yaml: bare('  LoraConfig:\n    r: 2.5'), code: 'invalid_type', path: 'LoraConfig.r', says: 'whole number' },
  { name: 'quoted rank', yaml: bare('  LoraConfig:\n    r: "8"'), code: 'invalid_type', path: 'LoraConfig.r', says: 'the string "8"' },
  { name: 'dropout 1', yaml: bare('  LoraConfig:\n    lora_dropout: 1'), code: 'out_of_range', path: 'LoraConfig.lora_dropout', says: 'less than 1' },
  { name: 'negative dropout', yaml: bare('  LoraConfig:\n    lora_dropout: -0.1'), code: 'out_of_range', path: 'LoraConfig.lora_dropout' },
  { name: 'learning rate 0', yaml: bare('  TrainingArguments:\n    learning_rate: 0'), code: 'out_of_range', path: 'TrainingArguments.learning_rate' },
  { name: 'learning rate as a word', yaml: bare('  TrainingArguments:\n    learning_rate: fast'), code: 'invalid_type', path: 'TrainingArguments.learning_rate' },
  { name: 'learning rate infinite', yaml: bare('  TrainingArguments:\n    learning_rate: .inf'), code: 'invalid_type', path: 'TrainingArguments.learning_rate' },
  { name: 'batch 0', yaml: bare('  TrainingArguments:\n    per_device_train_batch_size: 0'), code: 'out_of_range', path: 'TrainingArguments.per_device_train_batch_size', says: 'at least 1' },
  { name: 'accumulation 0', yaml: bare('  TrainingArguments:\n    gradient_accumulation_steps: 0'), code: 'out_of_range', path: 'TrainingArguments.gradient_accumulation_steps' },
  { name: 'zero epochs', yaml: bare('  TrainingArguments:\n    num_train_epochs: 0'), code: 'out_of_range', path: 'TrainingArguments.num_train_epochs' },
  { name: 'split 0', yaml: bare('  DatasetConfig:\n    train_test_split: 0'), code: 'out_of_range', path: 'DatasetConfig.train_test_split' },
  { name: 'split above 1', yaml: bare('  DatasetConfig:\n    train_test_split: 1.5'), code: 'out_of_range', path: 'DatasetConfig.train_test_split', says: 'at most 1' },
  { name: 'negative shuffle seed', yaml: bare('  DatasetConfig:\n    shuffle_seed: -1'), code: 'out_of_range', path: 'DatasetConfig.shuffle_seed' },
  { name: 'mlm probability above 1', yaml: bare('  DataCollator:\n    mlm_probability: 1.5'), code: 'out_of_range', path: 'DataCollator.mlm_probability' },
  { name: 'torch_dtype shorthand', yaml: bare('  ModelConfig:\n    torch_dtype: bf16'), code: 'invalid_value', path: 'ModelConfig.torch_dtype', says: 'bfloat16' },
  { name: 'torch_dtype auto (not a torch attribute)', yaml: bare('  ModelConfig:\n    torch_dtype: auto'), code: 'invalid_value', path: 'ModelConfig.torch_dtype' },
  { name: 'unknown 4-bit type', yaml: bare('  QuantizationConfig:\n    load_in_4bit: true\n    bnb_4bit_quant_type: nf8'), code: 'invalid_value', path: 'QuantizationConfig.bnb_4bit_quant_type', says: 'nf4' },
  { name: 'unknown bias mode', yaml: bare('  LoraConfig:\n    bias: some'), code: 'invalid_value', path: 'LoraConfig.bias' },
  { name: 'unknown save strategy', yaml: bare('  TrainingArguments:\n    save_strategy: always'), code: 'invalid_value', path: 'TrainingArguments.save_strategy' },
  { name: 'empty target list', yaml: bare('  LoraConfig:\n    target_modules: []'), code: 'out_of_range', path: 'LoraConfig.target_modules', says: 'all-linear' },
  { name: 'target_modules a number', yaml: bare('  LoraConfig:\n    target_modules: 5'), code: 'invalid_type', path: 'LoraConfig.target_modules', says: 'list of module names' },
  { name: 'target_modules entry a number', yaml: bare('  LoraConfig:\n    target_modules: [q_proj, 7]'), code: 'invalid_type', path: 'LoraConfig.target_modules[1]' },
  { name: 'layers_to_transform a word', yaml: bare('  LoraConfig:\n    layers_to_transform: all'), code: 'invalid_type', path: 'LoraConfig.layers_to_transform' },
  { name: 'load_in_4bit a string (webhook: nil or bool)', yaml: bare('  QuantizationConfig:\n    load_in_4bit: "yes"'), code: 'invalid_type', path: 'QuantizationConfig.load_in_4bit', says: 'nil or a boolean' },
  { name: 'both quantization flags', yaml: bare('  QuantizationConfig:\n    load_in_4bit: true\n    load_in_8bit: true'), code: 'quantization_conflict', path: 'QuantizationConfig' },
  { name: 'lora with 4-bit', yaml: bare('  QuantizationConfig:\n    load_in_4bit: true\n    bnb_4bit_compute_dtype: bfloat16'), method: 'lora', code: 'lora_forbids_quantization', path: 'QuantizationConfig.load_in_4bit' },
  { name: 'lora with 8-bit', yaml: bare('  QuantizationConfig:\n    load_in_8bit: true'), method: 'lora', code: 'lora_forbids_quantization', path: 'QuantizationConfig.load_in_8bit' },
  { name: 'qlora without QuantizationConfig', yaml: bare('  LoraConfig:\n    r: 8'), method: 'qlora', code: 'qlora_needs_quantization', path: 'QuantizationConfig', says: 'load_in_4bit: true' },
  { name: 'qlora with the flag off', yaml: bare('  QuantizationConfig:\n    load_in_4bit: false'), method: 'qlora', code: 'qlora_needs_quantization', path: 'QuantizationConfig' },
  { name: 'output_dir escaping /mnt', yaml: bare('  TrainingArguments:\n    output_dir: "../etc"'), target: 'cluster', code: 'output_dir_outside_mnt', path: 'TrainingArguments.output_dir', says: '/mnt/results' },
  { name: 'output_dir is /mnt itself', yaml: bare('  TrainingArguments:\n    output_dir: "/mnt"'), target: 'cluster', code: 'output_dir_outside_mnt', path: 'TrainingArguments.output_dir' },
  { name: 'output_dir a number', yaml: bare('  TrainingArguments:\n    output_dir: 5'), code: 'invalid_type', path: 'TrainingArguments.output_dir' },
  { name: 'bf16 and fp16', yaml: bare('  TrainingArguments:\n    bf16: true\n    fp16: true'), code: 'precision_conflict', path: 'TrainingArguments.bf16' },
  { name: 'Headroom-only field on a KAITO cluster', yaml: bare('  ModelConfig:\n    attn_implementation: eager'), target: 'cluster', code: 'kaito_unsupported_field', path: 'ModelConfig.attn_implementation' },
  { name: 'training_config is a list', yaml: 'training_config: [a, b]\n', code: 'missing_training_config', path: 'training_config' },
  { name: 'no training_config at all', yaml: 'apiVersion: v1\nkind: Secret\n', code: 'no_training_config', path: 'training_config' },
  { name: 'YAML syntax error', yaml: bare('  LoraConfig:\n    r: [8\n    lora_alpha: 8'), code: 'yaml_syntax', path: 'document' },
  { name: 'duplicate key', yaml: bare('  LoraConfig:\n    r: 8\n    r: 16'), code: 'duplicate_key', path: 'document' },
  { name: 'training_config.yaml not a string', yaml: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  training_config.yaml: 5\n', code: 'invalid_type', path: 'data.training_config.yaml' },
  { name: 'targets matching nothing in phi-3', yaml: bare('  LoraConfig:\n    target_modules: [q_proj, v_proj]'), model: PHI3_MINI, code: 'target_modules_unmatched', path: 'LoraConfig.target_modules', says: 'qkv_proj' },
  { name: 'regex matching nothing', yaml: bare('  LoraConfig:\n    target_modules: ".*\\\\.c_attn"'), model: PHI3_MINI, code: 'target_modules_unmatched', path: 'LoraConfig.target_modules' },
  { name: 'bf16 on a T4', yaml: bare('  TrainingArguments:\n    bf16: true'), hardware: T4, code: 'bf16_unsupported', path: 'TrainingArguments.bf16', says: 'fp16: true' },
  { name: 'implicit bf16 on a T4 (SFTConfig default)', yaml: bare('  TrainingArguments:\n    output_dir: /mnt/results'), hardware: T4, code: 'bf16_unsupported', path: 'TrainingArguments.bf16' },
  { name: 'max_seq_length locally (the trainer refuses it too)', yaml: bare('  TrainingArguments:\n    max_seq_length: 2048'), code: 'renamed_key', path: 'TrainingArguments.max_seq_length', says: 'rename it to max_length' },
  { name: 'logging_dir (removed in transformers 5)', yaml: bare('  TrainingArguments:\n    logging_dir: /tmp/tb'), code: 'removed_key', path: 'TrainingArguments.logging_dir', says: 'TENSORBOARD_LOGGING_DIR' },
  // Warnings: valid configs that will not do what they say.
  { name: 'rank above 256', yaml: bare('  LoraConfig:\n    r: 512'), code: 'rank_high', path: 'LoraConfig.r', severity: 'warning' },
  { name: 'compute dtype differs from torch_dtype', yaml: bare('  ModelConfig:\n    torch_dtype: bfloat16\n  QuantizationConfig:\n    load_in_4bit: true\n    bnb_4bit_compute_dtype: float16'), code: 'dtype_mismatch', path: 'QuantizationConfig.bnb_4bit_compute_dtype', severity: 'warning' },
  { name: '4-bit options without 4-bit', yaml: bare('  QuantizationConfig:\n    load_in_4bit: false\n    bnb_4bit_quant_type: nf4'), code: 'bnb_4bit_ignored', path: 'QuantizationConfig', severity: 'warning' },
  { name: 'empty section', yaml: bare('  LoraConfig:'), code: 'empty_section', path: 'LoraConfig', severity: 'warning' },
  { name: 'unused KAITO column', yaml: bare('  DatasetConfig:\n    context_column: prompt'), code: 'deprecated_field', path: 'DatasetConfig.context_column', severity: 'warning' },
  { name: 'relative output_dir on a cluster', yaml: bare('  TrainingArguments:\n    output_dir: results'), target: 'cluster', code: 'output_dir_joined', path: 'TrainingArguments.output_dir', severity: 'warning', says: '/mnt/results' },
]

describe('invalid tuning configs', () => {
  test('the table has at least 30 invalid cases', () => {
    assert.ok(cases.filter((c) => (c.severity ?? 'error') === 'error').length >= 30)
  })
  for (const c of cases) {
    test(`${c.name}: ${c.code} at ${c.path}`, () => {
      const { issues, warnings } = ruleIssues(c.yaml, { method: c.method, target: c.target, model: c.model, hardware: c.hardware, file: 'case.yaml' })
      const pool = (c.severity ?? 'error') === 'error' ? issues : warnings
      const hit = pool.find((i) => i.code === c.code && i.path === c.path)
      assert.ok(hit, `expected ${c.severity ?? 'error'} ${c.code} at ${c.path}; got ${JSON.stringify([...issues, ...warnings].map((i) => `${i.severity} ${i.code} ${i.path}`))}`)
      assert.equal(hit.file, 'case.yaml')
      assert.ok(typeof hit.line === 'number' && hit.line >= 1, `issue has a line: ${JSON.stringify(hit)}`)
      if (c.says) assert.ok(hit.message.includes(c.says), `message "${hit.message}" should say "${c.says}"`)
      if ((c.severity ?? 'error') === 'warning') assert.equal(issues.length, 0, `a warning case has no errors: ${JSON.stringify(issues)}`)
    })
  }
})

describe('every issue at once', () => {
  test('five problems in three sections are all reported, in one pass', () => {
    const yaml = bare(
      [
        '  LoraConfig:',
        '    r: 0',
        '    lora_alpah: 8',
        '  TrainingArguments:',
        '    learning_rate: -1',
        '    per_device_train_batch_size: 0',
        '  Bogus:',
        '    a: 1',
      ].join('\n'),
    )
    const { issues } = ruleIssues(yaml)
    assert.deepEqual(
      issues.map((i) => `${i.code} ${i.path}`).sort(),
      [
        'out_of_range LoraConfig.r',
        'out_of_range TrainingArguments.learning_rate',
        'out_of_range TrainingArguments.per_device_train_batch_size',
        'unknown_key LoraConfig.lora_alpah',
        'unknown_section Bogus',
      ].sort(),
    )
  })
})
