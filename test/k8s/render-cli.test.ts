/**
 * `headroom render` through bin/headroom: the seed's LoRA run refused with the fix named and
 * nothing on stdout, its QLoRA version accepted, --force, -o, and one clear line per bad flag.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parse, parseAllDocuments } from 'yaml'

const root = fileURLToPath(new URL('../../', import.meta.url))
const seedLora = join(root, 'test/fixtures/k8s/seed-lora.yaml')
const seedQlora = join(root, 'test/fixtures/k8s/seed-qlora.yaml')
const tmp = mkdtempSync(join(tmpdir(), 'headroom-render-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

async function headroom(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(join(root, 'bin/headroom'), ['render', ...args], { timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string }
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

const SEED = ['--model', 'phi-3-mini-128k-instruct', '--gpu', 'Standard_NC24ads_A100_v4']
const kinds = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS().kind)
const noStack = (s: string) => assert.doesNotMatch(s, /^\s+at /m, s)

describe('headroom render: admission', () => {
  test("the seed's LoRA run (bf16, eager, no checkpointing, 4,096 tokens) is refused: exit 1, nothing on stdout, the fix in the ConfigMap's keys", async () => {
    const r = await headroom('--target', 'job', '--config', seedLora, ...SEED)
    assert.equal(r.code, 1, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /phi-3-mini-128k-instruct does not fit Standard_NC24ads_A100_v4 \(A100-80GB\): it needs 12\d\.\d GiB per GPU/)
    assert.match(r.stderr, /set TrainingArguments\.gradient_checkpointing: true/)
    assert.match(r.stderr, /lower TrainingArguments\.max_length to \d{4}/)
    assert.match(r.stderr, /nothing rendered/)
    assert.match(r.stderr, /--force/)
    assert.equal(r.stderr.trim().split('\n').length, 1)
    noStack(r.stderr)
  })

  test('its QLoRA version is accepted: the manifests on stdout, the ConfigMap says 4-bit', async () => {
    const r = await headroom('--target', 'job', '--config', seedQlora, ...SEED)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(kinds(r.stdout), ['ConfigMap', 'PersistentVolumeClaim', 'Job'])
    const cm = parseAllDocuments(r.stdout)[0].toJS()
    const tc = parse(cm.data['training_config.yaml']).training_config
    assert.equal(tc.QuantizationConfig.load_in_4bit, true)
    assert.equal(tc.TrainingArguments.max_length, 4096)
    assert.equal(r.stderr, '')
  })

  test('--force renders the refused run, with a warning on stderr and the verdict in the header', async () => {
    const r = await headroom('--target', 'job', '--config', seedLora, ...SEED, '--force')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(kinds(r.stdout), ['ConfigMap', 'PersistentVolumeClaim', 'Job'])
    assert.match(r.stdout, /^# predicted peak .* DOES NOT FIT/m)
    assert.match(r.stderr, /^headroom: warning: --force: rendered although phi-3-mini-128k-instruct needs/)
  })

  test('--target kaito refuses a key KAITO rejects (the seed config names attn_implementation)', async () => {
    const r = await headroom('--target', 'kaito', '--config', seedLora, '--data', 'https://example.com/d.jsonl', '--output-volume', 'pvc:out')
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /ModelConfig\.attn_implementation/)
    noStack(r.stderr)
  })
})

describe('headroom render: output', () => {
  test('-o FILE writes the YAML there and says what it wrote; -o - is stdout', async () => {
    const file = join(tmp, 'ws.yaml')
    const r = await headroom('--target', 'kaito', '--data', 'pvc:datasets/a.jsonl', '--output-volume', 'pvc:results', '-o', file)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, '')
    assert.deepEqual(kinds(readFileSync(file, 'utf8')), ['ConfigMap', 'Workspace'])
    assert.match(r.stderr, /^wrote .*ws\.yaml: ConfigMap\/phi-3-mini-128k-instruct-tuning-config, Workspace\/phi-3-mini-128k-instruct-tuning; peak/)
    const dash = await headroom('--target', 'kaito', '--data', 'pvc:datasets/a.jsonl', '--output-volume', 'pvc:results', '-o', '-')
    assert.equal(dash.stdout, readFileSync(file, 'utf8'))
  })
})

describe('headroom render: bad flags, one clear line each', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['unknown instance type', ['--target', 'job', '--gpu', 'Standard_NC24ads_A100_v9'], 2, /unknown GPU or instance type "Standard_NC24ads_A100_v9".*did you mean/i],
    ['a GPU, not an instance type', ['--target', 'job', '--gpu', 'A100-80GB'], 2, /--gpu A100-80GB is a GPU, not an instance type: .*Standard_NC24ads_A100_v4/],
    ['unknown model', ['--target', 'job', '--model', 'phi-9-mega'], 2, /unknown model "phi-9-mega"/],
    ['a model KAITO cannot tune', ['--target', 'kaito', '--model', 'llama-3.1-8b', '--data', 'https://example.com/a.jsonl', '--output-volume', 'pvc:o'], 2, /--model llama-3\.1-8b is not a model KAITO can tune: KAITO's tuning presets are phi-4, .*qwen2\.5-coder-32b-instruct; .*--target job/],
    ['a --data that is neither URL nor claim', ['--target', 'job', '--data', 'ftp://example.com/a.jsonl'], 2, /--data is "ftp:\/\/example\.com\/a\.jsonl": the scheme ftp is not http or https; give an http\(s\) URL .* or pvc:CLAIM\/path/],
    ['a --data on a private address', ['--target', 'kaito', '--data', 'http://169.254.169.254/x', '--output-volume', 'pvc:o'], 2, /is a loopback, private, link-local or cloud-metadata address/],
    ['kaito without --data', ['--target', 'kaito', '--output-volume', 'pvc:o'], 2, /--target kaito needs --data/],
    ['kaito without an output', ['--target', 'kaito', '--data', 'pvc:d/a.jsonl'], 2, /--target kaito needs an output: --output-volume pvc:CLAIM, or --output-image REF --push-secret S/],
    ['--output-image without --push-secret', ['--target', 'kaito', '--data', 'pvc:d/a.jsonl', '--output-image', 'r.io/a:1'], 2, /--output-image needs --push-secret/],
    ['--nproc on kaito', ['--target', 'kaito', '--nproc', '2', '--data', 'pvc:d/a', '--output-volume', 'pvc:o'], 2, /--nproc and --nnodes are for --target job/],
    ['--nproc beyond the instance', ['--target', 'job', '--nproc', '4'], 2, /--nproc is 4, but Standard_NC24ads_A100_v4 has 1 GPU/],
    ['--nnodes 0', ['--target', 'job', '--nnodes', '0'], 2, /--nnodes is "0": give a whole number of 1 or more/],
    ['a bad --name', ['--target', 'job', '--name', 'My_Job'], 2, /--name is "My_Job": give a DNS-1123 label/],
    ['a bad --output-volume', ['--target', 'job', '--output-volume', 'results'], 2, /--output-volume is "results": give pvc:CLAIM/],
    ['-o on a pseudo-filesystem', ['--target', 'job', '-o', '/proc/manifests.yaml'], 1, /\/proc\/manifests\.yaml: is on proc, a kernel pseudo-filesystem: choose a file in a writable directory, e\.g\. -o \.\/manifests\.yaml/],
    ['an unreadable --config', ['--target', 'job', '--config', '/nonexistent/tuning.yaml'], 2, /\/nonexistent\/tuning\.yaml: no such file or directory/],
    ['no --target', [], 2, /required option '--target <target>' not specified/],
    ['an unknown --target', ['--target', 'pod'], 2, /Allowed choices are kaito, job/],
  ]
  for (const [what, args, code, message] of cases) {
    test(what, async () => {
      const r = await headroom(...args)
      assert.equal(r.code, code, r.stderr)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, message)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      noStack(r.stderr)
    })
  }
})
