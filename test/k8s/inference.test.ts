/**
 * `headroom render --inference`: golden manifests for both targets (HEADROOM_UPDATE_GOLDEN=1
 * rewrites them), valid offline and under `kubernetes-validate --strict`; the serving contract
 * of the Deployment (serve on 0.0.0.0 with a token from the Secret, adapters mounted and passed,
 * /health probes); admission by the inference plan through bin/headroom.
 */
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parseAllDocuments } from 'yaml'
import { findHardware, findModelSync } from '../../src/catalog/index.ts'
import { inferenceInput, renderManifests, validateManifest, type RenderOptions } from '../../src/k8s/index.ts'
import { GOLDEN_DIR } from './cases.ts'

const UPDATE = process.env.HEADROOM_UPDATE_GOLDEN === '1'
const KV = new URL('../../.venv/bin/kubernetes-validate', import.meta.url).pathname
const root = fileURLToPath(new URL('../../', import.meta.url))

const CASES: Record<string, RenderOptions> = {
  'inference-kaito.yaml': {
    target: 'kaito',
    inference: true,
    adapters: ['docs=myregistry.azurecr.io/phi3-docs-adapter:0.1.0', 'support=myregistry.azurecr.io/phi3-support-adapter:0.2.0'],
  },
  'inference-job.yaml': {
    target: 'job',
    inference: true,
    model: 'mistral-7b-v0.3',
    gpu: 'Standard_NV36ads_A10_v5',
    seq: 8192,
    batch: 2,
    namespace: 'serving',
    name: 'mistral-serve',
    image: 'registry.example.com/headroom-runtime:0.1.0',
    tokenSecret: 'serve-token',
    adapters: ['docs=pvc:tuning-results/mistral-docs', 'chat=pvc:tuning-results/mistral-chat', 'legal=pvc:legal-adapters'],
  },
}
const files = Object.keys(CASES).map((f) => GOLDEN_DIR + f)
const docs = (path: string) => parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as Record<string, any>)

describe('render --inference: golden manifests', () => {
  for (const [file, opts] of Object.entries(CASES)) {
    test(`${file} renders as committed`, () => {
      const { yaml, objects } = renderManifests(opts)
      if (UPDATE) writeFileSync(GOLDEN_DIR + file, yaml)
      assert.equal(yaml, readFileSync(GOLDEN_DIR + file, 'utf8'), `${file} changed: review it and rerun with HEADROOM_UPDATE_GOLDEN=1`)
      assert.deepEqual(docs(GOLDEN_DIR + file), JSON.parse(JSON.stringify(objects)))
    })
  }

  test('every object is valid under kubernetes-models / the KAITO CRD with ajv', () => {
    const kinds = files.flatMap((f) => docs(f).map((o) => { assert.deepEqual(validateManifest(o), [], `${f}: ${o.kind}`); return o.kind }))
    assert.deepEqual(kinds, ['Workspace', 'Service', 'Deployment'])
  })

  test('the offline validators can fail: a non-string strength, a Deployment without a selector', () => {
    const [ws] = docs(GOLDEN_DIR + 'inference-kaito.yaml')
    ws.inference.adapters[0].strength = 0.5
    assert.match(validateManifest(ws).join('\n'), /strength.*must be string/)
    const [, dep] = docs(GOLDEN_DIR + 'inference-job.yaml')
    delete dep.spec.selector
    assert.match(validateManifest(dep).join('\n'), /selector/)
  })

  test('the built-in objects pass kubernetes-validate --strict', { skip: !existsSync(KV) && 'no .venv/bin/kubernetes-validate (bash scripts/setup.sh installs it)' }, () => {
    const f = GOLDEN_DIR + 'inference-job.yaml'
    const r = spawnSync(KV, ['--strict', f], { encoding: 'utf8' })
    const out = `${r.stdout}${r.stderr}`
    assert.equal(r.status, 0, out)
    for (const kind of ['service', 'deployment']) assert.ok(out.includes(`${f} passed for resource ${kind}/mistral-serve`), out)
    assert.doesNotMatch(out, /ERROR|failed/i, out)
  })
})

describe('render --inference: what the objects say', () => {
  test('kaito: a Workspace with inference (preset, adapters by name and image) and no tuning', () => {
    const [ws] = docs(GOLDEN_DIR + 'inference-kaito.yaml')
    assert.equal(ws.resource.instanceType, 'Standard_NC24ads_A100_v4')
    assert.equal(ws.inference.preset.name, 'phi-3-mini-128k-instruct')
    assert.deepEqual(ws.inference.adapters.map((a: any) => a.source), [
      { name: 'docs', image: 'myregistry.azurecr.io/phi3-docs-adapter:0.1.0' },
      { name: 'support', image: 'myregistry.azurecr.io/phi3-support-adapter:0.2.0' },
    ])
    assert.equal(ws.tuning, undefined)
  })

  test('job: serve on 0.0.0.0:5000 with the token from the Secret, adapters mounted read-only and passed, /health probes, one GPU on the instance type', () => {
    const [svc, dep] = docs(GOLDEN_DIR + 'inference-job.yaml')
    const pod = dep.spec.template.spec
    const c = pod.containers[0]
    const args: string[] = c.args
    assert.equal(c.command[0], 'headroom')
    assert.equal(args[0], 'serve')
    assert.equal(args[args.indexOf('--host') + 1], '0.0.0.0')
    assert.equal(args[args.indexOf('--port') + 1], '5000')
    assert.equal(args[args.indexOf('--model') + 1], findModelSync('mistral-7b-v0.3')!.hfId)
    assert.deepEqual(args.filter((_, i) => args[i - 1] === '--adapter'), ['docs=/mnt/adapters/docs', 'chat=/mnt/adapters/chat', 'legal=/mnt/adapters/legal'])
    // serve reads HEADROOM_SERVE_TOKEN for --token; a non-loopback host without it is refused.
    assert.deepEqual(c.env.find((e: any) => e.name === 'HEADROOM_SERVE_TOKEN').valueFrom, { secretKeyRef: { name: 'serve-token', key: 'token' } })
    // One volume per claim; each adapter is its directory on it.
    const claimOf = Object.fromEntries(pod.volumes.filter((v: any) => v.persistentVolumeClaim).map((v: any) => [v.name, v.persistentVolumeClaim]))
    const mounts = Object.fromEntries(c.volumeMounts.filter((m: any) => m.mountPath.startsWith('/mnt/adapters/')).map((m: any) => [m.mountPath, { claim: claimOf[m.name].claimName, sub: m.subPath, ro: m.readOnly }]))
    assert.deepEqual(mounts, {
      '/mnt/adapters/docs': { claim: 'tuning-results', sub: 'mistral-docs', ro: true },
      '/mnt/adapters/chat': { claim: 'tuning-results', sub: 'mistral-chat', ro: true },
      '/mnt/adapters/legal': { claim: 'legal-adapters', sub: undefined, ro: true },
    })
    for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.deepEqual(c[p].httpGet, { path: '/health', port: 'http' })
    assert.deepEqual(c.ports, [{ name: 'http', containerPort: 5000, protocol: 'TCP' }])
    assert.deepEqual(c.resources.limits, { 'nvidia.com/gpu': '1' })
    assert.deepEqual(pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values, ['Standard_NV36ads_A10_v5'])
    // The Service reaches exactly these pods on the named port.
    assert.deepEqual(svc.spec.selector, dep.spec.template.metadata.labels)
    assert.deepEqual(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels)
    assert.deepEqual(svc.spec.ports[0], { name: 'http', port: 5000, targetPort: 'http', protocol: 'TCP' })
    assert.equal(svc.metadata.namespace, 'serving')
  })

  test('the weights dtype is decided by the GPU: bf16 where it has bf16, fp16 where not (T4)', () => {
    const model = findModelSync('phi-3-mini-128k-instruct')!
    for (const sku of ['Standard_NC24ads_A100_v4', 'Standard_NC4as_T4_v3']) {
      const hw = findHardware(sku)
      const i = inferenceInput(model, hw, 4096, 1, false)
      assert.equal(i.dtype, hw.gpu.bf16 ? 'bf16' : 'fp16', sku)
      assert.equal(i.phase, 'inference')
      assert.equal(i.quant, 'none')
    }
  })

  test('the refusal names a --seq that fits, and one token more does not', () => {
    const base: RenderOptions = { target: 'kaito', inference: true, model: 'mistral-7b-v0.3', gpu: 'Standard_NC4as_T4_v3', seq: 16384 }
    assert.throws(() => renderManifests(base), (e: any) => e.exitCode === 1 && /--seq \d+ or less/.test(e.message))
    let fix = 0
    try {
      renderManifests(base)
    } catch (e) {
      fix = Number(/--seq (\d+) or less/.exec((e as Error).message)![1])
    }
    assert.ok(fix > 0 && fix < 16384)
    assert.equal(renderManifests({ ...base, seq: fix }).admission.fits, true)
    assert.throws(() => renderManifests({ ...base, seq: fix + 1 }), /does not fit/)
  })
})

async function headroom(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(join(root, 'bin/headroom'), ['render', '--inference', ...args], { timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string }
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}
const oneLine = (s: string) => {
  assert.equal(s.trim().split('\n').length, 1, s)
  assert.doesNotMatch(s, /^\s+at /m, s)
}

describe('headroom render --inference (CLI)', () => {
  const MISTRAL_16K = ['--target', 'kaito', '--model', 'mistral-7b-v0.3', '--seq', '16384']

  test('does not fit one T4 at 16k tokens: exit 1, nothing on stdout, the fix named', async () => {
    const r = await headroom(...MISTRAL_16K, '--gpu', 'Standard_NC4as_T4_v3')
    assert.equal(r.code, 1, r.stderr)
    assert.equal(r.stdout, '')
    oneLine(r.stderr)
    assert.match(r.stderr, /mistral-7b-v0\.3 does not fit one GPU of Standard_NC4as_T4_v3 for inference at 1 x 16384 tokens/)
    assert.match(r.stderr, /--seq \d+ or less/)
    assert.match(r.stderr, /--gpu Standard_\w+ \(\d+ GiB per GPU\)/)
    assert.match(r.stderr, /--force/)
  })

  test('fits one A10 (24 GiB): exit 0, a Workspace for the A10 instance type', async () => {
    const r = await headroom(...MISTRAL_16K, '--gpu', 'Standard_NV36ads_A10_v5')
    assert.equal(r.code, 0, r.stderr)
    const [ws] = parseAllDocuments(r.stdout).map((d) => d.toJS())
    assert.equal(ws.kind, 'Workspace')
    assert.equal(ws.resource.instanceType, 'Standard_NV36ads_A10_v5')
    assert.equal(ws.inference.preset.name, 'mistral-7b-v0.3')
  })

  test('--force renders what does not fit, with a warning', async () => {
    const r = await headroom(...MISTRAL_16K, '--gpu', 'Standard_NC4as_T4_v3', '--force')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /warning: --force: rendered although/)
    assert.match(r.stdout, /DOES NOT FIT/)
  })

  const BAD: [string, string[], RegExp][] = [
    ['no "="', ['--target', 'kaito', '--adapter', 'docs'], /--adapter is "docs": there is no "="/],
    ['a name that is not a DNS label', ['--target', 'kaito', '--adapter', 'Docs_1=x.io/a:1'], /the name "Docs_1" is not a DNS-1123 label/],
    ['an empty source', ['--target', 'kaito', '--adapter', 'docs='], /the source is empty/],
    ['a pvc source for kaito', ['--target', 'kaito', '--adapter', 'docs=pvc:results/a'], /--target kaito takes an adapter image/],
    ['an image source for job', ['--target', 'job', '--token-secret', 'tok', '--adapter', 'docs=x.io/a:1'], /--target job mounts adapters from a PersistentVolumeClaim/],
    ['a name given twice', ['--target', 'kaito', '--adapter', 'docs=x.io/a:1', '--adapter', 'docs=x.io/b:1'], /--adapter docs is given twice/],
    ['job without --token-secret', ['--target', 'job'], /needs --token-secret NAME/],
    ['a training flag', ['--target', 'kaito', '--data', 'https://example.com/d.jsonl'], /--data is for fine-tuning, not --inference/],
    ['a bad --batch', ['--target', 'kaito', '--batch', '0'], /--batch is "0"/],
  ]
  for (const [what, args, message] of BAD) {
    test(`${what}: exit 2, one line`, async () => {
      const r = await headroom(...args)
      assert.equal(r.code, 2, r.stderr)
      assert.equal(r.stdout, '')
      oneLine(r.stderr)
      assert.match(r.stderr, message)
    })
  }

  test('--adapter without --inference is a usage error naming --inference', async () => {
    const { code, stderr } = await promisify(execFile)(join(root, 'bin/headroom'), ['render', '--target', 'job', '--adapter', 'a=pvc:x'], { timeout: 60_000 }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e) => ({ code: e.code as number, stderr: e.stderr as string }),
    )
    assert.equal(code, 2, stderr)
    assert.match(stderr, /--adapter is for --inference/)
  })
})
