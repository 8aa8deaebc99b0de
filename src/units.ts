/**
 * Units and their formatting. Every byte count in Headroom is a plain number of bytes;
 * names carry the unit (`peakBytes`, `bytesPerParam`).
 */

/** 1 GiB = 2^30 bytes. */
export const GIB = 1024 ** 3
/** 1 MiB = 2^20 bytes. */
export const MIB = 1024 ** 2
/** 1 GB = 10^9 bytes (the seed and most vendor tables use this). */
export const GB = 1e9

export type Dtype = 'fp32' | 'fp16' | 'bf16'
export type Quant = 'none' | 'int8' | 'nf4' | 'fp4'

/** Bytes per element of each floating dtype (IEEE 754 / bfloat16 storage sizes). */
export const BYTES_PER_ELEMENT: Record<Dtype, number> = { fp32: 4, fp16: 2, bf16: 2 }

/** Formats bytes as GiB with one decimal, e.g. `27.4 GiB`. */
export function formatGiB(bytes: number, digits = 1): string {
  return `${(bytes / GIB).toFixed(digits)} GiB`
}

/** Formats bytes with the largest binary unit that keeps the number >= 1, e.g. `812 MiB`. */
export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes)
  if (abs >= GIB) return `${(bytes / GIB).toFixed(abs >= 100 * GIB ? 0 : 1)} GiB`
  if (abs >= MIB) return `${(bytes / MIB).toFixed(abs >= 100 * MIB ? 0 : 1)} MiB`
  if (abs >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${Math.round(bytes)} B`
}

/** Formats an integer with thousands separators, e.g. `3,821,079,552`. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

// torch dtype spellings (torch.float32 and its aliases) and Headroom's own short names.
const TORCH_DTYPE_NAMES: Record<string, Dtype> = {
  float32: 'fp32', float: 'fp32', fp32: 'fp32',
  bfloat16: 'bf16', bf16: 'bf16',
  float16: 'fp16', half: 'fp16', fp16: 'fp16',
}

/** Maps a torch dtype name to a Dtype, e.g. `torch.bfloat16` → `bf16`; undefined for others (float64, auto). */
export function dtypeFromTorchName(name: unknown): Dtype | undefined {
  if (typeof name !== 'string') return undefined
  return TORCH_DTYPE_NAMES[name.replace(/^torch\./, '')]
}
