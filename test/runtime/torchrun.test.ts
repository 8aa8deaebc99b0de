// The pure side of distributed runs (src/runtime/torchrun.ts): torchrun's arguments, and the
// failed rank read from torchrun's failure report (text as torch 2.13's elastic agent prints it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { describeRankFailure, isDistributed, rootCause, torchrunArgs, worldSize } from '../../src/runtime/torchrun.ts'

const REPORT = `torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
headroom_runtime.train FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-03_10:37:51
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 31072)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 31072
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_10:37:51
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 31073)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 31073
============================================================`

test('the root cause is the first observed failure, not the ranks torchrun stopped after it', () => {
  assert.deepEqual(rootCause(REPORT.split('\n')), { rank: 1, exitCode: null, signal: 'SIGKILL', pid: 31073 })
  const exited = REPORT.replace('exitcode  : -9 (pid: 31073)', 'exitcode  : 2 (pid: 31073)')
  assert.deepEqual(rootCause(exited.split('\n')), { rank: 1, exitCode: 2, signal: null, pid: 31073 })
  assert.equal(rootCause(['headroom: saved adapter', 'no report here']), null)
})

test('the failure line names the rank, the signal and how to resume', () => {
  const f = { rank: 1, exitCode: null, signal: 'SIGKILL', pid: 31073 }
  assert.equal(
    describeRankFailure(f, '/runs/a', 4),
    'rank 1 (pid 31073) was killed by SIGKILL (often the kernel’s out-of-memory killer); torchrun stopped the other ranks; the last checkpoint (step 4) is resumable: headroom tune --resume /runs/a',
  )
  assert.match(describeRankFailure({ ...f, signal: null, exitCode: 2 }, '/runs/a', null), /rank 1 \(pid 31073\) exited with code 2; .*no checkpoint was written yet/)
})

test('one node is standalone; several nodes use a static rendezvous at the master', () => {
  assert.deepEqual(torchrunArgs({ nproc: 2 }), ['--nproc-per-node', '2', '--standalone', '--max-restarts', '0'])
  assert.deepEqual(torchrunArgs({ nproc: 4, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.5', masterPort: 29500 }), [
    '--nproc-per-node', '4', '--nnodes', '2', '--node-rank', '1', '--master-addr', '10.0.0.5', '--master-port', '29500', '--max-restarts', '0',
  ])
  assert.equal(worldSize({ nproc: 4, nnodes: 2 }), 8)
  assert.equal(isDistributed({}), false)
  assert.equal(isDistributed({ nproc: 1 }), false)
  assert.equal(isDistributed({ nproc: 1, nnodes: 2 }), true)
})
