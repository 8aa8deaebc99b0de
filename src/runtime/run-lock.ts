/**
 * `<output>/.headroom.lock`: the live run that holds an output directory. Two runs writing
 * one directory would replace each other's adapter and run.json, so the second is refused
 * with the holder named. The lock names its holder by pid AND that process's start time, so
 * a lock left by a supervisor that died (SIGKILL, a crashed server) reads as stale even after
 * the pid is reused; a stale lock is taken over, and its run reads as `lost`.
 */
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ExitError } from '../errors.ts'

export const LOCK_FILE = '.headroom.lock'

export type LockHolder = {
  runId: string
  pid: number
  /** The holder's start time as the kernel counts it (/proc/<pid>/stat field 22), or null off Linux. */
  startTicks: number | null
  host: string
  since: string
}

/** Path of the lock in a run's output directory. */
export function lockPath(outputDir: string): string {
  return join(outputDir, LOCK_FILE)
}

/** A process's start time in clock ticks since boot (Linux), or null when it cannot be read. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[19])
    return Number.isFinite(ticks) ? ticks : null
  } catch {
    return null
  }
}

/** The lock's holder, or null when the directory is not locked (or the file is unreadable). */
export function readLock(outputDir: string): LockHolder | null {
  try {
    const holder = JSON.parse(readFileSync(lockPath(outputDir), 'utf8')) as LockHolder
    return typeof holder.pid === 'number' ? holder : null
  } catch {
    return null
  }
}

/**
 * Whether the holder is still running: same host, the pid exists, and it started when the
 * lock says (a pid reused by another process has another start time).
 */
export function holderAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true // cannot tell from here: assume it is
  try {
    process.kill(holder.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const ticks = processStartTicks(holder.pid)
  return holder.startTicks === null || ticks === null || ticks === holder.startTicks
}

/** Locked by a live process, stale (its holder is gone), or free. */
export function lockState(outputDir: string): { kind: 'free' } | { kind: 'held' | 'stale'; holder: LockHolder } {
  const holder = readLock(outputDir)
  if (!holder) return { kind: 'free' }
  return { kind: holderAlive(holder) ? 'held' : 'stale', holder }
}

/**
 * Takes the lock for this process, taking over a stale one. Refuses (ExitError, exit 1) when
 * a live run holds it. Returns the release function and the stale holder it replaced, if any.
 * @example const { release } = acquireLock('runs/x', 'x'); try { … } finally { release() }
 */
export function acquireLock(outputDir: string, runId: string): { release: () => void; replaced: LockHolder | null } {
  const me: LockHolder = { runId, pid: process.pid, startTicks: processStartTicks(process.pid), host: hostname(), since: new Date().toISOString() }
  let replaced: LockHolder | null = null
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      // O_EXCL: of two runs racing for the directory, exactly one creates the file.
      const fd = openSync(lockPath(outputDir), 'wx')
      writeSync(fd, `${JSON.stringify(me)}\n`)
      closeSync(fd)
      return { release: () => releaseLock(outputDir, me), replaced }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const state = lockState(outputDir)
    if (state.kind === 'held') throw heldError(outputDir, state.holder)
    if (state.kind === 'stale') replaced = state.holder
    try {
      unlinkSync(lockPath(outputDir))
    } catch {
      // Another process removed it first; the next O_EXCL open decides who gets it.
    }
  }
  const holder = readLock(outputDir)
  throw heldError(outputDir, holder ?? { runId: 'another run', pid: 0, startTicks: null, host: '?', since: '?' })
}

function heldError(outputDir: string, holder: LockHolder): ExitError {
  return new ExitError(
    `--output ${outputDir} is in use by run ${holder.runId} (pid ${holder.pid} on ${holder.host}, since ${holder.since}); wait for it to finish or stop it, or choose another --output`,
    { path: '--output', exitCode: 1 },
  )
}

/** Removes the lock if this process still holds it. */
function releaseLock(outputDir: string, me: LockHolder): void {
  const holder = readLock(outputDir)
  if (holder && holder.pid === me.pid && holder.since === me.since && existsSync(lockPath(outputDir))) {
    try {
      unlinkSync(lockPath(outputDir))
    } catch {
      // Already gone: nothing to release.
    }
  }
}
