/**
 * Times recommend() (the search behind `plan --recommend`) on the seed's case and a few others:
 * candidates searched, how many were planned, and wall time cold (first call in the process)
 * and warm (median of repeats). Target: at least 10,000 candidates in under 200 ms. Writes
 * bench/results/plan-speed.json.
 *
 *   node --import tsx bench/plan-speed.ts
 */
import { writeFileSync, mkdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findHardware, findModelSync } from '../src/catalog/index.ts'
import { recommend, searchFit, type RecommendOptions } from '../src/planner/recommend.ts'
import { memoryTerms } from '../src/planner/peak.ts'
import type { PlanInput } from '../src/planner/types.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const REPEATS = 15

function base(model: string, gpu: string, patch: Partial<PlanInput> = {}): PlanInput {
  const arch = findModelSync(model)
  if (!arch) throw new Error(`no catalog model ${model}`)
  return {
    model: arch, phase: 'train', method: 'qlora', dtype: 'bf16', quant: 'nf4', doubleQuant: true, rank: 8, alpha: 8, loraDropout: 0,
    targets: ['k_proj', 'q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj'], batch: 1, seq: 2048,
    gradientCheckpointing: true, attention: 'sdpa', optimizer: 'adamw', gpu: findHardware(gpu).gpu, gpus: 1,
    parallelism: 'ddp', device: 'cuda', expandableSegments: true, ...patch,
  }
}

const cases: { name: string; input: PlanInput; opts: RecommendOptions }[] = [
  { name: 'seed: phi-3-mini-128k qlora, A100-80GB, seq 2048 (plan --recommend)', input: base('phi-3-mini-128k-instruct', 'A100-80GB'), opts: {} },
  { name: 'phi-3-mini-128k, A100-80GB, seq 3500', input: base('phi-3-mini-128k-instruct', 'A100-80GB'), opts: { seq: 3500 } },
  { name: 'llama-3.1-8b, A10G, seq 4096', input: base('llama-3.1-8b', 'A10G', { targets: ['q_proj', 'v_proj'] }), opts: { seq: 4096 } },
  { name: 'phi-3-mini-128k, A100-80GB, max-context', input: base('phi-3-mini-128k-instruct', 'A100-80GB'), opts: { goal: 'max-context' } },
]

// One planning call alone, for scale.
const probe = cases[0].input
let t = performance.now()
for (let i = 0; i < 20_000; i++) memoryTerms({ ...probe, batch: 1 + (i % 64) })
const microsPerPlan = ((performance.now() - t) / 20_000) * 1000

const results = cases.map(({ name, input, opts }) => {
  const t0 = performance.now()
  const stats = searchFit(input, opts)
  const coldMs = performance.now() - t0
  const first = stats.recommendation
  const times: number[] = []
  for (let i = 0; i < REPEATS; i++) {
    const s = performance.now()
    recommend(input, opts)
    times.push(performance.now() - s)
  }
  times.sort((a, b) => a - b)
  return {
    name,
    candidatesSearched: first?.candidatesSearched ?? stats.planned,
    planned: stats.planned,
    coldMs: Number(coldMs.toFixed(1)),
    warmMedianMs: Number(times[Math.floor(times.length / 2)].toFixed(1)),
    warmMaxMs: Number(times[times.length - 1].toFixed(1)),
    chosen: first ? `${first.input.method} ${first.input.quant} r${first.input.rank} batch ${first.input.batch} seq ${first.input.seq} gc ${first.input.gradientCheckpointing} ${first.input.attention} ${first.input.optimizer}` : 'nothing fits',
  }
})

const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version }
console.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`)
console.log(`one memoryTerms call: ${microsPerPlan.toFixed(2)} µs\n`)
for (const r of results) {
  const ok = r.candidatesSearched >= 10_000 && r.coldMs < 200 ? 'meets target' : r.candidatesSearched < 10_000 ? 'fewer than 10,000 candidates' : 'over 200 ms'
  console.log(`${r.name}\n  ${r.candidatesSearched.toLocaleString('en-US')} candidates, all planned (${r.planned.toLocaleString('en-US')}), cold ${r.coldMs} ms, warm median ${r.warmMedianMs} ms (max ${r.warmMaxMs}) — ${ok}\n  chose ${r.chosen}`)
}
mkdirSync(join(root, 'bench', 'results'), { recursive: true })
writeFileSync(join(root, 'bench', 'results', 'plan-speed.json'), `${JSON.stringify({ machine, microsPerPlan, results }, null, 2)}\n`)
