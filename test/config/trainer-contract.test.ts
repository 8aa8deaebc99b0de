// The contract between `headroom check` and the Python trainer's config loader: the keys each
// training_config section accepts are the keys the trainer accepts, read from the installed
// transformers / peft / bitsandbytes classes, and renamed or removed keys fail both with the fix.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { trainerFieldsText } from '../../scripts/gen-trainer-fields.ts'
import { checkConfig } from '../../src/config/check.ts'
import { SECTION_NAMES, SECTION_SCHEMAS } from '../../src/config/schema.ts'
import { TRAINER_FIELDS } from '../../src/config/trainer-fields.ts'
import { runtimePaths } from '../../src/runtime/python-env.ts'
import { headroom, writeTmp } from '../runtime/helpers.ts'

const paths = runtimePaths()
const skip = existsSync(paths.python) ? undefined : 'no .venv: run bash scripts/setup.sh first (the contract is read from the installed Python libraries)'
const committed = readFileSync(fileURLToPath(new URL('../../src/config/trainer-fields.json', import.meta.url)), 'utf8')

/** Key-level refusals: what `check` says about a key the trainer does not take. */
const KEY_CODES = new Set(['unknown_key', 'renamed_key', 'removed_key'])

function configYaml(section: string, key: string): string {
  return `training_config:\n  ${section}:\n    ${key}: null\n`
}

/** One process of the real loader (config.load_config) over many files: path -> {ok, message}. */
function trainerVerdicts(files: string[]): Record<string, { ok: boolean; message?: string }> {
  const driver = [
    'import json, sys',
    'from headroom_runtime.config import load_config',
    'from headroom_runtime.events import InputError',
    'out = {}',
    'for path in json.load(open(sys.argv[1])):',
    '    try:',
    '        load_config(path); out[path] = {"ok": True}',
    '    except InputError as exc:',
    '        out[path] = {"ok": False, "message": exc.message}',
    'print(json.dumps(out))',
  ].join('\n')
  const list = join(mkdtempSync(join(tmpdir(), 'headroom-contract-')), 'files.json')
  writeFileSync(list, JSON.stringify(files))
  const stdout = execFileSync(paths.python, ['-c', driver, list], {
    env: { ...process.env, PYTHONPATH: paths.pythonPath },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1)!)
}

describe('check and the trainer accept the same keys', () => {
  test('src/config/trainer-fields.json is what the installed libraries accept (rerun: node --import tsx scripts/gen-trainer-fields.ts)', { skip }, () => {
    assert.equal(committed, trainerFieldsText())
  })

  test("each section's schema accepts exactly the trainer's keys; renamed and removed keys are not among them", () => {
    for (const name of SECTION_NAMES) {
      assert.deepEqual(Object.keys(SECTION_SCHEMAS[name].shape).sort(), [...TRAINER_FIELDS.sections[name]].sort(), name)
    }
    for (const path of [...Object.keys(TRAINER_FIELDS.renamed), ...Object.keys(TRAINER_FIELDS.removed)]) {
      const [section, key] = path.split('.')
      assert.ok(!TRAINER_FIELDS.sections[section].includes(key), `${path} is both accepted and renamed/removed`)
    }
  })

  test('for every key of every section, check accepts it iff the real Python loader does', { skip, timeout: 300_000 }, async () => {
    const keys = new Set<string>()
    for (const [section, list] of Object.entries(TRAINER_FIELDS.sections)) for (const key of list) keys.add(`${section}.${key}`)
    for (const name of SECTION_NAMES) for (const key of Object.keys(SECTION_SCHEMAS[name].shape)) keys.add(`${name}.${key}`)
    for (const path of [...Object.keys(TRAINER_FIELDS.renamed), ...Object.keys(TRAINER_FIELDS.removed)]) keys.add(path)
    // Never-valid keys: both must refuse them.
    for (const name of SECTION_NAMES) keys.add(`${name}.not_a_field_of_${name.toLowerCase()}`)
    const dir = mkdtempSync(join(tmpdir(), 'headroom-contract-'))
    const files = new Map<string, string>()
    for (const path of keys) {
      const [section, key] = path.split('.')
      const file = join(dir, `${path}.yaml`)
      writeFileSync(file, configYaml(section, key))
      files.set(path, file)
    }
    const verdicts = trainerVerdicts([...files.values()])
    const disagreements: string[] = []
    let accepted = 0
    for (const [path, file] of files) {
      const result = await checkConfig(readFileSync(file, 'utf8'), { file })
      const refusal = result.issues.find((i) => i.path === path && KEY_CODES.has(i.code))
      const v = verdicts[file]
      const trainerRefuses = !v.ok && v.message!.includes(`${path} is not a known key`)
      if (Boolean(refusal) !== trainerRefuses) {
        disagreements.push(`${path}: check ${refusal ? `refuses (${refusal.code})` : 'accepts'}, trainer ${trainerRefuses ? `refuses (${v.message})` : 'accepts'}`)
      }
      if (!refusal) accepted++
      // A renamed or removed key: both name the fix.
      const renamed = TRAINER_FIELDS.renamed[path]
      if (renamed) {
        assert.equal(refusal?.code, 'renamed_key', path)
        assert.ok(refusal!.message.includes(`rename it to ${renamed.to}`) && v.message!.includes(`rename it to ${renamed.to}`), path)
      }
      if (TRAINER_FIELDS.removed[path]) {
        assert.equal(refusal?.code, 'removed_key', path)
        assert.ok(refusal!.message.includes(TRAINER_FIELDS.removed[path]) && v.message!.includes(TRAINER_FIELDS.removed[path]), path)
      }
    }
    assert.deepEqual(disagreements, [])
    assert.equal(accepted, Object.values(TRAINER_FIELDS.sections).reduce((n, l) => n + l.length, 0))
  })
})

describe('the keys of issue 8 through the CLI and the trainer', () => {
  const cases = [
    { name: 'LoraConfig.exclude_modules (peft accepts it)', body: '  LoraConfig:\n    target_modules: all-linear\n    exclude_modules: [o_proj]\n', code: 0 },
    { name: 'TrainingArguments.max_seq_length (TRL renamed it)', body: '  TrainingArguments:\n    max_seq_length: 2048\n', code: 1, says: 'rename it to max_length' },
    { name: 'TrainingArguments.max_length', body: '  TrainingArguments:\n    max_length: 2048\n', code: 0 },
    { name: 'TrainingArguments.logging_dir (removed in transformers 5)', body: '  TrainingArguments:\n    logging_dir: /tmp/tb\n', code: 1, says: 'TENSORBOARD_LOGGING_DIR' },
  ]
  const files = cases.map((c) => writeTmp('training_config.yaml', `training_config:\n${c.body}`))
  let verdicts: ReturnType<typeof trainerVerdicts> | undefined
  cases.forEach((c, i) => {
    test(c.name, { skip }, async () => {
      const file = files[i]
      const r = await headroom(['check', file, '--json'])
      assert.equal(r.code, c.code, r.stdout + r.stderr)
      verdicts ??= trainerVerdicts(files) // one Python start-up for all cases
      const trainer = verdicts[file]
      assert.equal(trainer.ok, c.code === 0, trainer.message)
      if (c.says) {
        assert.ok(JSON.parse(r.stdout).issues.some((i: { message: string }) => i.message.includes(c.says!)), r.stdout)
        assert.ok(trainer.message!.includes(c.says), trainer.message)
      }
    })
  })
})
