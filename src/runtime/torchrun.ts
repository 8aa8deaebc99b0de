/**
 * Distributed runs: what `headroom tune --nproc N [--nnodes ...]` asks of torchrun
 * (python -m torch.distributed.run), checked before anything starts, and how to read its end.
 * Pure: supervisor.ts spawns; this module only builds argument lists and reads log lines.
 *
 * One node: `--standalone` (a local c10d rendezvous on a free port). Several nodes: a static
 * rendezvous, `--nnodes N --node-rank R --master-addr A --master-port P`, every node running
 * the same command with its own rank (on Kubernetes, one pod of an Indexed Job per node).
 */
import { ExitError } from '../errors.ts'
import type { Parallelism } from './trainer-choices.ts'

export type { Parallelism } from './trainer-choices.ts'

export type DistributedOptions = {
  /** Processes (ranks) on this node; 1 or undefined on one node = no torchrun. */
  nproc?: number
  parallelism?: Parallelism
  nnodes?: number
  nodeRank?: number
  masterAddr?: string
  masterPort?: number
}

/** The number of ranks in the whole run (processes per node x nodes). */
export function worldSize(d: DistributedOptions): number {
  return (d.nproc ?? 1) * (d.nnodes ?? 1)
}

/** True when the trainer runs under torchrun (more than one rank, or an explicit multi-node run). */
export function isDistributed(d: DistributedOptions): boolean {
  return worldSize(d) > 1 || (d.nnodes ?? 1) > 1
}

/** How `tune` spells each distributed field; `POST /v1/runs` uses the JSON names (nproc, parallelism). */
const FLAGS: Record<keyof DistributedOptions, string> = {
  nproc: '--nproc', parallelism: '--parallelism', nnodes: '--nnodes', nodeRank: '--node-rank', masterAddr: '--master-addr', masterPort: '--master-port',
}

/**
 * Refuses combinations torchrun would fail on later, or silently misread, as usage errors
 * (exit 2, one line naming the field and what to change). The rules live here once; each edge
 * names the fields its own way: `tune` as flags (the default), the HTTP API as JSON fields
 * (`names: 'fields'`, turned into a 400 issue on the ExitError's path).
 */
export function checkDistributed(d: DistributedOptions, names: 'flags' | 'fields' = 'flags'): void {
  const n = (f: keyof DistributedOptions) => (names === 'flags' ? FLAGS[f] : f)
  const usage = (f: keyof DistributedOptions, message: string): never => {
    throw new ExitError(message, { path: n(f), exitCode: 2 })
  }
  const nnodes = d.nnodes ?? 1
  const multiNode = d.nnodes !== undefined && d.nnodes > 1
  if (d.nodeRank !== undefined && d.nnodes === undefined) usage('nodeRank', `${n('nodeRank')} ${d.nodeRank} needs ${n('nnodes')} (how many nodes the run spans)`)
  if (d.nodeRank !== undefined && d.nodeRank >= nnodes) usage('nodeRank', `${n('nodeRank')} ${d.nodeRank} is out of range for ${n('nnodes')} ${nnodes}: use 0 to ${nnodes - 1}`)
  if (multiNode && d.nodeRank === undefined) usage('nodeRank', `${n('nnodes')} ${nnodes} needs ${n('nodeRank')} (0 on the node at ${n('masterAddr')}, 1..${nnodes - 1} on the others)`)
  if (multiNode && !d.masterAddr) usage('masterAddr', `${n('nnodes')} ${nnodes} needs ${n('masterAddr')} (the address of node rank 0, reachable from every node)`)
  if (multiNode && d.masterPort === undefined) usage('masterPort', `${n('nnodes')} ${nnodes} needs ${n('masterPort')} (a free TCP port on node rank 0, the same on every node)`)
  if (!multiNode && (d.masterAddr !== undefined || d.masterPort !== undefined)) {
    usage(d.masterAddr !== undefined ? 'masterAddr' : 'masterPort', `${n('masterAddr')} and ${n('masterPort')} are for multi-node runs: add ${n('nnodes')} N ${n('nodeRank')} R, or drop them (one node finds a free port itself)`)
  }
  if (d.parallelism === 'fsdp' && worldSize(d) < 2) {
    usage('parallelism', `${n('parallelism')} fsdp shards across ranks and needs at least 2 (got ${worldSize(d)}): add ${n('nproc')} 2 or more`)
  }
  if (d.parallelism !== undefined && !isDistributed(d)) usage('parallelism', `${n('parallelism')} ${d.parallelism} needs more than one rank: add ${n('nproc')} N`)
}

/** torchrun's own flags, placed before `-m headroom_runtime.train`. */
export function torchrunArgs(d: DistributedOptions): string[] {
  const args = ['--nproc-per-node', String(d.nproc ?? 1)]
  if ((d.nnodes ?? 1) > 1) {
    args.push('--nnodes', String(d.nnodes), '--node-rank', String(d.nodeRank ?? 0), '--master-addr', String(d.masterAddr), '--master-port', String(d.masterPort))
  } else {
    args.push('--standalone')
  }
  // A rank that dies ends the run at once rather than restarting the group from scratch.
  args.push('--max-restarts', '0')
  return args
}

export type RankFailure = { rank: number; exitCode: number | null; signal: string | null; pid: number | null }

/**
 * The first failed rank from torchrun's failure report on stderr ("Root Cause (first observed
 * failure): ... rank : 1 (local_rank: 1) ... exitcode : -9 (pid: 123)"); a negative exit code
 * is the signal that killed the worker.
 */
export function rootCause(lines: string[]): RankFailure | null {
  const start = lines.findIndex((l) => l.includes('Root Cause (first observed failure)'))
  if (start < 0) return null
  let rank: number | null = null
  for (const line of lines.slice(start + 1)) {
    const r = /^\s*rank\s*:\s*(\d+)/.exec(line)
    if (r) rank = Number(r[1])
    const e = /^\s*exitcode\s*:\s*(-?\d+)(?:\s*\(pid:\s*(\d+)\))?/.exec(line)
    if (e && rank !== null) {
      const code = Number(e[1])
      return { rank, exitCode: code >= 0 ? code : null, signal: code < 0 ? signalName(-code) : null, pid: e[2] ? Number(e[2]) : null }
    }
  }
  return null
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' }

function signalName(n: number): string {
  return SIGNALS[n] ?? `signal ${n}`
}

/** One line on a rank's failure, with how to continue. */
export function describeRankFailure(f: RankFailure, outputDir: string, lastCheckpointStep: number | null): string {
  const how = f.signal
    ? `was killed by ${f.signal}${f.signal === 'SIGKILL' ? ' (often the kernel’s out-of-memory killer)' : ''}`
    : `exited with code ${f.exitCode}`
  const resume = lastCheckpointStep !== null
    ? `the last checkpoint (step ${lastCheckpointStep}) is resumable: headroom tune --resume ${outputDir}`
    : 'no checkpoint was written yet (set TrainingArguments.save_strategy to keep progress)'
  return `rank ${f.rank}${f.pid !== null ? ` (pid ${f.pid})` : ''} ${how}; torchrun stopped the other ranks; ${resume}`
}
