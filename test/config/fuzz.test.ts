/**
 * Robustness: 2,000 seeded random mutations of valid configs never throw and always come back
 * as "valid" or "issues"; 20 of them through the real CLI exit 0 or 1 without a stack trace;
 * an alias bomb is refused in well under a second.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parseTuningConfig } from '../../src/config/parse.ts'
import { runRules } from '../../src/config/rules.ts'
import { PHI3_MINI, T4 } from './arch-fixtures.ts'

const run = promisify(execFile)
const fixtures = fileURLToPath(new URL('../fixtures/kaito/', import.meta.url))
const root = fileURLToPath(new URL('../../', import.meta.url))
const SOURCES = readdirSync(fixtures)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(fixtures + f, 'utf8'))
SOURCES.push(
  'training_config:\n  LoraConfig:\n    r: 16\n    target_modules: [qkv_proj]\n  TrainingArguments:\n    max_length: 2048\n    per_device_train_batch_size: 2\n',
)

/** mulberry32: a small seeded PRNG, so every failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const WRONG_VALUES = ['true', '[]', '{}', '"x"', '-1', '0', '1e400', '99999999999999999999999', '.nan', '-.inf', 'null', '~', "''", '[[[]]]', '{a: {b: {c: 1}}}', '0x1F', '0o17', '2001-12-14', '"\\u0000"', '*undefined_alias']
const TAGS = ['!!binary aGVsbG8=', '!!set {a, b}', '!custom x', '!!timestamp 2001-12-14', '!!python/object:os.system ls', '!!omap [a: 1]', '!!str 8', '!!int "x"', '!!float abc', '!<tag:yaml.org,2002:map> {}']

type Mutation = (lines: string[], r: () => number) => string[]
const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)]

const MUTATIONS: Record<string, Mutation> = {
  deleteLine: (l, r) => l.filter((_, i) => i !== Math.floor(r() * l.length)),
  duplicateLine: (l, r) => {
    const i = Math.floor(r() * l.length)
    return [...l.slice(0, i + 1), l[i], ...l.slice(i + 1)]
  },
  reindent: (l, r) => {
    const i = Math.floor(r() * l.length)
    const delta = pick(['', ' ', '  ', '   ', '\t', '      '], r)
    const out = [...l]
    out[i] = r() < 0.5 ? delta + out[i] : out[i].replace(/^ {1,3}/, '')
    return out
  },
  wrongType: (l, r) => {
    const idx = l.map((s, i) => (/:\s*\S/.test(s) ? i : -1)).filter((i) => i >= 0)
    if (!idx.length) return l
    const i = pick(idx, r)
    const out = [...l]
    out[i] = out[i].replace(/:\s*.*$/, `: ${pick(WRONG_VALUES, r)}`)
    return out
  },
  hugeNumber: (l, r) => {
    const idx = l.map((s, i) => (/:\s*-?\d/.test(s) ? i : -1)).filter((i) => i >= 0)
    if (!idx.length) return l
    const out = [...l]
    const i = pick(idx, r)
    out[i] = out[i].replace(/(:\s*)-?[\d.]+/, `$1${pick(['1e308', '-1e308', '9007199254740993', '1' + '0'.repeat(400), '0.0000000000000000001'], r)}`)
    return out
  },
  deepNesting: (l, r) => {
    const depth = 20 + Math.floor(r() * 300)
    const i = Math.floor(r() * l.length)
    const indent = /^ */.exec(l[i])![0]
    const nest = r() < 0.5 ? `${indent}deep: ${'['.repeat(depth)}1${']'.repeat(depth)}` : `${indent}deep: ${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`
    return [...l.slice(0, i), nest, ...l.slice(i)]
  },
  yamlTag: (l, r) => {
    const idx = l.map((s, i) => (/:\s*\S/.test(s) ? i : -1)).filter((i) => i >= 0)
    if (!idx.length) return l
    const out = [...l]
    const i = pick(idx, r)
    out[i] = out[i].replace(/:\s*.*$/, `: ${pick(TAGS, r)}`)
    return out
  },
  anchors: (l, r) => {
    const i = Math.floor(r() * l.length)
    const indent = /^ */.exec(l[i])![0]
    return [...l.slice(0, i), `${indent}a1: &x [1, 2]`, `${indent}<<: *x`, `${indent}b1: *x`, ...l.slice(i)]
  },
  truncate: (l, r) => {
    const text = l.join('\n')
    return text.slice(0, Math.floor(r() * text.length)).split('\n')
  },
  garbage: (l, r) => {
    const i = Math.floor(r() * l.length)
    const chars = Array.from({ length: 1 + Math.floor(r() * 20) }, () => String.fromCharCode(Math.floor(r() * 0x2fff)))
    const out = [...l]
    out[i] = out[i].slice(0, Math.floor(r() * out[i].length)) + chars.join('') + out[i].slice(Math.floor(r() * out[i].length))
    return out
  },
  helm: (l, r) => {
    const i = Math.floor(r() * l.length)
    const indent = /^ */.exec(l[i])![0]
    return [...l.slice(0, i), r() < 0.5 ? `${indent}{{- if .Values.x }}` : `${indent}name: {{ .Values.name | quote }}`, ...l.slice(i)]
  },
  documentSeparator: (l, r) => {
    const i = Math.floor(r() * l.length)
    return [...l.slice(0, i), pick(['---', '...', '--- !!str', '%YAML 1.1'], r), ...l.slice(i)]
  },
}
const NAMES = Object.keys(MUTATIONS)

/** One mutated input: text, or bytes when the mutation broke UTF-8. */
function mutate(seed: number): { input: string | Uint8Array; applied: string[] } {
  const r = rng(seed)
  let lines = pick(SOURCES, r).split('\n')
  const applied: string[] = []
  const n = 1 + Math.floor(r() * 3)
  for (let k = 0; k < n; k++) {
    const name = pick(NAMES, r)
    applied.push(name)
    lines = MUTATIONS[name](lines, r)
  }
  const text = lines.join('\n')
  if (r() < 0.08) {
    // Invalid UTF-8: a lone continuation byte, an overlong form, or a truncated sequence.
    applied.push('invalidUtf8')
    const bytes = Buffer.from(text, 'utf8')
    const at = Math.floor(r() * bytes.length)
    const bad = pick([[0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xff, 0xfe]], r)
    return { input: Buffer.concat([bytes.subarray(0, at), Buffer.from(bad), bytes.subarray(at)]), applied }
  }
  return { input: text, applied }
}

function assertWellFormed(r: ReturnType<typeof parseTuningConfig>, label: string): void {
  for (const i of [...r.issues, ...r.warnings]) {
    assert.equal(typeof i.code, 'string', label)
    assert.equal(typeof i.path, 'string', label)
    assert.ok(i.message.length > 0, label)
    if (i.line !== undefined) assert.ok(i.line >= 1 && Number.isInteger(i.line), `${label}: line ${i.line}`)
    assert.notEqual(i.code, 'rule_failed', `${label}: a rule crashed: ${i.message}`)
  }
  assert.equal(r.value === null, r.issues.length > 0 || !r.units.some((u) => u.raw), label)
}

describe('fuzz', () => {
  test('2,000 seeded mutations never throw and return issues or a value', () => {
    const counts = { valid: 0, invalid: 0 }
    const started = Date.now()
    for (let seed = 1; seed <= 2000; seed++) {
      const { input, applied } = mutate(seed)
      const label = `seed ${seed} (${applied.join(', ')})`
      let r: ReturnType<typeof parseTuningConfig>
      try {
        r = parseTuningConfig(input, { file: 'fuzz.yaml', target: seed % 2 ? 'cluster' : 'local', method: seed % 3 ? 'qlora' : undefined })
      } catch (e) {
        assert.fail(`${label} threw ${(e as Error).stack}`)
      }
      assertWellFormed(r, label)
      // The model- and GPU-aware rules see the same garbage without crashing.
      for (const unit of r.units) {
        if (!unit.raw) continue
        const extra = runRules({ config: unit.raw, target: 'local', model: PHI3_MINI, hardware: T4 })
        assert.ok(extra.every((i) => i.code !== 'rule_failed'), `${label}: ${JSON.stringify(extra.filter((i) => i.code === 'rule_failed'))}`)
      }
      if (r.issues.length) counts.invalid++
      else counts.valid++
    }
    // The mutations must actually break things, and not always.
    assert.ok(counts.invalid > 500, JSON.stringify(counts))
    assert.ok(counts.valid > 100, JSON.stringify(counts))
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`)
  })

  test('invalid UTF-8 is an issue with a position', () => {
    const bytes = Buffer.concat([Buffer.from('training_config:\n  LoraConfig:\n    r: 8'), Buffer.from([0xff]), Buffer.from('\n')])
    const r = parseTuningConfig(bytes, { file: 'bad.yaml' })
    const i = r.issues.find((x) => x.code === 'invalid_utf8')
    assert.ok(i)
    assert.deepEqual([i.line, i.column], [3, 9])
  })

  test('deep nesting is refused, not recursed into', () => {
    const deep = `training_config:\n  LoraConfig:\n    rank_pattern: ${'['.repeat(5000)}${']'.repeat(5000)}\n`
    const r = parseTuningConfig(deep)
    assert.ok(r.issues.length > 0)
  })

  for (const [label, wrap] of [
    ['bare document', (bomb: string) => bomb],
    ['inside training_config.yaml', (bomb: string) => `kind: ConfigMap\napiVersion: v1\ndata:\n  training_config.yaml: |\n${bomb.split('\n').map((l) => `    ${l}`).join('\n')}\n`],
  ] as const) {
    test(`a billion-laughs alias bomb is refused in well under a second (${label})`, () => {
      const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
      for (let i = 1; i < 10; i++) {
        const prev = String.fromCharCode(96 + i)
        const name = String.fromCharCode(97 + i)
        levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`)
      }
      const bomb = `training_config:\n  LoraConfig:\n    r: 8\n${levels.join('\n')}\n`
      const started = performance.now()
      const r = parseTuningConfig(wrap(bomb), { file: 'bomb.yaml' })
      const ms = performance.now() - started
      assert.deepEqual(r.issues.map((i) => i.code), ['yaml_alias_bomb'])
      assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`)
    })
  }

  test('20 mutations through bin/headroom check exit 0 or 1 with no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'headroom-fuzz-'))
    try {
      const seeds = Array.from({ length: 20 }, (_, i) => 7919 * (i + 1))
      const results: { seed: number; code: number; out: string }[] = []
      // Two at a time: the test machine has two cores.
      for (let k = 0; k < seeds.length; k += 2) {
        await Promise.all(
          seeds.slice(k, k + 2).map(async (seed) => {
            const file = join(dir, `fuzz-${seed}.yaml`)
            writeFileSync(file, mutate(seed).input)
            try {
              const { stdout, stderr } = await run(join(root, 'bin/headroom'), ['check', file], { timeout: 30_000 })
              results.push({ seed, code: 0, out: stdout + stderr })
            } catch (e) {
              const err = e as { code?: number; stdout?: string; stderr?: string }
              results.push({ seed, code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` })
            }
          }),
        )
      }
      for (const r of results) {
        assert.ok(r.code === 0 || r.code === 1, `seed ${r.seed}: exit ${r.code}\n${r.out}`)
        assert.doesNotMatch(r.out, /\n\s+at .+:\d+:\d+\)?\n|unexpected error|internal error/, `seed ${r.seed}: stack trace\n${r.out}`)
      }
      assert.ok(results.some((r) => r.code === 1), 'some mutations are invalid')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
