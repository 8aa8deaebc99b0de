import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, formatIssues } from '../src/errors.ts'
import { formatBytes, formatCount, GIB } from '../src/units.ts'

test('formatIssues renders file:line:col, severity and path', () => {
  const out = formatIssues([
    { code: 'unknown_key', path: 'LoraConfig.rank', message: 'unknown key; did you mean "r"?', file: 'c.yaml', line: 4, column: 5 },
    { code: 'batch_one', path: 'TrainingArguments.per_device_train_batch_size', message: 'batch 1 leaves memory unused', severity: 'warning' },
  ])
  assert.equal(
    out,
    'c.yaml:4:5 error LoraConfig.rank: unknown key; did you mean "r"?\nwarning TrainingArguments.per_device_train_batch_size: batch 1 leaves memory unused',
  )
  assert.match(new ConfigError([{ code: 'x', path: 'a.b', message: 'bad' }]).message, /^a\.b: bad$/)
})

test('byte and count formatting', () => {
  assert.equal(formatBytes(27.4 * GIB), '27.4 GiB')
  assert.equal(formatBytes(812 * 1024 * 1024), '812 MiB')
  assert.equal(formatCount(3821079552), '3,821,079,552')
})

test('torch dtype names map to Headroom dtypes', async () => {
  const { dtypeFromTorchName } = await import('../src/units.ts')
  assert.equal(dtypeFromTorchName('torch.bfloat16'), 'bf16')
  assert.equal(dtypeFromTorchName('half'), 'fp16')
  assert.equal(dtypeFromTorchName('float'), 'fp32')
  assert.equal(dtypeFromTorchName('float64'), undefined)
  assert.equal(dtypeFromTorchName(undefined), undefined)
})
