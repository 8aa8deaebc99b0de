// `headroom tune --nproc 2` end to end through bin/headroom with the REAL trainer under torchrun
// (two CPU ranks, gloo) on the tiny Llama: DDP and FSDP runs whose per-rank peaks meet the
// planner's per-rank prediction, SIGTERM then --resume with nothing lost, a rank killed with
// SIGKILL failing the run with a clear message and a resumable checkpoint, and usage errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { missingCheckpointFiles } from '../../src/runtime/checkpoints.ts'
import { e2eSkipReason, headroom, lastJsonLine, methodConfig, SUMMARY_KEYS, TINY_LLAMA, tmp, writeTmp } from './helpers.ts'

const skip = e2eSkipReason()
const NO_STACK = /Traceback|\n\s+at [\w.<]+ \(/
const STEPS = 8
const config = () =>
  writeTmp('config.yaml', methodConfig('lora', { per_device_train_batch_size: 2, max_length: 96, max_steps: STEPS, save_strategy: 'steps', save_steps: 2, learning_rate: 0.003 }))
const record = (dir: string) => JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'))
const straight: Record<string, Record<string, any>> = {}

for (const parallelism of ['ddp', 'fsdp'] as const) {
  test(`tune --nproc 2 --parallelism ${parallelism}: one adapter, loss drops, each rank within 20% of the per-rank prediction`, { skip, timeout: 300_000 }, async () => {
    const out = join(tmp(), 'run')
    const r = await headroom(['tune', '--json', '--nproc', '2', '--parallelism', parallelism, '--model', TINY_LLAMA, '--config', config(), '--output', out])
    assert.equal(r.code, 0, r.stderr)
    const summary = lastJsonLine(r.stdout) as Record<string, any>
    straight[parallelism] = summary
    assert.deepEqual(Object.keys(summary).sort(), SUMMARY_KEYS)
    assert.equal(summary.state, 'succeeded')
    assert.equal(summary.steps, STEPS)
    assert.equal(summary.ranks, 2)
    assert.ok(summary.lastLoss < summary.firstLoss, `loss drops: ${summary.firstLoss} -> ${summary.lastLoss}`)
    assert.equal(summary.measuredPeakBytesPerRank.length, 2)
    for (const [rank, bytes] of summary.measuredPeakBytesPerRank.entries()) {
      const ratio = bytes / summary.predictedPeakBytes
      assert.ok(ratio > 0.8 && ratio < 1.2, `rank ${rank}: measured ${bytes} vs predicted ${summary.predictedPeakBytes} per rank (${ratio.toFixed(3)}x)`)
    }
    assert.equal(summary.measuredPeakBytes, Math.max(...summary.measuredPeakBytesPerRank))
    // One progress view (rank 0's steps), the effective batch said at start, the per-rank peaks at the end.
    assert.equal((r.stderr.match(/^step 1\/8 /gm) ?? []).length, 1, r.stderr)
    assert.match(r.stderr, new RegExp(`2 ranks \\(${parallelism}\\): effective batch 4 = 2 per device × 2 ranks × 1 gradient accumulation`))
    assert.match(r.stderr, /peak per rank: rank 0 .*, rank 1 /)
    // One adapter, written by rank 0, and the record agrees with the summary.
    assert.ok(existsSync(join(out, 'adapter_model.safetensors')) && existsSync(join(out, 'fine_tuning_completed.txt')))
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('adapter_model')), ['adapter_model.safetensors'])
    assert.deepEqual(record(out).summary, summary)
  })
}

test('tune --nproc 2 --parallelism fsdp --loss chunked: the chunked loss inside the FSDP wrapper trains and rank 0 saves one adapter', { skip, timeout: 300_000 }, async () => {
  const out = join(tmp(), 'run')
  const cfg = writeTmp('config-chunked.yaml', methodConfig('lora', { per_device_train_batch_size: 2, max_length: 96, max_steps: 2, save_strategy: 'no', learning_rate: 0.003 }))
  const r = await headroom(['tune', '--json', '--nproc', '2', '--parallelism', 'fsdp', '--loss', 'chunked', '--model', TINY_LLAMA, '--config', cfg, '--output', out])
  assert.equal(r.code, 0, r.stderr)
  const summary = lastJsonLine(r.stdout) as Record<string, any>
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 2)
  assert.equal(summary.ranks, 2)
  assert.ok(Number.isFinite(summary.firstLoss) && Number.isFinite(summary.lastLoss))
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('adapter_model')), ['adapter_model.safetensors'])
  // The adapter is named as a one-process run names it (the loss module's prefix stripped from FSDP's full state):
  // lora_A and lora_B of the configured targets (methodConfig: q_proj, v_proj) in each of the tiny Llama's 2 blocks.
  const file = readFileSync(join(out, 'adapter_model.safetensors'))
  const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>
  const keys = Object.keys(header).filter((k) => k !== '__metadata__')
  assert.equal(keys.length, 2 * 2 * 2, keys.join(' '))
  for (const k of keys) assert.match(k, /^base_model\.model\.model\.layers\.[01]\.self_attn\.[qv]_proj\.lora_[AB]\.weight$/)
  assert.equal(record(out).summary.state, 'succeeded')
})

test('SIGTERM to the supervisor during a 2-rank run, then --resume: same step count, nothing lost', { skip, timeout: 400_000 }, async () => {
  const out = join(tmp(), 'run')
  const cfg = config()
  let sent = false
  const first = await headroom(['tune', '--nproc', '2', '--model', TINY_LLAMA, '--config', cfg, '--output', out, '--log-every', '1'], {
    onStderr: (stderr, child) => {
      if (!sent && /^step 3\/8 /m.test(stderr)) {
        sent = true
        child.kill('SIGTERM')
      }
    },
  })
  assert.ok(sent, first.stderr)
  assert.equal(first.code, 1, first.stderr)
  assert.doesNotMatch(first.stderr, NO_STACK)
  const stopped = record(out)
  assert.equal(stopped.state, 'preempted', first.stderr)
  assert.match(first.stderr, /stopped on SIGTERM at step \d+ after writing a checkpoint; continue with: headroom tune --resume/)
  const at = stopped.summary.steps as number
  assert.ok(at >= 3 && at < STEPS, `stopped at ${at}`)
  assert.ok(existsSync(join(out, `checkpoint-${at}`)) && missingCheckpointFiles(join(out, `checkpoint-${at}`)).length === 0)

  const resumed = await headroom(['tune', '--json', '--resume', out])
  assert.equal(resumed.code, 0, resumed.stderr)
  const summary = lastJsonLine(resumed.stdout) as Record<string, any>
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, STEPS)
  assert.equal(summary.ranks, 2, 'the resumed run keeps --nproc 2')
  assert.equal(summary.firstLoss, stopped.summary.firstLoss)
  assert.match(resumed.stderr, new RegExp(`resuming after step ${at}`))
  // Same data order, optimizer state and RNG as the uninterrupted DDP run above.
  if (straight.ddp) assert.ok(Math.abs(summary.lastLoss - straight.ddp.lastLoss) < 1e-4, `${summary.lastLoss} vs ${straight.ddp.lastLoss}`)
})

test('a rank killed with SIGKILL fails the run with a clear message; the last checkpoint resumes', { skip, timeout: 400_000 }, async () => {
  const out = join(tmp(), 'run')
  let killed: number | null = null
  const r = await headroom(['tune', '--nproc', '2', '--model', TINY_LLAMA, '--config', config(), '--output', out, '--log-every', '1'], {
    onStderr: (stderr) => {
      if (killed === null && /^step 3\/8 /m.test(stderr)) {
        // torchrun's pid is in the record while it runs; its children are the ranks.
        const workers = childrenOf(record(out).pid)
        assert.equal(workers.length, 2, `torchrun ${record(out).pid} has workers ${workers}`)
        killed = workers[1]
        process.kill(killed, 'SIGKILL')
      }
    },
  })
  assert.ok(killed !== null, r.stderr)
  assert.equal(r.code, 1, r.stderr)
  assert.doesNotMatch(r.stderr, NO_STACK)
  assert.match(r.stderr, new RegExp(`the run failed: rank \\d \\(pid ${killed}\\) was killed by SIGKILL.*; torchrun stopped the other ranks; the last checkpoint \\(step \\d+\\) is resumable: headroom tune --resume ${out}`))
  const rec = record(out)
  assert.equal(rec.state, 'failed')
  const last = Math.max(...rec.checkpoints.map((c: { step: number }) => c.step))
  assert.ok(last >= 2 && missingCheckpointFiles(join(out, `checkpoint-${last}`)).length === 0, JSON.stringify(rec.checkpoints))

  const resumed = await headroom(['tune', '--json', '--resume', out])
  assert.equal(resumed.code, 0, resumed.stderr)
  const summary = lastJsonLine(resumed.stdout) as Record<string, any>
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, STEPS)
  assert.match(resumed.stderr, new RegExp(`resuming after step ${last}`))
})

test('two nodes on loopback (--nnodes 2, one supervisor each) finish one training run', { skip, timeout: 300_000 }, async () => {
  const port = await freePort()
  const cfg = config()
  const node = (rank: number, out: string) =>
    headroom(['tune', '--json', '--nproc', '1', '--nnodes', '2', '--node-rank', String(rank), '--master-addr', '127.0.0.1', '--master-port', String(port), '--model', TINY_LLAMA, '--config', cfg, '--output', out])
  const [out0, out1] = [join(tmp(), 'node0'), join(tmp(), 'node1')]
  const [r0, r1] = await Promise.all([node(0, out0), node(1, out1)])
  assert.equal(r0.code, 0, r0.stderr)
  assert.equal(r1.code, 0, r1.stderr)
  const [s0, s1] = [lastJsonLine(r0.stdout), lastJsonLine(r1.stdout)] as Record<string, any>[]
  // One run: both nodes trained the same steps with the same (all-reduced) loss...
  assert.equal(s0.steps, STEPS)
  assert.equal(s1.steps, STEPS)
  assert.equal(s0.lastLoss, s1.lastLoss)
  assert.equal(s0.ranks, 2)
  // ...and only node 0 (global rank 0) wrote the adapter.
  assert.equal(s0.adapterDir, out0)
  assert.ok(existsSync(join(out0, 'adapter_model.safetensors')) && existsSync(join(out0, 'fine_tuning_completed.txt')))
  assert.equal(s1.adapterDir, null)
  assert.ok(!existsSync(join(out1, 'adapter_model.safetensors')))
  assert.ok(s1.measuredPeakBytesPerRank[1] > 0, 'node 1 measured its own rank')
})

test('distributed usage errors exit 2 with one line and start nothing', async () => {
  const cases: [string[], RegExp][] = [
    [['--nproc', '0'], /--nproc must be a whole number of at least 1, got "0"/],
    [['--nproc', '2', '--nnodes', '2', '--node-rank', '0'], /--nnodes 2 needs --master-addr/],
    [['--nproc', '2', '--nnodes', '2', '--master-addr', '127.0.0.1', '--master-port', '29500'], /--nnodes 2 needs --node-rank/],
    [['--nnodes', '2', '--node-rank', '2', '--master-addr', '127.0.0.1', '--master-port', '29500'], /--node-rank 2 is out of range for --nnodes 2: use 0 to 1/],
    [['--parallelism', 'fsdp'], /--parallelism fsdp shards across ranks and needs at least 2 \(got 1\)/],
    [['--nproc', '1', '--parallelism', 'fsdp'], /--parallelism fsdp shards across ranks and needs at least 2/],
    [['--nproc', '2', '--master-port', '29500'], /--master-addr and --master-port are for multi-node runs/],
    [['--nproc', '2', '--parallelism', 'zero'], /zero/],
  ]
  for (const [flags, message] of cases) {
    const out = join(tmp(), 'run')
    const r = await headroom(['tune', ...flags, '--output', out])
    assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, message, flags.join(' '))
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.ok(!existsSync(join(out, 'run.json')), 'nothing started')
  }
})

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer()
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => done(port))
    })
  })
}

/** Child pids of a process (Linux /proc), e.g. torchrun's ranks. */
function childrenOf(pid: number): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found.sort((a, b) => a - b)
}
