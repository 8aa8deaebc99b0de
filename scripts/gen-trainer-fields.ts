/**
 * Writes src/config/trainer-fields.json: the keys the Python trainer accepts per training_config
 * section, read from the installed transformers / peft / bitsandbytes classes by
 * `python -m headroom_runtime.config fields`, plus the renamed and removed keys with their fixes.
 * `headroom check` accepts exactly these keys (src/config/schema.ts). A test regenerates it from
 * the installed libraries and fails on any difference; rerun after changing python/requirements.lock:
 *   node --import tsx scripts/gen-trainer-fields.ts
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runtimePaths } from '../src/runtime/python-env.ts'

export function trainerFieldsText(): string {
  const paths = runtimePaths()
  const out = execFileSync(paths.python, ['-m', 'headroom_runtime.config', 'fields'], {
    cwd: paths.root,
    env: { ...process.env, PYTHONPATH: paths.pythonPath },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return `${JSON.stringify(JSON.parse(out), null, 1)}\n`
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../src/config/trainer-fields.json', import.meta.url))
  writeFileSync(file, trainerFieldsText())
  console.log(`wrote ${file}`)
}
