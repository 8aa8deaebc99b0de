/**
 * GPU models Headroom plans for. memoryBytes is the nominal capacity in GiB (what KAITO's SKU
 * tables and nvidia-smi's "Total" round to); the CUDA allocator can use slightly less, because
 * the driver and ECC reserve some (an A100-80GB shows ~79.2 GiB to torch). The planner's
 * overhead term accounts for that, not this table. bf16Tflops is dense (no 2:4 sparsity)
 * tensor-core throughput with FP32 accumulate, from the vendor datasheet or whitepaper cited
 * on each entry; 0 where the GPU has no bf16 tensor cores.
 */
import { ExitError } from '../errors.ts'
import { GIB } from '../units.ts'
import { didYouMean } from './suggest.ts'
import type { Gpu } from './types.ts'

export const GPUS: readonly Gpu[] = [
  {
    // NVIDIA H200 datasheet (SXM): 141 GB HBM3e, 4.8 TB/s, BF16 1,979 TFLOPS with sparsity
    name: 'H200',
    aliases: ['H200-141GB', 'H200 SXM', 'H200-SXM', 'NVIDIA H200'],
    memoryBytes: 141 * GIB,
    bf16Tflops: 989, // TFLOP/s dense
    bandwidthGBps: 4800, // GB/s
    bf16: true,
    computeCapability: '9.0',
  },
  {
    // NVIDIA H100 datasheet (SXM5): 80 GB HBM3, 3.35 TB/s, BF16 1,979 TFLOPS with sparsity
    name: 'H100-80GB',
    aliases: ['H100', 'H100-SXM', 'H100 SXM5', 'H100-SXM-80GB', 'H100 80GB HBM3', 'NVIDIA H100 80GB HBM3'],
    memoryBytes: 80 * GIB,
    bf16Tflops: 989, // TFLOP/s dense
    bandwidthGBps: 3350, // GB/s
    bf16: true,
    computeCapability: '9.0',
  },
  {
    // NVIDIA H100 datasheet (PCIe): 80 GB HBM2e, 2 TB/s, BF16 1,513 TFLOPS with sparsity
    name: 'H100-PCIe-80GB',
    aliases: ['H100-PCIe', 'H100 PCIe', 'NVIDIA H100 PCIe'],
    memoryBytes: 80 * GIB,
    bf16Tflops: 756, // TFLOP/s dense
    bandwidthGBps: 2000, // GB/s
    bf16: true,
    computeCapability: '9.0',
  },
  {
    // NVIDIA H100 datasheet (NVL, per GPU): 94 GB HBM3, 3.9 TB/s, BF16 1,671 TFLOPS with sparsity.
    // Azure's NC H100 v5 (Standard_NC40ads_H100_v5) runs this card.
    name: 'H100-NVL-94GB',
    aliases: ['H100-NVL', 'H100 NVL', 'H100-94GB', 'NVIDIA H100 NVL'],
    memoryBytes: 94 * GIB,
    bf16Tflops: 835, // TFLOP/s dense
    bandwidthGBps: 3900, // GB/s
    bf16: true,
    computeCapability: '9.0',
  },
  {
    // NVIDIA A100 datasheet: 80 GB HBM2e, 2,039 GB/s (SXM; PCIe 1,935 GB/s), BF16 312 TFLOPS dense
    name: 'A100-80GB',
    aliases: ['A100', 'A100-SXM4-80GB', 'A100 80GB PCIe', 'A100-PCIe-80GB', 'NVIDIA A100-SXM4-80GB', 'NVIDIA A100 80GB PCIe'],
    memoryBytes: 80 * GIB,
    bf16Tflops: 312, // TFLOP/s dense
    bandwidthGBps: 2039, // GB/s
    bf16: true,
    computeCapability: '8.0',
  },
  {
    // NVIDIA A100 datasheet: 40 GB HBM2, 1,555 GB/s, BF16 312 TFLOPS dense
    name: 'A100-40GB',
    aliases: ['A100-SXM4-40GB', 'A100-PCIe-40GB', 'NVIDIA A100-SXM4-40GB', 'NVIDIA A100-PCIE-40GB'],
    memoryBytes: 40 * GIB,
    bf16Tflops: 312, // TFLOP/s dense
    bandwidthGBps: 1555, // GB/s
    bf16: true,
    computeCapability: '8.0',
  },
  {
    // NVIDIA A10 datasheet: 24 GB GDDR6, 600 GB/s, BF16 125 TFLOPS dense (250 with sparsity)
    name: 'A10',
    aliases: ['NVIDIA A10', 'A10-24GB'],
    memoryBytes: 24 * GIB,
    bf16Tflops: 125, // TFLOP/s dense
    bandwidthGBps: 600, // GB/s
    bf16: true,
    computeCapability: '8.6',
  },
  {
    // AWS-only A10 variant (g5); NVIDIA publishes no datasheet. 24 GB, 600 GB/s as the A10;
    // 70 TFLOPS bf16 tensor from Baseten's "NVIDIA A10 vs A10G for ML model inference" table.
    name: 'A10G',
    aliases: ['NVIDIA A10G', 'A10G-24GB'],
    memoryBytes: 24 * GIB,
    bf16Tflops: 70, // TFLOP/s dense
    bandwidthGBps: 600, // GB/s
    bf16: true,
    computeCapability: '8.6',
  },
  {
    // NVIDIA L4 datasheet: 24 GB GDDR6, 300 GB/s, BF16 242 TFLOPS with sparsity
    name: 'L4',
    aliases: ['NVIDIA L4', 'L4-24GB'],
    memoryBytes: 24 * GIB,
    bf16Tflops: 121, // TFLOP/s dense
    bandwidthGBps: 300, // GB/s
    bf16: true,
    computeCapability: '8.9',
  },
  {
    // NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, BF16 362.05 TFLOPS dense (733 with sparsity)
    name: 'L40S',
    aliases: ['NVIDIA L40S', 'L40S-48GB'],
    memoryBytes: 48 * GIB,
    bf16Tflops: 362, // TFLOP/s dense
    bandwidthGBps: 864, // GB/s
    bf16: true,
    computeCapability: '8.9',
  },
  {
    // NVIDIA T4 datasheet: 16 GB GDDR6, 320 GB/s, FP16 65 TFLOPS; Turing has no bf16
    name: 'T4',
    aliases: ['Tesla T4', 'NVIDIA T4', 'T4-16GB'],
    memoryBytes: 16 * GIB,
    bf16Tflops: 0,
    bandwidthGBps: 320, // GB/s
    bf16: false,
    computeCapability: '7.5',
  },
  {
    // NVIDIA V100 datasheet (SXM2 16 GB): 900 GB/s, FP16 tensor 125 TFLOPS; Volta has no bf16
    name: 'V100-16GB',
    aliases: ['V100', 'Tesla V100', 'V100-SXM2-16GB', 'Tesla V100-SXM2-16GB', 'V100-PCIe-16GB'],
    memoryBytes: 16 * GIB,
    bf16Tflops: 0,
    bandwidthGBps: 900, // GB/s
    bf16: false,
    computeCapability: '7.0',
  },
  {
    // NVIDIA V100 datasheet (SXM2 32 GB): 900 GB/s, FP16 tensor 125 TFLOPS; Volta has no bf16
    name: 'V100-32GB',
    aliases: ['V100-SXM2-32GB', 'Tesla V100-SXM2-32GB', 'V100-PCIe-32GB', 'V100S'],
    memoryBytes: 32 * GIB,
    bf16Tflops: 0,
    bandwidthGBps: 900, // GB/s
    bf16: false,
    computeCapability: '7.0',
  },
  {
    // AMD Instinct MI300X datasheet: 192 GB HBM3, 5.3 TB/s, BF16 1,307.4 TFLOPS dense.
    // ROCm reports an architecture name (gfx942), not a CUDA compute capability.
    name: 'MI300X',
    aliases: ['AMD MI300X', 'AMD Instinct MI300X', 'Instinct MI300X'],
    memoryBytes: 192 * GIB,
    bf16Tflops: 1307, // TFLOP/s dense
    bandwidthGBps: 5300, // GB/s
    bf16: true,
    computeCapability: 'gfx942',
  },
  {
    // NVIDIA Ada Lovelace architecture whitepaper (RTX 4090): 24 GB GDDR6X, 1,008 GB/s,
    // BF16 tensor with FP32 accumulate 165.2 TFLOPS dense
    name: 'RTX-4090',
    aliases: ['RTX 4090', 'GeForce RTX 4090', 'NVIDIA GeForce RTX 4090', '4090'],
    memoryBytes: 24 * GIB,
    bf16Tflops: 165, // TFLOP/s dense
    bandwidthGBps: 1008, // GB/s
    bf16: true,
    computeCapability: '8.9',
  },
  {
    // NVIDIA Ampere GA102 whitepaper (RTX 3090): 24 GB GDDR6X, 936 GB/s,
    // BF16 tensor with FP32 accumulate 71 TFLOPS dense
    name: 'RTX-3090',
    aliases: ['RTX 3090', 'GeForce RTX 3090', 'NVIDIA GeForce RTX 3090', '3090'],
    memoryBytes: 24 * GIB,
    bf16Tflops: 71, // TFLOP/s dense
    bandwidthGBps: 936, // GB/s
    bf16: true,
    computeCapability: '8.6',
  },
  {
    // NVIDIA Ampere GA102 whitepaper (RTX A6000): 48 GB GDDR6, 768 GB/s,
    // BF16 tensor with FP32 accumulate 154.8 TFLOPS dense
    name: 'RTX-A6000',
    aliases: ['RTX A6000', 'A6000', 'NVIDIA RTX A6000'],
    memoryBytes: 48 * GIB,
    bf16Tflops: 155, // TFLOP/s dense
    bandwidthGBps: 768, // GB/s
    bf16: true,
    computeCapability: '8.6',
  },
  {
    // NVIDIA Ada Lovelace architecture whitepaper (RTX 6000 Ada): 48 GB GDDR6, 960 GB/s,
    // BF16 tensor with FP32 accumulate 364.2 TFLOPS dense
    name: 'RTX-6000-Ada',
    aliases: ['RTX 6000 Ada', 'RTX 6000 Ada Generation', 'NVIDIA RTX 6000 Ada Generation', 'RTX6000-Ada'],
    memoryBytes: 48 * GIB,
    bf16Tflops: 364, // TFLOP/s dense
    bandwidthGBps: 960, // GB/s
    bf16: true,
    computeCapability: '8.9',
  },
  {
    // NVIDIA RTX Blackwell GPU architecture whitepaper (RTX 5090): 32 GB GDDR7, 1,792 GB/s,
    // BF16 tensor with FP32 accumulate 209.5 TFLOPS dense
    name: 'RTX-5090',
    aliases: ['RTX 5090', 'GeForce RTX 5090', 'NVIDIA GeForce RTX 5090', '5090'],
    memoryBytes: 32 * GIB,
    bf16Tflops: 209.5, // TFLOP/s dense
    bandwidthGBps: 1792, // GB/s
    bf16: true,
    computeCapability: '12.0',
  },
]

/** Lower-case, no vendor prefix, spaces/underscores/dashes dropped: `NVIDIA A100 80GB` → `a10080gb`. */
export function gpuKey(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/^(nvidia|amd)[\s_-]+/, '')
    .replace(/^(geforce|tesla|instinct)[\s_-]+/, '')
    .replace(/[\s_-]+/g, '')
}

const BY_KEY = new Map<string, Gpu>()
for (const gpu of GPUS) {
  for (const n of [gpu.name, ...gpu.aliases]) {
    const key = gpuKey(n)
    const taken = BY_KEY.get(key)
    if (taken && taken !== gpu) throw new Error(`GPU alias "${n}" is used by ${taken.name} and ${gpu.name}`)
    BY_KEY.set(key, gpu)
  }
}

/** Every GPU spelling (normalised by gpuKey) paired with its canonical name, for "did you mean". */
export function gpuNames(): [string, string][] {
  return GPUS.flatMap((g) => [g.name, ...g.aliases].map((n): [string, string] => [gpuKey(n), g.name]))
}

/** The GPU with this name or alias (any case, with or without "NVIDIA ", dashes or spaces), or undefined. */
export function lookupGpu(name: string): Gpu | undefined {
  return BY_KEY.get(gpuKey(name))
}

/**
 * The GPU with this name or alias; ExitError with a suggestion when unknown.
 * @example findGpu('nvidia a100 80gb').name // 'A100-80GB'
 */
export function findGpu(name: string): Gpu {
  const gpu = lookupGpu(name)
  if (gpu) return gpu
  throw new ExitError(
    `unknown GPU "${name}"${didYouMean(gpuKey(name), gpuNames())}`,
    { path: 'gpu', code: 'unknown_gpu' },
  )
}

/** Every GPU in the catalog. */
export function listGpus(): Gpu[] {
  return [...GPUS]
}
