/**
 * The adapters a command line names: `--adapter NAME=DIR` and KAITO's layout, every
 * subdirectory of `--adapters-dir` holding an adapter_config.json (/mnt/adapter/<name>). Read
 * before the worker starts so a typo is one line and exit 1, not a model load later.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ExitError } from '../errors.ts'

/** An adapter name becomes a model id in URLs and JSON: keep it to a path-safe set. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export type AdapterSpec = { name: string; dir: string }

/** Parses one `--adapter NAME=DIR`, e.g. `docs=runs/20260101-abc`. */
export function parseAdapterFlag(value: string): AdapterSpec {
  const eq = value.indexOf('=')
  if (eq <= 0 || eq === value.length - 1) {
    throw new ExitError(`--adapter ${value}: expected NAME=DIR, e.g. --adapter docs=runs/<run id>`, { path: '--adapter', exitCode: 2 })
  }
  const name = value.slice(0, eq)
  const dir = value.slice(eq + 1)
  if (!NAME.test(name)) throw new ExitError(`--adapter ${value}: the name "${name}" must be letters, digits, ".", "_" or "-" (it becomes a model id)`, { path: '--adapter', exitCode: 2 })
  return { name, dir }
}

/** Checks each adapter directory holds adapter_config.json; exit 1 naming the adapter and the path. */
export function checkAdapterDirs(adapters: AdapterSpec[]): void {
  for (const a of adapters) {
    if (!existsSync(a.dir) || !statSync(a.dir).isDirectory()) throw new ExitError(`--adapter ${a.name}=${a.dir}: no such directory: give the output directory of a tune run`, { path: '--adapter', exitCode: 1 })
    if (!existsSync(join(a.dir, 'adapter_config.json'))) {
      throw new ExitError(`--adapter ${a.name}=${a.dir}: no adapter_config.json there: give a directory a peft adapter was saved to (a finished tune run's output)`, { path: '--adapter', exitCode: 1 })
    }
  }
  const seen = new Set<string>()
  for (const a of adapters) {
    if (seen.has(a.name)) throw new ExitError(`--adapter ${a.name}: named twice: give each adapter its own name`, { path: '--adapter', exitCode: 2 })
    seen.add(a.name)
  }
}

/** KAITO's layout: each subdirectory of `dir` with an adapter_config.json, named by the subdirectory. */
export function adaptersIn(dir: string): AdapterSpec[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ExitError(`--adapters-dir ${dir}: no such directory`, { path: '--adapters-dir', exitCode: 1 })
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'adapter_config.json')))
    .map((e) => ({ name: e.name, dir: join(dir, e.name) }))
    .sort((a, b) => a.name.localeCompare(b.name))
}
