/**
 * What this machine can compute natively. The Python trainer (_model.py) applies the same rule
 * and the same override, so the prediction and the run agree on the compute dtype.
 */
import { readFileSync } from 'node:fs'

/**
 * Whether this CPU has native bf16 matmuls: HEADROOM_CPU_BF16=1 forces yes, =0 forces no (tests
 * cover both paths on any machine); otherwise /proc/cpuinfo lists avx512_bf16 or amx_bf16.
 * @example cpuHasNativeBf16() // false on a CPU without avx512_bf16/amx_bf16
 */
export function cpuHasNativeBf16(env: NodeJS.ProcessEnv = process.env, cpuinfo: () => string = readCpuinfo): boolean {
  const forced = env.HEADROOM_CPU_BF16
  if (forced === '1') return true
  if (forced === '0') return false
  let flags: string
  try {
    flags = cpuinfo()
  } catch {
    return false
  }
  return /\b(avx512_bf16|amx_bf16)\b/.test(flags)
}

function readCpuinfo(): string {
  return readFileSync('/proc/cpuinfo', 'utf8')
}
