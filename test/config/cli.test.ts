/** `headroom check` and `headroom init` through bin/headroom: output, JSON and exit codes. */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('../../', import.meta.url))
const fixtures = join(root, 'test/fixtures/kaito')
const tmp = mkdtempSync(join(tmpdir(), 'headroom-cli-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

async function headroom(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(join(root, 'bin/headroom'), args, { timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string }
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

describe('headroom check', () => {
  test('a KAITO example is valid: exit 0, warnings grouped by section', async () => {
    const r = await headroom('check', join(fixtures, 'kaito_configmap_tuning_phi_3.yaml'), '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10')
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.split('\n')
    assert.match(lines[0], /kaito_configmap_tuning_phi_3\.yaml: valid \(0 errors, 1 warning\) against model phi-3-mini-128k-instruct, GPU A10, seq 1024$/)
    const section = lines.indexOf('LoraConfig')
    assert.ok(section > 0, r.stdout)
    assert.match(lines[section + 1], /^ {2}\S+kaito_configmap_tuning_phi_3\.yaml:27:9 warning LoraConfig\.target_modules: q_proj, k_proj and v_proj match nothing/)
    assert.match(r.stdout, /^memory: peak \d+\.\d GiB of 24\.0 GiB on the A10 \(headroom \d+\.\d GiB\)$/m)
  })

  test('an invalid file: exit 1, every issue on its own `path: message` line with file:line:col', async () => {
    const file = join(tmp, 'bad.yaml')
    writeFileSync(file, 'training_config:\n  LoraConfig:\n    r: 0\n    lora_alpah: 8\n  TrainingArguments:\n    learning_rate: -1\n')
    const r = await headroom('check', file)
    assert.equal(r.code, 1)
    assert.match(r.stdout, /bad\.yaml: invalid \(3 errors, 0 warnings\)/)
    assert.match(r.stdout, /\n {2}\S*bad\.yaml:3:8 error LoraConfig\.r: is 0; it must be greater than 0\n/)
    assert.match(r.stdout, /\n {2}\S*bad\.yaml:4:5 error LoraConfig\.lora_alpah: is not a LoraConfig field .*did you mean lora_alpha\?\n/)
    assert.match(r.stdout, /\nTrainingArguments\n {2}\S*bad\.yaml:6:20 error TrainingArguments\.learning_rate: /)
    assert.equal(r.stderr, '')
  })

  test('--json prints {valid, issues, warnings, plan}', async () => {
    const r = await headroom('check', join(fixtures, 'qlora-params.yaml'), '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A100-80GB', '--method', 'qlora', '--target', 'cluster', '--json')
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    assert.equal(out.valid, true)
    assert.deepEqual(out.issues, [])
    assert.ok(out.warnings.every((w: { code: string; path: string; message: string; line: number }) => w.code && w.path && w.message && w.line >= 1))
    assert.equal(out.plan.gpu.name, 'A100-80GB')
    assert.equal(out.plan.fits, true)
    assert.equal(typeof out.plan.peakBytes, 'number')
  })

  test('usage errors exit 2 without a stack trace', async () => {
    for (const args of [
      ['check', join(tmp, 'missing.yaml')],
      ['check', join(fixtures, 'lora-params.yaml'), '--gpu', 'NoSuchGPU'],
      ['check', join(fixtures, 'lora-params.yaml'), '--model', 'no-such-model-xyz'],
      ['check', join(fixtures, 'lora-params.yaml'), '--method', 'full'],
      ['check', join(fixtures, 'lora-params.yaml'), '--seq', '0'],
    ]) {
      const r = await headroom(...args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
      assert.doesNotMatch(r.stderr, /\n\s+at /)
    }
  })
})

describe('headroom init', () => {
  test('writes a ConfigMap that headroom check accepts', async () => {
    const file = join(tmp, 'init.yaml')
    const w = await headroom('init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '--seq', '4096', '--goal', 'max-throughput', '-o', file)
    assert.equal(w.code, 0, w.stderr)
    assert.match(w.stderr, /^wrote .*init\.yaml: peak \d+\.\d GiB of 24\.0 GiB at seq 4096, batch \d+/)
    const r = await headroom('check', file, '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '--seq', '4096')
    assert.equal(r.code, 0, r.stdout)
    assert.match(r.stdout, /valid \(0 errors/)
  })

  test('-o - is stdout, as for render: no file named "-"', async () => {
    const dir = mkdtempSync(join(tmp, 'dash-'))
    const { stdout, stderr } = await promisify(execFile)(join(root, 'bin/headroom'), ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '--seq', '4096', '-o', '-'], { cwd: dir, timeout: 60_000 })
    assert.match(stdout, /^# Generated by headroom init for phi-3-mini-128k-instruct on A10/)
    assert.match(stdout, /kind: ConfigMap/)
    assert.doesNotMatch(stderr, /wrote/)
    assert.deepEqual(readdirSync(dir), [])
  })
})
