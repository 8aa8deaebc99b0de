/**
 * `--target job`: for clusters without KAITO, a batch/v1 Job that runs Headroom's runtime image
 * (docker/Dockerfile) on the instance type, plus a headless Service for multi-node rendezvous
 * and a PersistentVolumeClaim for the output when none is given. Pure.
 *
 * Failure handling (podFailurePolicy, batch/v1, Kubernetes >= 1.26 beta, GA 1.31):
 * - a disruption (preemption, eviction, node drain: the pod gets the DisruptionTarget condition)
 *   is ignored, so it does not count against backoffLimit; the replacement pod finds the
 *   checkpoint the trainer wrote on SIGTERM in the output volume and resumes from it;
 * - the trainer's out-of-memory exit (3) and bad-input exit (1) fail the Job at once: retrying
 *   the same config on the same GPU cannot succeed;
 * - anything else (a crash, exit 2) is retried up to backoffLimit, resuming too.
 * podFailurePolicy requires restartPolicy Never.
 */
import { TRAINER_EXIT } from '../runtime/exit-codes.ts'
import type { DataSource } from './sources.ts'
import { gpuPodPlacement, labels, metadata, shellQuote, type Meta } from './objects.ts'

export { RUNTIME_UID } from './objects.ts'

/** Where the pod sees things (the same paths KAITO's tuning pod uses). */
export const MOUNTS = { config: '/mnt/config', output: '/mnt/output', data: '/mnt/data' } as const

/** torchrun's default rendezvous port (torch.distributed.run --master_port). */
export const RDZV_PORT = 29500

/** The container's name: podFailurePolicy's exit-code rule names it. */
export const TRAINER_CONTAINER = 'trainer'


/** Retries for failures that are neither disruptions nor the trainer's own verdicts (OOM, bad input). */
export const BACKOFF_LIMIT = 3

export type JobSpec = {
  meta: Meta
  instanceType: string
  image: string
  configMap: string
  /** What train.py --model gets: a hub id. */
  modelRef: string
  /** Absent: the trainer reads DatasetConfig.dataset_path, else its built-in example data. */
  data?: DataSource
  outputClaim: string
  /** Processes (GPUs) per node. */
  nproc: number
  nnodes: number
  /** train.py --predicted-peak-bytes: allocated bytes at max_length, echoed in its events. */
  predictedPeakAllocatedBytes: number
  graceSeconds: number
  annotations: Record<string, string>
}

/** The headless Service's name: pods of an Indexed Job are `<job>-<index>.<service>`. */
export function rendezvousService(job: string): string {
  return `${job}-rdzv`
}

/** The Service (multi-node only) and the Job, in apply order. */
export function jobObjects(spec: JobSpec): Record<string, unknown>[] {
  const name = spec.meta.name
  const multiNode = spec.nnodes > 1
  const svc = rendezvousService(name)
  const podLabels = { ...labels(name, 'trainer') }
  const out: Record<string, unknown>[] = []
  if (multiNode) {
    out.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: metadata({ ...spec.meta, name: svc }, { labels: labels(name, 'rendezvous') }),
      spec: {
        clusterIP: 'None',
        // Rendezvous happens before any pod is Ready: publish the addresses at once.
        publishNotReadyAddresses: true,
        selector: { 'batch.kubernetes.io/job-name': name },
        ports: [{ name: 'rendezvous', port: RDZV_PORT, targetPort: RDZV_PORT, protocol: 'TCP' }],
      },
    })
  }
  const gpus = String(spec.nproc)
  const volumes: Record<string, unknown>[] = [
    { name: 'config', configMap: { name: spec.configMap } },
    { name: 'output', persistentVolumeClaim: { claimName: spec.outputClaim } },
    // NCCL and DataLoader workers share tensors through /dev/shm; the container default is 64 MiB.
    { name: 'dshm', emptyDir: { medium: 'Memory' } },
  ]
  const mounts: Record<string, unknown>[] = [
    { name: 'config', mountPath: MOUNTS.config, readOnly: true },
    { name: 'output', mountPath: MOUNTS.output },
    { name: 'dshm', mountPath: '/dev/shm' },
  ]
  if (spec.data?.kind === 'pvc') {
    volumes.push({ name: 'data', persistentVolumeClaim: { claimName: spec.data.claim, readOnly: true } })
    mounts.push({ name: 'data', mountPath: MOUNTS.data, readOnly: true })
  }
  out.push({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(spec.meta, { labels: labels(name, 'trainer'), annotations: spec.annotations }),
    spec: {
      ...(multiNode ? { completionMode: 'Indexed', completions: spec.nnodes, parallelism: spec.nnodes } : { completions: 1, parallelism: 1 }),
      backoffLimit: BACKOFF_LIMIT,
      podFailurePolicy: {
        rules: [
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          { action: 'FailJob', onExitCodes: { containerName: TRAINER_CONTAINER, operator: 'In', values: [TRAINER_EXIT.oom] } },
          { action: 'FailJob', onExitCodes: { containerName: TRAINER_CONTAINER, operator: 'In', values: [TRAINER_EXIT.badInput] } },
        ],
      },
      template: {
        metadata: { labels: podLabels },
        spec: {
          restartPolicy: 'Never',
          ...(multiNode ? { subdomain: svc } : {}),
          terminationGracePeriodSeconds: spec.graceSeconds,
          ...gpuPodPlacement(spec.instanceType),
          containers: [
            {
              name: TRAINER_CONTAINER,
              image: spec.image,
              command: ['/bin/sh', '-c', trainerScript(spec)],
              env: [
                // Before torch initialises CUDA: fewer fragmentation OOMs (KAITO's tuning pod sets the same).
                { name: 'PYTORCH_CUDA_ALLOC_CONF', value: 'expandable_segments:True' },
                // JSON-lines events reach the pod log as they happen.
                { name: 'PYTHONUNBUFFERED', value: '1' },
                // Weights downloaded once onto the output volume survive a restart.
                { name: 'HF_HOME', value: `${MOUNTS.output}/.cache/huggingface` },
                // Gated models (Llama) need a token: a Secret `hf-token` with key `token`, when present.
                { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf-token', key: 'token', optional: true } } },
              ],
              resources: { requests: { 'nvidia.com/gpu': gpus }, limits: { 'nvidia.com/gpu': gpus } },
              ...(multiNode ? { ports: [{ name: 'rendezvous', containerPort: RDZV_PORT, protocol: 'TCP' }] } : {}),
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  })
  return out
}

/**
 * The container's shell script: resume when the output volume holds a complete checkpoint
 * (the trainer's own _checkpoint.find decides), then exec the trainer, under torchrun when
 * there is more than one process. The trainer's JSON-lines events go to stdout: the pod log.
 */
export function trainerScript(spec: JobSpec): string {
  const train = [
    '-m',
    'headroom_runtime.train',
    '--config',
    `${MOUNTS.config}/training_config.yaml`,
    '--model',
    spec.modelRef,
    '--output',
    MOUNTS.output,
    '--device',
    'cuda',
    '--predicted-peak-bytes',
    String(spec.predictedPeakAllocatedBytes),
    ...(spec.data ? ['--data', spec.data.kind === 'url' ? spec.data.url : spec.data.path ? `${MOUNTS.data}/${spec.data.path}` : MOUNTS.data] : []),
  ]
    .map(shellQuote)
    .join(' ')
  let launcher = 'python'
  if (spec.nnodes > 1) {
    const master = `${spec.meta.name}-0.${rendezvousService(spec.meta.name)}`
    launcher = `torchrun --nnodes=${spec.nnodes} --nproc_per_node=${spec.nproc} --node_rank="$JOB_COMPLETION_INDEX" --master_addr=${master} --master_port=${RDZV_PORT}`
  } else if (spec.nproc > 1) {
    launcher = `torchrun --standalone --nnodes=1 --nproc_per_node=${spec.nproc}`
  }
  const probe = `python -c 'import sys, pathlib; from headroom_runtime._checkpoint import find; sys.exit(0 if find(pathlib.Path(sys.argv[1])) else 1)' ${MOUNTS.output}`
  return [
    'set -eu',
    'resume=""',
    `if ${probe}; then resume="--resume-from ${MOUNTS.output}"; fi`,
    `exec ${launcher} ${train} $resume`,
    '',
  ].join('\n')
}

/** A claim for the output (adapter, checkpoints, the weights cache) when --output-volume names none. */
export function outputClaimObject(meta: Meta, instance: string, storageGi: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: metadata(meta, { labels: labels(instance, 'output') }),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: `${storageGi}Gi` } },
    },
  }
}
