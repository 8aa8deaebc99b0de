/**
 * `headroom sweep` through its real surface: bin/headroom as a subprocess, real short runs of
 * the tiny model on CPU, the files it writes, a rerun that skips finished points, and hostile
 * specs refused with one line each (exit 1, no stack trace).
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT, runCli } from './helpers.ts'

const tmp = mkdtempSync(join(tmpdir(), 'headroom-sweep-'))
const DATA = join(ROOT, 'examples', 'sweeps', 'data', 'long-text.jsonl')
const spec = (name: string, text: string) => {
  const p = join(tmp, name)
  writeFileSync(p, text)
  return p
}
const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at .*\(.*:\d+:\d+\)|internal error|unexpected error/)

test('a two-point sweep runs each point through the supervisor and writes csv, json, report and plots; a rerun skips them', { timeout: 600_000 }, async () => {
  const path = spec('two.yaml', `name: two\ndata: ${DATA}\nbase: { method: lora, dtype: fp32, targets: all-linear, seq: 64, batch: 1, gradientCheckpointing: false }\ngrid:\n  rank: [2, 16]\n`)
  const out = join(tmp, 'two')
  const r = await runCli(['sweep', path, '--out', out, '--steps', '2', '--device', 'cpu', '--json'])
  assert.equal(r.status, 0, r.stderr)
  const doc = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
  assert.equal(doc.points.length, 2)
  for (const p of doc.points) {
    assert.equal(p.state, 'succeeded', p.message)
    assert.equal(p.steps, 2)
    assert.equal(p.trainedSeq, 64)
    assert.ok(p.measuredPeakBytes > 0 && p.predictedPeakBytes > 0)
    // The issue's bar: the run's own prediction within 10% of its measurement.
    const ratio = p.measuredPeakBytes / p.predictedPeakBytes
    assert.ok(Math.abs(ratio - 1) <= 0.1, `point ${p.key}: measured/predicted ${ratio}`)
    assert.ok(p.tokensPerSecond > 0)
    // The point's training_config is the codec's: the rank it asked for.
    assert.match(readFileSync(join(out, 'configs', `00${p.index}.yaml`), 'utf8'), new RegExp(`r: ${p.fields.rank}\\n`))
  }
  // Rank 16 carries 8x the adapter of rank 2: both the prediction and the measurement grow.
  assert.ok(doc.points[1].predictedPeakBytes > doc.points[0].predictedPeakBytes)
  assert.ok(doc.points[1].measuredPeakBytes > doc.points[0].measuredPeakBytes)

  const csv = readFileSync(join(out, 'points.csv'), 'utf8').trim().split('\n')
  assert.equal(csv.length, 3)
  assert.match(csv[0], /^index,method,dtype,rank,targets,batch,seq,gradientCheckpointing,state,predictedPeakBytes,measuredPeakBytes,tokensPerSecond,/)
  assert.match(csv[1], new RegExp(`^0,lora,fp32,2,all-linear,1,64,false,succeeded,${doc.points[0].predictedPeakBytes},${doc.points[0].measuredPeakBytes},`))
  const report = readFileSync(join(out, 'report.md'), 'utf8')
  assert.match(report, /2 of 2 measured points within 10%/)
  assert.match(report, /!\[memory-vs-rank\.png\]\(memory-vs-rank\.png\)/)
  const png = readFileSync(join(out, 'memory-vs-rank.png'))
  assert.equal(png.subarray(1, 4).toString(), 'PNG')
  assert.ok(png.length > 5000)
  assert.match(r.stderr, /point 1\/2 rank=2: succeeded, peak .* measured \/ .* predicted/)

  // Same --out: both points are finished, nothing runs again.
  const before = statSync(join(out, 'runs', '000', 'run.json')).mtimeMs
  const again = await runCli(['sweep', path, '--out', out, '--steps', '2', '--device', 'cpu'])
  assert.equal(again.status, 0, again.stderr)
  assert.match(again.stderr, /0 point\(s\) run, 2 skipped as finished earlier/)
  assert.equal(statSync(join(out, 'runs', '000', 'run.json')).mtimeMs, before)
  // Another base into the same --out would mix two experiments: refused, saying what differs.
  const other = await runCli(['sweep', path, '--out', out, '--steps', '3', '--device', 'cpu'])
  assert.equal(other.status, 1)
  assert.match(other.stderr, /holds a sweep with another base .*"steps":2.*"steps":3.*choose another --out/)
  noStack(other.stderr)

  // --calibrate fits this device's terms from the finished points (none rerun) into a profile under XDG_CONFIG_HOME.
  const xdg = join(tmp, 'xdg')
  const env = { XDG_CONFIG_HOME: xdg }
  const cal = await runCli(['sweep', path, '--out', out, '--steps', '2', '--device', 'cpu', '--calibrate', '--profile', 'sweep-test'], { env })
  assert.equal(cal.status, 0, cal.stderr)
  assert.match(cal.stderr, /0 point\(s\) run, 2 skipped/)
  assert.match(cal.stderr, /calibrated profile sweep-test from 2 point\(s\): workspace -?[\d.]+ [KM]iB/)
  const profile = JSON.parse(readFileSync(join(xdg, 'headroom', 'profiles', 'sweep-test.json'), 'utf8'))
  assert.equal(profile.device, 'cpu')
  // CPU's published terms are all zero: the fit moves the workspace term off it, and nearer the measurements.
  assert.notEqual(profile.terms.workspaceBytes, 0)
  assert.ok(profile.error.after < profile.error.before, JSON.stringify(profile.error))

  // plan --device-profile: the same point planned through the plan command, with and without the profile.
  const tiny = join(ROOT, '.headroom', 'assets', 'tiny-phi3', 'config.json')
  let errPlain = 0
  let errCalibrated = 0
  for (const p of doc.points) {
    const args = ['plan', '--json', '--model', tiny, '--device', 'cpu', '--method', 'lora', '--dtype', 'fp32', '--targets', 'all-linear', '--rank', String(p.fields.rank), '--alpha', '8', '--batch', '1', '--seq', '64', '--no-grad-checkpointing']
    const plain = await runCli(args, { env })
    const calibrated = await runCli([...args, '--device-profile', 'sweep-test'], { env })
    assert.equal(plain.status, 0, plain.stderr)
    assert.equal(calibrated.status, 0, calibrated.stderr)
    const a = JSON.parse(plain.stdout)
    const b = JSON.parse(calibrated.stdout)
    // The plan command predicts what the sweep's run predicted for this point.
    assert.equal(a.peakAllocatedBytes, p.predictedPeakBytes)
    assert.equal(b.calibratedBy, 'sweep-test')
    assert.equal(b.breakdown.overhead - a.breakdown.overhead, profile.terms.workspaceBytes)
    errPlain += (a.peakAllocatedBytes - p.measuredPeakBytes) ** 2
    errCalibrated += (b.peakAllocatedBytes - p.measuredPeakBytes) ** 2
  }
  // Over the sweep's own points, the calibrated plans are nearer the measurements (rms error), as the profile says.
  assert.ok(errCalibrated < errPlain, `calibrated ${errCalibrated} vs published ${errPlain}`)
  assert.ok(Math.abs(Math.sqrt(errCalibrated / doc.points.length) - profile.error.after) <= 1, `${Math.sqrt(errCalibrated / doc.points.length)} vs ${profile.error.after}`)
  const shown = await runCli(['plan', '--model', tiny, '--device', 'cpu', '--method', 'lora', '--device-profile', 'sweep-test'], { env })
  assert.equal(shown.status, 0, shown.stderr)
  assert.match(shown.stdout, /overhead .* calibrated \(device profile sweep-test\)/)
  // A profile fitted on CPU does not plan a GPU; a missing one says how to make it.
  const wrong = await runCli(['plan', '--model', tiny, '--device', 'cuda', '--device-profile', 'sweep-test'], { env })
  assert.equal(wrong.status, 2)
  assert.match(wrong.stderr, /--device-profile sweep-test was fitted on cpu; this plan is for cuda/)
  const missing = await runCli(['plan', '--device', 'cpu', '--device-profile', 'nope'], { env })
  assert.equal(missing.status, 1)
  assert.match(missing.stderr, /device profile "nope" does not exist .*headroom sweep SPEC\.yaml --calibrate --profile nope/)
  noStack(missing.stderr)
})

test('hostile specs and outputs are refused with one line naming the problem', { timeout: 120_000 }, async () => {
  const cases: { name: string; args: string[]; match: RegExp; status?: number }[] = [
    { name: 'empty file', args: [spec('empty.yaml', '')], match: /empty\.yaml.*is empty: a sweep spec needs/ },
    { name: 'unknown field', args: [spec('unknown.yaml', 'name: u\ngrid: { rnak: [1, 2] }\n')], match: /grid\.rnak\[0\]: unknown sweep field "rnak"; did you mean "rank"\?/ },
    { name: 'out of bounds', args: [spec('bounds.yaml', 'name: b\ngrid: { batch: [1, 100000] }\n')], match: /grid\.batch\[1\]: batch must be a whole number of sequences from 1 to 65,536/ },
    {
      name: 'a million points',
      args: [spec('million.yaml', `name: m\ngrid:\n${['rank', 'batch', 'seq', 'alpha', 'loraDropout', 'optimizer'].map((f, i) => `  ${f}: ${i === 4 ? '[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]' : i === 5 ? '[adamw, sgd]' : '[1,2,3,4,5,6,7,8,9,10]'}`).join('\n')}\n`)],
      match: /grid: has 200,000 points; a sweep runs at most 1,000/,
    },
    { name: 'binary file', args: [spec('binary.yaml', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 0xff, 0xfe]).toString('latin1'))], match: /holds NUL bytes: a sweep spec is a YAML text file/ },
    { name: 'missing spec', args: [join(tmp, 'nope.yaml')], match: /nope\.yaml: no such file or directory/, status: 2 },
    { name: '--out is a file', args: [spec('ok.yaml', 'name: ok\ngrid: { rank: [1, 2] }\n'), '--out', spec('a-file', 'x')], match: /a-file: is a file, not a directory: choose a directory/ },
    { name: '--steps 0', args: [spec('ok2.yaml', 'name: ok\ngrid: { rank: [1, 2] }\n'), '--steps', '0'], match: /--steps must be a whole number from 1 to 10000, got "0"/, status: 2 },
  ]
  for (const c of cases) {
    const r = await runCli(['sweep', ...c.args, '--device', 'cpu'], { timeoutMs: 60_000 })
    assert.equal(r.status, c.status ?? 1, `${c.name}: ${r.stderr}`)
    assert.match(r.stderr, c.match, c.name)
    noStack(r.stderr)
    assert.equal(r.stdout, '', c.name)
  }
  assert.ok(!existsSync(join(ROOT, 'sweeps', 'ok')), 'a refused sweep writes nothing')
})
