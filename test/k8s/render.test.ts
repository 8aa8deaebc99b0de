/**
 * renderManifests as a library: admission decides as check does, per target runtime; the
 * ConfigMap decodes to exactly what was planned; the Job carries the failure policy, GPU
 * requests, node affinity and torchrun layout the trainer contract needs.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { parse } from 'yaml'
import { findHardware, findModelSync } from '../../src/catalog/index.ts'
import { checkConfig } from '../../src/config/check.ts'
import { decode } from '../../src/config/codec.ts'
import { ConfigError } from '../../src/errors.ts'
import { AdmissionRefused, LOW_HEADROOM_SHARE, renderManifests, rendezvousService, TRAINER_CONTAINER } from '../../src/k8s/index.ts'
import { TRAINER_EXIT } from '../../src/runtime/exit-codes.ts'
import { FIXTURES } from './cases.ts'

const seedLora = readFileSync(`${FIXTURES}k8s/seed-lora.yaml`)
const model = findModelSync('phi-3-mini-128k-instruct')!
type Obj = Record<string, any>
const byKind = (objects: Obj[], kind: string) => objects.find((o) => o.kind === kind) as Obj
const trainingConfig = (objects: Obj[]) => parse(byKind(objects, 'ConfigMap').data['training_config.yaml']).training_config

// A QLoRA config that leaves gradient checkpointing off at 4,096 tokens with eager-free attention.
const QLORA_NO_CHECKPOINTING = `training_config:
  ModelConfig:
    torch_dtype: bfloat16
  QuantizationConfig:
    load_in_4bit: true
    bnb_4bit_quant_type: nf4
    bnb_4bit_compute_dtype: bfloat16
  LoraConfig:
    target_modules: [qkv_proj, o_proj]
  TrainingArguments:
    per_device_train_batch_size: 8
    max_length: 8192
    gradient_checkpointing: false
`

describe('admission', () => {
  test("the refusal names the same fixes as check's memory rule, and renders nothing", async () => {
    let refused: AdmissionRefused | undefined
    try {
      renderManifests({ target: 'job', config: seedLora })
    } catch (e) {
      refused = e as AdmissionRefused
    }
    assert.ok(refused instanceof AdmissionRefused)
    assert.equal(refused.exitCode, 1)
    const a = refused.admission
    assert.equal(a.fits, false)
    assert.ok(a.peakBytes > a.gpuMemoryBytes && a.headroomBytes < 0)
    assert.ok(a.fix && a.fix.length >= 2, JSON.stringify(a.fix))
    const check = await checkConfig(seedLora, { model: 'phi-3-mini-128k-instruct', gpu: 'Standard_NC24ads_A100_v4' })
    const memory = check.issues.find((i) => i.code === 'memory_exceeds_gpu')
    assert.ok(memory, 'check refuses it too')
    for (const f of a.fix) assert.ok(memory.message.includes(f), `check does not say "${f}": ${memory.message}`)
  })

  test('each named fix, applied to the ConfigMap, is admitted', () => {
    const r = renderManifests({ target: 'job', config: seedLora, force: true })
    const text = String(seedLora)
    const applied = [
      text.replace('gradient_checkpointing: false', 'gradient_checkpointing: true'),
      text.replace('max_length: 4096', `max_length: ${/max_length to (\d+)/.exec(r.admission.fix!.join(' '))![1]}`),
    ]
    for (const config of applied) assert.equal(renderManifests({ target: 'job', config }).admission.fits, true)
  })

  test('KAITO checkpoints quantized models itself: the same file fits as a Workspace and not as a Job', () => {
    const kaito = renderManifests({ target: 'kaito', config: QLORA_NO_CHECKPOINTING, data: 'pvc:d/a.jsonl', outputVolume: 'pvc:o' })
    assert.equal(kaito.input.gradientCheckpointing, true)
    assert.equal(kaito.admission.fits, true)
    assert.equal(trainingConfig(kaito.objects).TrainingArguments.gradient_checkpointing, true)
    assert.throws(() => renderManifests({ target: 'job', config: QLORA_NO_CHECKPOINTING }), AdmissionRefused)
  })

  test("a config the instance type's GPU cannot run is refused with check's rule (bf16 on a V100)", () => {
    assert.throws(
      () => renderManifests({ target: 'kaito', gpu: 'Standard_NC6s_v3', data: 'pvc:in', outputVolume: 'pvc:out' }),
      (e: Error) => e instanceof ConfigError && e.issues.some((i) => i.code === 'bf16_unsupported' && /set TrainingArguments\.fp16: true/.test(i.message)),
    )
  })

  test(`under ${LOW_HEADROOM_SHARE * 100}% headroom warns; ample headroom does not`, () => {
    const forced = renderManifests({ target: 'job', config: seedLora, force: true })
    const longest = forced.plan.maxSeqLen!
    const tight = renderManifests({ target: 'job', config: seedLora, seq: longest })
    assert.equal(tight.admission.fits, true)
    assert.ok(tight.admission.headroomBytes < LOW_HEADROOM_SHARE * tight.admission.gpuMemoryBytes)
    assert.match(tight.admission.warnings.join('\n'), /headroom on .*\(.*% of the A100-80GB.s 80\.0 GiB\), under 10%/)
    const roomy = renderManifests({ target: 'job', config: seedLora, seq: 1024 })
    assert.deepEqual(roomy.admission.warnings, [])
  })
})

describe('what is rendered', () => {
  test('the ConfigMap decodes to exactly the planned input, on both targets', () => {
    for (const r of [
      renderManifests({ target: 'job', config: seedLora, seq: 2048 }),
      renderManifests({ target: 'kaito', method: 'lora', data: 'pvc:d/a.jsonl', outputVolume: 'pvc:o', seq: 2048 }),
    ]) {
      const tc = trainingConfig(r.objects)
      const target = byKind(r.objects, 'Workspace') ? 'cluster' : 'local'
      const preset = byKind(r.objects, 'Workspace')?.tuning.preset.name
      assert.deepEqual(decode(tc, { model, device: 'cuda', hardware: findHardware('Standard_NC24ads_A100_v4'), target, presetName: preset }), r.input)
      assert.equal(tc.TrainingArguments.max_length, 2048)
      assert.match(tc.TrainingArguments.output_dir, /^\/mnt\//)
    }
  })

  test('--method overrides the config through the codec; the Workspace says the same method', () => {
    const r = renderManifests({ target: 'kaito', method: 'qlora', config: seedLora.toString().replace('attn_implementation: "eager"', ''), data: 'pvc:d/a', outputVolume: 'pvc:o' })
    assert.equal(byKind(r.objects, 'Workspace').tuning.method, 'qlora')
    assert.equal(trainingConfig(r.objects).QuantizationConfig.load_in_4bit, true)
  })

  test('the Job: failure policy, GPUs, instance type, allocator, grace period, events on stdout', () => {
    const r = renderManifests({ target: 'job', gpu: 'Standard_NC48ads_A100_v4', nproc: 2, outputVolume: 'pvc:results' })
    const job = byKind(r.objects, 'Job')
    const pod = job.spec.template.spec
    assert.equal(pod.restartPolicy, 'Never')
    const rules = job.spec.podFailurePolicy.rules
    assert.deepEqual(rules[0], { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] })
    const failOn = rules.filter((x: Obj) => x.action === 'FailJob').flatMap((x: Obj) => x.onExitCodes.values)
    assert.ok(failOn.includes(TRAINER_EXIT.oom))
    assert.ok(!failOn.includes(TRAINER_EXIT.preempted), 'a SIGTERM checkpoint exit must be retried')
    const c = pod.containers[0]
    assert.equal(c.name, TRAINER_CONTAINER)
    assert.deepEqual(c.resources.limits, { 'nvidia.com/gpu': '2' })
    assert.deepEqual(pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0], { key: 'node.kubernetes.io/instance-type', operator: 'In', values: ['Standard_NC48ads_A100_v4'] })
    assert.deepEqual(c.env.find((e: Obj) => e.name === 'PYTORCH_CUDA_ALLOC_CONF'), { name: 'PYTORCH_CUDA_ALLOC_CONF', value: 'expandable_segments:True' })
    assert.ok(pod.terminationGracePeriodSeconds >= 120)
    const script = c.command[2] as string
    assert.match(script, /exec torchrun --standalone --nnodes=1 --nproc_per_node=2 -m headroom_runtime\.train /)
    assert.match(script, /--resume-from \/mnt\/output/)
    assert.ok(!script.includes('>'), 'stdout (the events) is not redirected')
    assert.equal(pod.volumes.find((v: Obj) => v.name === 'output').persistentVolumeClaim.claimName, 'results')
  })

  test('--nnodes: an Indexed Job whose pod 0 is the rendezvous, behind a headless Service', () => {
    const r = renderManifests({ target: 'job', gpu: 'Standard_NC24ads_A100_v4', nnodes: 3, name: 'mn', outputVolume: 'pvc:rwx' })
    const job = byKind(r.objects, 'Job')
    const svc = byKind(r.objects, 'Service')
    assert.deepEqual([job.spec.completionMode, job.spec.completions, job.spec.parallelism], ['Indexed', 3, 3])
    assert.equal(svc.metadata.name, rendezvousService('mn'))
    assert.equal(svc.spec.clusterIP, 'None')
    assert.equal(job.spec.template.spec.subdomain, svc.metadata.name)
    assert.deepEqual(svc.spec.selector, { 'batch.kubernetes.io/job-name': 'mn' })
    assert.match(job.spec.template.spec.containers[0].command[2], /--nnodes=3 --nproc_per_node=1 --node_rank="\$JOB_COMPLETION_INDEX" --master_addr=mn-0\.mn-rdzv /)
  })

  test('a Job with no --output-volume gets a claim sized for the weights and checkpoints', () => {
    const r = renderManifests({ target: 'job' })
    const pvc = byKind(r.objects, 'PersistentVolumeClaim')
    const gi = Number(/^(\d+)Gi$/.exec(pvc.spec.resources.requests.storage)![1])
    assert.ok(gi * 2 ** 30 > model.params * 2, `${gi} GiB cannot hold the bf16 weights`)
    assert.equal(byKind(r.objects, 'Job').spec.template.spec.volumes.find((v: Obj) => v.name === 'output').persistentVolumeClaim.claimName, pvc.metadata.name)
  })
})
