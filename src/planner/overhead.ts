/**
 * What the device shows beyond PyTorch's allocated tensors: the CUDA context and the caching
 * allocator's slack; plus the cuBLAS workspace, which the allocator does count.
 */
import type { Device } from './types.ts'

// Derived from the seed's load rows (docs/accuracy.md): 15.73 GB - 4 B x 3,821,079,552 = 0.446e9 and
// 8.09 GB - 2 B x P = 0.448e9; inside the 0.3-1.3 GB reported for CUDA >= 11.7 lazy loading (pytorch#107667).
export const CUDA_CONTEXT_BYTES = 0.447e9
// cuBLAS default workspace config ":4096:2:16:8" (cuBLAS docs, CUBLAS_WORKSPACE_CONFIG): 2 x 4096 KiB + 8 x 16 KiB, one stream.
export const CUBLAS_WORKSPACE_BYTES = (2 * 4096 + 8 * 16) * 1024
// Derived (estimators.md §0): fms-acceleration Mistral-7B LoRA, nvidia-smi 31.0e9 vs allocated 26.70e9 B: after the context,
// reserved-but-free blocks ≈ 30% of the ~12e9 B of activations that churn every step (caching allocator, block splitting).
export const ALLOCATOR_SLACK_FRACTION = 0.3
// With PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True segments grow in place instead of splitting fixed blocks;
// the fms Liger rows (nvidia-smi within 3-8% of allocated) bound what is left.
export const EXPANDABLE_SLACK_FRACTION = 0.05

export type OverheadTerms = { contextBytes: number; slackBytes: number; workspaceBytes: number }

/**
 * A device profile's overhead terms, fitted by `headroom sweep --calibrate` from measured runs
 * (src/sweep/calibrate.ts): they replace the published constants above on that device.
 * workspaceBytes is allocated (counted by the allocator, like cuBLAS's workspace); contextBytes
 * and the slack are not.
 */
export type CalibratedOverhead = { profile: string; contextBytes: number; slackFraction: number; workspaceBytes: number }

/**
 * Overhead on one device given the bytes that are allocated and freed every step.
 * @example overheadTerms('cuda', true, 10e9, true) // { contextBytes: 447e6, slackBytes: 500e6, workspaceBytes: 8.5e6 }
 */
export function overheadTerms(device: Device, expandableSegments: boolean, churnBytes: number, ranKernels: boolean, calibrated?: CalibratedOverhead): OverheadTerms {
  if (calibrated) return { contextBytes: calibrated.contextBytes, slackBytes: calibrated.slackFraction * churnBytes, workspaceBytes: ranKernels ? calibrated.workspaceBytes : 0 }
  if (device === 'cpu') return { contextBytes: 0, slackBytes: 0, workspaceBytes: 0 }
  const fraction = expandableSegments ? EXPANDABLE_SLACK_FRACTION : ALLOCATOR_SLACK_FRACTION
  return {
    contextBytes: CUDA_CONTEXT_BYTES,
    slackBytes: fraction * churnBytes,
    workspaceBytes: ranKernels ? CUBLAS_WORKSPACE_BYTES : 0,
  }
}

// What torch.cuda.mem_get_info reports as total on an A100-80GB, ~79.2 GiB of the 80 GiB sold (the driver and
// ECC keep the rest; src/catalog/gpus.ts): plans fit against this share of the vendor figure.
export const DEVICE_USABLE_FRACTION = 79.2 / 80

/** Bytes a process can actually allocate on the GPU. @example usableMemoryBytes(a100) // 85,040,352,460 */
export function usableMemoryBytes(gpu: { memoryBytes: number }): number {
  return Math.floor(gpu.memoryBytes * DEVICE_USABLE_FRACTION)
}
