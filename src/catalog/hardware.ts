/** What a job runs on, from a GPU name or a cloud instance type. Pure; no I/O. */
import { ExitError } from '../errors.ts'
import { GIB } from '../units.ts'
import { gpuKey, gpuNames, lookupGpu } from './gpus.ts'
import { SKUS, type Sku } from './skus.ts'
import { didYouMean } from './suggest.ts'
import type { Hardware } from './types.ts'

const SKU_BY_KEY = new Map<string, Sku>(SKUS.map((s) => [s.sku.toLowerCase(), s]))

/**
 * A GPU name (one GPU) or an instance type (its GPUs and count); ExitError with a suggestion
 * when neither matches.
 * @example findHardware('Standard_NC48ads_A100_v4') // { gpu: A100-80GB, count: 2, sku: 'Standard_NC48ads_A100_v4' }
 */
export function findHardware(nameOrSku: string): Hardware {
  const sku = SKU_BY_KEY.get(nameOrSku.trim().toLowerCase())
  if (sku) {
    const gpu = lookupGpu(sku.gpu)
    if (!gpu) throw new Error(`skus.ts names GPU "${sku.gpu}" that gpus.ts lacks: rerun scripts/gen-skus.ts`)
    const memoryBytes = sku.gpuMemoryGiB * GIB
    // the instance's figure wins: a partitioned GPU (Azure Stack NK6: half a T4) exposes less
    return { gpu: memoryBytes === gpu.memoryBytes ? gpu : { ...gpu, memoryBytes }, count: sku.count, sku: sku.sku }
  }
  const gpu = lookupGpu(nameOrSku)
  if (gpu) return { gpu, count: 1 }
  const candidates = [...gpuNames(), ...SKUS.map((s): [string, string] => [gpuKey(s.sku), s.sku])]
  throw new ExitError(
    `unknown GPU or instance type "${nameOrSku}"${didYouMean(gpuKey(nameOrSku), candidates)}`,
    // The edge adds where the list is (`headroom plan --list-gpus`, GET /v1/gpus) by code.
    { path: 'gpu', code: 'unknown_gpu' },
  )
}
