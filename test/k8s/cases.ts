/** The golden render cases: each one's options and the file its YAML is compared with. */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { RenderOptions } from '../../src/k8s/index.ts'

export const GOLDEN_DIR = fileURLToPath(new URL('./golden/', import.meta.url))
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))

/** KAITO's own example dataset (examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml). */
export const DOLLY = 'https://huggingface.co/datasets/philschmid/dolly-15k-oai-style/resolve/main/data/train-00000-of-00001-54e3756291ca09c6.parquet?download=true'

const fixture = (p: string) => readFileSync(FIXTURES + p)

export const GOLDEN_CASES: Record<string, RenderOptions> = {
  // KAITO's example Workspace, rendered: QLoRA template, URL input, adapter pushed as an image.
  'kaito-image-output.yaml': { target: 'kaito', name: 'workspace-tuning-phi-3', data: DOLLY, outputImage: 'myregistry.azurecr.io/phi-3-adapter:0.0.1', pushSecret: 'acr-push-secret' },
  // KAITO's PVC example: LoRA template, input and output on claims, in a namespace.
  'kaito-pvc.yaml': {
    target: 'kaito',
    method: 'lora',
    name: 'workspace-tuning-phi-3',
    namespace: 'tuning',
    data: 'pvc:pvc-azurefile-input/dolly/train.parquet',
    outputVolume: 'pvc:pvc-azurefile-output',
  },
  // The seed's QLoRA config as a Job on Headroom's runtime, with a claim rendered for the output.
  'job-single.yaml': { target: 'job', config: fixture('k8s/seed-qlora.yaml'), configFile: 'seed-qlora.yaml', name: 'phi3-qlora', data: DOLLY },
  // Two GPUs on one node: torchrun --standalone.
  'job-nproc.yaml': { target: 'job', gpu: 'Standard_NC48ads_A100_v4', nproc: 2, name: 'phi3-ddp', outputVolume: 'pvc:results', data: 'pvc:datasets/train.jsonl' },
  // Two nodes of two GPUs: an Indexed Job and a headless Service for torchrun's rendezvous.
  'job-multinode.yaml': {
    target: 'job',
    gpu: 'Standard_NC48ads_A100_v4',
    nnodes: 2,
    name: 'phi3-multinode',
    namespace: 'tuning',
    outputVolume: 'pvc:results-rwx',
    data: 'pvc:datasets/train.jsonl',
    image: 'myregistry.azurecr.io/headroom-runtime:0.1.0',
  },
}
