/**
 * Where the Python runtime lives and what set-up it still needs. The project venv is `.venv`
 * at the repository root (HEADROOM_ROOT, which bin/headroom sets, or two folders above this
 * file); it is built from python/requirements.lock exactly as scripts/setup.sh does. This
 * module only looks at files; supervisor.ts runs the commands it returns (the only spawner).
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export type RuntimePaths = {
  root: string
  venvDir: string
  /** The venv's interpreter: what every trainer run uses. */
  python: string
  /** Put on PYTHONPATH so `python -m headroom_runtime.train` resolves from the checkout. */
  pythonPath: string
  lockFile: string
  /** Copy of the lock the venv was built from; a mismatch means the venv is stale. */
  stampFile: string
  assetsDir: string
  /** The embedded tiny Phi-3 (random weights, local tokenizer) the default run fine-tunes. */
  defaultModelDir: string
}

/** Paths of the project's Python runtime, e.g. `runtimePaths().python` → `<root>/.venv/bin/python`. */
export function runtimePaths(root: string = projectRoot()): RuntimePaths {
  const venvDir = join(root, '.venv')
  return {
    root,
    venvDir,
    python: join(venvDir, 'bin', 'python'),
    pythonPath: join(root, 'python'),
    lockFile: join(root, 'python', 'requirements.lock'),
    stampFile: join(venvDir, '.requirements.lock'),
    assetsDir: join(root, '.headroom', 'assets'),
    defaultModelDir: join(root, '.headroom', 'assets', 'tiny-phi3'),
  }
}

/** The checkout root: HEADROOM_ROOT when set, else resolved from this file's location. */
export function projectRoot(): string {
  if (process.env.HEADROOM_ROOT) return resolve(process.env.HEADROOM_ROOT)
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
}

export type SetupNeeds = { venv: boolean; assets: boolean }

/** What is missing: a venv built from the current lock, and the embedded default model. */
export function setupNeeds(paths: RuntimePaths): SetupNeeds {
  const venvCurrent =
    existsSync(paths.python) &&
    existsSync(paths.stampFile) &&
    existsSync(paths.lockFile) &&
    readFileSync(paths.stampFile, 'utf8') === readFileSync(paths.lockFile, 'utf8')
  return { venv: !venvCurrent, assets: !existsSync(join(paths.defaultModelDir, 'config.json')) }
}

export type SetupCommand = {
  /** The progress line printed before the command runs. */
  label: string
  command: string
  args: string[]
  env?: Record<string, string>
  /** Copy the lock into the venv once every command succeeded (marks the venv current). */
  stampAfter?: boolean
}

/** The commands that bring the runtime up to date, in order; empty when nothing is missing. */
export function setupCommands(paths: RuntimePaths, needs: SetupNeeds = setupNeeds(paths)): SetupCommand[] {
  const commands: SetupCommand[] = []
  if (needs.venv) {
    commands.push({
      label: `headroom: creating the Python runtime in ${paths.venvDir} (torch 2.13.0 CPU, transformers, peft, bitsandbytes; a few minutes, once)…`,
      command: 'python3',
      args: ['-m', 'venv', paths.venvDir],
    })
    commands.push({
      label: `headroom: installing ${paths.lockFile}…`,
      command: paths.python,
      args: ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', paths.lockFile],
      stampAfter: true,
    })
  }
  if (needs.assets) {
    commands.push({
      label: `headroom: building the embedded tiny model in ${paths.assetsDir}…`,
      command: paths.python,
      args: ['-m', 'headroom_runtime.assets', 'ensure'],
      env: { PYTHONPATH: paths.pythonPath },
    })
  }
  return commands
}
