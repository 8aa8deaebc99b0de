/**
 * The trainer's flag choices on both sides of the process boundary: `headroom tune`'s options
 * (src/runtime/trainer-choices.ts and the planner's LOSSES) against what train.py's argparse accepts,
 * read from `python -m headroom_runtime.train --help`. A value one side has and the other refuses
 * would pass the CLI and fail in the trainer (or be offered by the trainer and refused by the CLI).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { command as serveCommand } from '../../src/cli/serve.ts'
import { command } from '../../src/cli/tune.ts'
import { LOSSES } from '../../src/planner/fields.ts'
import { DEVICE_CHOICES, METHOD_CHOICES, PARALLELISMS, WEIGHTS_MODES } from '../../src/runtime/trainer-choices.ts'
import { e2eSkipReason, ROOT } from './helpers.ts'

test("tune's choices for --device, --method, --parallelism, --loss and --weights are train.py's", { skip: e2eSkipReason() }, () => {
  const r = spawnSync(join(ROOT, '.venv', 'bin', 'python'), ['-m', 'headroom_runtime.train', '--help'], { cwd: join(ROOT, 'python'), encoding: 'utf8', timeout: 120_000, env: { ...process.env, COLUMNS: '400' } })
  assert.equal(r.status, 0, r.stderr)
  const python = new Map([...r.stdout.matchAll(/(--[a-z-]+) \{([^}]*)\}/g)].map((m) => [m[1], m[2].split(',')]))
  const tune = command()
  const expected: [string, readonly string[]][] = [
    ['--device', DEVICE_CHOICES], ['--method', METHOD_CHOICES], ['--parallelism', PARALLELISMS], ['--loss', LOSSES], ['--weights', WEIGHTS_MODES],
  ]
  for (const [flag, choices] of expected) {
    assert.deepEqual(python.get(flag), [...choices], `train.py ${flag}`)
    assert.deepEqual(tune.options.find((o) => o.long === flag)?.argChoices, [...choices], `tune ${flag}`)
  }
  // Every flag with choices in train.py is covered here.
  assert.deepEqual([...python.keys()].sort(), expected.map(([f]) => f).sort())
})

test("serve's --device choices are serve.py's, and the trainer's", { skip: e2eSkipReason() }, () => {
  const r = spawnSync(join(ROOT, '.venv', 'bin', 'python'), ['-m', 'headroom_runtime.serve', '--help'], { cwd: join(ROOT, 'python'), encoding: 'utf8', timeout: 120_000, env: { ...process.env, COLUMNS: '400' } })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(/--device \{([^}]*)\}/.exec(r.stdout)?.[1].split(','), [...DEVICE_CHOICES])
  assert.deepEqual(serveCommand().options.find((o) => o.long === '--device')?.argChoices, [...DEVICE_CHOICES])
})
