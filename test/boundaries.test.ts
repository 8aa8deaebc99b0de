/**
 * DESIGN.md §1's boundaries, read from the source: every import in src/ (static, re-export and
 * dynamic) is checked against the rules below, and the test names each crossing with its file.
 * - catalog/, planner/ and config/ import nothing from runtime/, server/, k8s/ or cli/;
 * - planner/ is pure and synchronous: nothing from config/ or request/ (resolution lives above
 *   it), no node: built-ins, no package but zod, no async code, no process or fetch;
 * - only runtime/supervisor.ts spawns (node:child_process); only k8s/submit.ts talks to a
 *   cluster (@kubernetes/client-node); only cli/main.ts calls process.exit.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const SRC = resolve(import.meta.dirname, '..', 'src')

type Import = { file: string; spec: string; line: number }

/** The module specifiers a TypeScript file imports: `import ... from`, `export ... from`, `import(...)`. */
export function importsOf(text: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = []
  const patterns = [
    /^\s*(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
  ]
  for (const re of patterns) {
    for (const m of text.matchAll(re)) out.push({ spec: m[1], line: text.slice(0, m.index).split('\n').length })
  }
  return out
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(p)
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : []
  })
}

/** The top-level area of src/ a file or relative specifier lands in: `planner`, `config`, ... or `.` for src/*.ts. */
function areaOf(absPath: string): string {
  const rel = relative(SRC, absPath)
  if (rel.startsWith('..')) return '(outside src)'
  const parts = rel.split('/')
  return parts.length > 1 ? parts[0] : '.'
}

const files = sourceFiles(SRC).map((abs) => ({ abs, rel: relative(SRC, abs), text: readFileSync(abs, 'utf8') }))
const imports: (Import & { area: string; target: string | null })[] = files.flatMap((f) =>
  importsOf(f.text).map(({ spec, line }) => ({
    file: f.rel,
    spec,
    line,
    area: areaOf(f.abs),
    // A relative import's area; null for a package or built-in. Template specifiers (`./${name}.ts`) stay in their folder.
    target: spec.startsWith('.') ? areaOf(resolve(dirname(f.abs), spec.replace(/\$\{[^}]*\}/g, 'x'))) : null,
  })),
)

const at = (i: Import) => `src/${i.file}:${i.line} imports ${i.spec}`

test('the import reader sees static, re-export, side-effect and dynamic imports', () => {
  const text = [
    "import { a } from '../config/index.ts'",
    "import type { B } from './b.ts'",
    "export { c } from \"./c.ts\"",
    "import 'side-effect'",
    'const m = await import(`./${name}.ts`)',
    "  const { x } = await import('../runtime/index.ts')",
  ].join('\n')
  assert.deepEqual(importsOf(text).map((i) => i.spec).sort(), ['../config/index.ts', '../runtime/index.ts', './${name}.ts', './b.ts', './c.ts', 'side-effect'].sort())
  assert.ok(imports.length > 100, `read ${imports.length} imports from ${files.length} files`)
  assert.ok(files.some((f) => f.rel === 'planner/plan.ts') && files.some((f) => f.rel === 'cli/main.ts'))
})

test('catalog/, planner/ and config/ import nothing from runtime/, server/, k8s/ or cli/', () => {
  const crossings = imports.filter((i) => ['catalog', 'planner', 'config'].includes(i.area) && ['runtime', 'server', 'k8s', 'cli'].includes(i.target ?? ''))
  assert.deepEqual(crossings.map(at), [])
})

test('planner/ is pure and synchronous: no config/ or request/, no built-ins, no I/O, no async', () => {
  const planner = imports.filter((i) => i.area === 'planner')
  assert.ok(planner.length > 20)
  const bad = planner.filter((i) => (i.target !== null ? ['config', 'request', 'runtime', 'server', 'k8s', 'cli', 'store', 'metrics'].includes(i.target) : i.spec !== 'zod'))
  assert.deepEqual(bad.map(at), [])
  const effects = files
    .filter((f) => f.rel.startsWith('planner/'))
    .flatMap((f) =>
      f.text.split('\n').flatMap((line, n) => {
        // Code only: comments may say "process" or "async" in prose.
        const code = line.replace(/\/\*.*?\*\//g, '').replace(/\/\/.*$/, '').replace(/^\s*(\/\*\*|\*).*$/, '')
        return /\basync\b|\bawait\b|\bPromise\b|\bprocess\.\w|\bfetch\(|\bconsole\.\w/.test(code) ? [`src/${f.rel}:${n + 1}: ${line.trim()}`] : []
      }),
    )
  assert.deepEqual(effects, [])
})

test('only runtime/supervisor.ts spawns processes and only k8s/submit.ts talks to a cluster', () => {
  const spawners = imports.filter((i) => /^(node:)?child_process$/.test(i.spec) && i.file !== 'runtime/supervisor.ts')
  assert.deepEqual(spawners.map(at), [])
  const cluster = imports.filter((i) => i.spec.startsWith('@kubernetes/client-node') && i.file !== 'k8s/submit.ts')
  assert.deepEqual(cluster.map(at), [])
})

test('only cli/main.ts calls process.exit', () => {
  const exits = files
    .filter((f) => f.rel !== 'cli/main.ts')
    .flatMap((f) => f.text.split('\n').flatMap((line, n) => (/\bprocess\.exit\s*\(/.test(line.replace(/\/\/.*$/, '')) ? [`src/${f.rel}:${n + 1}`] : [])))
  assert.deepEqual(exits, [])
})
