/**
 * The three kinds of failure Headroom reports. One tone everywhere: what is wrong, the
 * value, what to change. Only cli/main.ts turns these into exit codes.
 */

/** One structured problem with an input, zod-style: a code, where it is, and the message. */
export type Issue = {
  code: string
  /** Dotted path into the input, e.g. `LoraConfig.target_modules` or `--batch`. */
  path: string
  message: string
  severity?: 'error' | 'warning'
  /** 1-based source position when the input came from a file. */
  line?: number
  column?: number
  file?: string
}

/** The input is invalid; every issue was collected before throwing. Exit code 1. */
export class ConfigError extends Error {
  readonly issues: Issue[]
  constructor(issues: Issue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n'))
    this.name = 'ConfigError'
    this.issues = issues
  }
}

/**
 * The user asked for something that cannot be done as asked (unknown flag value, model or
 * GPU; impossible combination). Carries its own exit code; 2 by default.
 */
export class ExitError extends Error {
  readonly exitCode: number
  /** The field at fault (its JSON name, e.g. `gpu`), when there is one; the edge names it as a flag or a field. */
  readonly path?: string
  /** What kind of problem, e.g. `unknown_model`, so an edge can add what it offers (a list command, a route). */
  readonly code?: string
  constructor(message: string, opts: { exitCode?: number; path?: string; code?: string } = {}) {
    super(message)
    this.name = 'ExitError'
    this.exitCode = opts.exitCode ?? 2
    this.path = opts.path
    this.code = opts.code
  }
}

/** A bug in Headroom, not in the input. Printed with a request to report it. */
export class InternalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'InternalError'
  }
}

/** Renders issues one per line as `path: message` (with file:line:col when known). */
export function formatIssues(issues: readonly Issue[]): string {
  return issues
    .map((i) => {
      const where = i.file ? `${i.file}${i.line ? `:${i.line}:${i.column ?? 1}` : ''} ` : ''
      const tag = i.severity === 'warning' ? 'warning' : 'error'
      return `${where}${tag} ${i.path}: ${i.message}`
    })
    .join('\n')
}
