/**
 * Run ids: UTC time first so `ls runs/` sorts oldest to newest, then random hex so two runs
 * started in the same second never share a directory.
 */
import { randomBytes } from 'node:crypto'

/** A new run id, e.g. `20261125-221503-3f9a1c`. */
export function newRunId(now: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0')
  const day = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}`
  const time = `${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`
  return `${day}-${time}-${randomBytes(3).toString('hex')}`
}

/** True for strings `newRunId` could have produced; used to tell a run id from a path. */
export function isRunId(value: string): boolean {
  return /^\d{8}-\d{6}-[0-9a-f]{6}$/.test(value)
}
