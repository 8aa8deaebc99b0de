/**
 * Which engine serves: the transformers worker (any device, adapters switched per request) or
 * vLLM's OpenAI server (GPU only, one model id per LoRA adapter). Pure: the caller probes
 * whether vLLM imports and whether a GPU is present, and this decides.
 */
import type { DeviceChoice } from '../runtime/trainer-choices.ts'

export type EngineChoice = 'auto' | 'transformers' | 'vllm'

export type EngineFacts = {
  requested: EngineChoice
  /** The venv imports vllm (and its detail: version, or the import error's last line). */
  vllm: { ok: boolean; detail: string }
  /** NVIDIA GPUs the driver lists, and whether torch in the venv is a CUDA build. */
  gpus: string[]
  torchCuda: boolean
  device: DeviceChoice
}

export type EngineDecision = { engine: 'transformers' | 'vllm'; why: string } | { error: string }

/**
 * `auto` takes vLLM only when it imports, a GPU is present and --device is not cpu;
 * `vllm` asked for where it cannot run is an error that says which condition failed.
 * @example decideEngine({ requested: 'auto', vllm: { ok: false, detail: 'No module named vllm' }, gpus: [], torchCuda: false, device: 'auto' })
 */
export function decideEngine(f: EngineFacts): EngineDecision {
  const missing: string[] = []
  if (!f.vllm.ok) missing.push(`vllm does not import in the venv (${f.vllm.detail}): pip install vllm into .venv on a GPU machine`)
  if (f.gpus.length === 0) missing.push('no NVIDIA GPU is present (vLLM serves on GPUs only)')
  else if (!f.torchCuda) missing.push('torch in the venv is a CPU build')
  if (f.device === 'cpu') missing.push('--device cpu was asked for')
  if (f.requested === 'transformers') return { engine: 'transformers', why: '--engine transformers' }
  if (f.requested === 'vllm') {
    return missing.length === 0 ? { engine: 'vllm', why: `--engine vllm (${f.vllm.detail}, ${f.gpus[0]})` } : { error: `--engine vllm cannot run here: ${missing.join('; ')}. Use --engine transformers (or auto)` }
  }
  return missing.length === 0 ? { engine: 'vllm', why: `auto: ${f.vllm.detail} and ${f.gpus[0]}` } : { engine: 'transformers', why: `auto: ${missing[0]}` }
}

/**
 * The arguments of `python -m vllm.entrypoints.openai.api_server` for the same command line:
 * LoRA adapters as `--lora-modules name=path` (vLLM's docs, "Using LoRA adapters"), each
 * served under its own model id, the base under --model.
 */
export function vllmArgs(opts: {
  model: string
  adapters: { name: string; dir: string }[]
  host: string
  port: number
  token?: string
  maxConcurrency: number
}): string[] {
  const args = ['--model', opts.model, '--host', opts.host, '--port', String(opts.port), '--max-num-seqs', String(opts.maxConcurrency)]
  if (opts.adapters.length > 0) {
    args.push('--enable-lora', '--lora-modules', ...opts.adapters.map((a) => `${a.name}=${a.dir}`))
  }
  if (opts.token) args.push('--api-key', opts.token)
  return args
}
