// The Headroom dashboard: a plan explorer, a runs list and a live run view. Plain ES
// modules, no build step; every number comes from the same API the CLI's library serves.
import { GIB, gib, drawBreakdown, curveChart, memoryChart, stepChart } from '/static/charts.js'

const $ = (sel) => document.querySelector(sel)
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

async function api(path, init) {
  const res = await fetch(path, init)
  const body = await res.json().catch(() => null)
  if (!res.ok) {
    const issues = body?.issues ?? [{ path: '', message: `${res.status} ${res.statusText}` }]
    throw new Error(issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '))
  }
  return body
}

const planOf = (flags) => api('/v1/plans', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(flags) })

// ---------- routing ----------

let leaveView = () => {}
function route() {
  leaveView()
  leaveView = () => {}
  const hash = location.hash || '#/plan'
  const run = hash.match(/^#\/runs\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})$/)
  const name = run ? 'run' : hash.startsWith('#/runs') ? 'runs' : 'plan'
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === (name === 'run' ? 'runs' : name))
  if (name === 'plan') showPlan()
  else if (name === 'runs') leaveView = showRuns()
  else leaveView = showRun(run[1])
}

// ---------- plan explorer ----------

let catalogLoaded = false
let curve = null
let curveGpu = null
let generation = 0

let formFields = []

/** One form control for one plan field, from the table: a select for choices, booleans and catalog lists, else a number input. */
function controlFor(field, catalogs) {
  const label = document.createElement('label')
  label.append(`${field.form.label} `)
  let el
  if (field.form.catalog || field.kind === 'choice' || field.kind === 'boolean') {
    el = document.createElement('select')
    // A default that depends on other fields (checkpointing: on for qlora) is left to the planner.
    if (field.default == null) el.append(new Option('default', ''))
    if (field.form.catalog === 'models') for (const m of catalogs.models) el.append(new Option(`${m.name} (${(m.params / 1e9).toFixed(1)}B)`, m.name))
    else if (field.form.catalog === 'gpus') for (const g of catalogs.gpus) el.append(new Option(`${g.name} (${gib(g.memoryBytes, 0)})`, g.name))
    else if (field.kind === 'boolean') el.append(new Option('on', 'true'), new Option('off', 'false'))
    else for (const c of field.choices) el.append(new Option(c, c))
  } else {
    el = document.createElement('input')
    el.type = 'number'
    el.step = field.kind === 'count' ? '1' : 'any'
    if (field.form.min != null) el.min = String(field.form.min)
    if (field.form.max != null) el.max = String(field.form.max)
  }
  el.name = field.name
  el.id = `f-${field.name}`
  el.title = field.defaultNote ? `${field.help}; default ${field.defaultNote}` : field.help
  el.value = field.default == null ? '' : String(field.default)
  label.append(el)
  return label
}

async function loadCatalog() {
  const [{ models }, { gpus }, { fields }] = await Promise.all([api('/v1/models'), api('/v1/gpus'), api('/v1/plan-fields')])
  formFields = fields.filter((f) => f.form)
  const form = $('#plan-form')
  form.replaceChildren(...formFields.map((f) => controlFor(f, { models, gpus })))
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '')
  for (const f of formFields) if (params.has(f.name)) $(`#f-${f.name}`).value = params.get(f.name)
  catalogLoaded = models
}

/** The form as a plan request: the table says each field's type; an empty control is left to the planner. */
function formFlags() {
  const f = new FormData($('#plan-form'))
  const flags = {}
  for (const field of formFields) {
    const v = f.get(field.name)
    if (v == null || v === '') continue
    flags[field.name] = field.kind === 'boolean' ? v === 'true' : field.kind === 'count' || field.kind === 'number' ? Number(v) : v
  }
  return flags
}

async function showPlan() {
  try {
    if (!catalogLoaded) {
      await loadCatalog()
      let timer
      $('#plan-form').addEventListener('input', () => {
        clearTimeout(timer)
        timer = setTimeout(updatePlan, 250)
      })
    }
    await updatePlan()
  } catch (err) {
    showError(err)
  }
}

function showError(err) {
  const box = $('#plan-error')
  box.textContent = err ? String(err.message ?? err) : ''
  box.hidden = !err
}

/** Sequence lengths for the curve: up to past where both methods stop fitting, within the model's context. */
function seqRange(maxPos, seq, maxSeqs) {
  const reach = Math.max(seq, ...maxSeqs.filter((n) => n != null)) * 1.5
  let top = 1024
  while (top < reach && top < maxPos) top *= 2
  top = Math.min(top, maxPos)
  const n = 24
  const even = Array.from({ length: n }, (_, i) => Math.round((top * (i + 1)) / n))
  // Short sequences and the chosen one too, so the curve starts near zero and passes through the form's point.
  return [...new Set([256, seq, ...even])].filter((s) => s >= 1 && s <= top).sort((a, b) => a - b)
}

async function updatePlan() {
  const gen = ++generation
  const flags = formFlags()
  let plan
  try {
    plan = await planOf(flags)
  } catch (err) {
    if (gen === generation) showError(err)
    return
  }
  if (gen !== generation) return
  showError(null)
  drawBreakdown($('#breakdown'), $('#breakdown-legend'), plan)
  const fit = plan.fits == null ? '' : plan.fits ? `<span class="fits">fits</span> with ${gib(plan.headroomBytes)} to spare` : `<span class="nofit">does not fit</span>: ${gib(-plan.headroomBytes)} over`
  const maxSeq = plan.maxSeqLen != null ? ` · longest sequence that fits: <strong>${plan.maxSeqLen.toLocaleString('en-US')}</strong> tokens` : ''
  $('#plan-summary').innerHTML = `<strong>${gib(plan.peakBytes)}</strong> peak on ${plan.gpu ? esc(plan.gpu.name) : 'the device'}: ${fit}${maxSeq} · ${plan.trainableParams.toLocaleString('en-US')} trainable parameters (${plan.trainablePercent.toFixed(2)}%)`

  // The curve: LoRA and QLoRA over a range of sequence lengths, everything else as chosen.
  const model = catalogLoaded.find((m) => m.name === flags.model)
  const base = { ...flags }
  delete base.method
  const ends = await Promise.all(['lora', 'qlora'].map((method) => planOf({ ...base, method }).catch(() => null)))
  if (gen !== generation) return
  const seq = flags.seq ?? formFields.find((f) => f.name === 'seq')?.default
  const seqs = seqRange(model?.maxPositionEmbeddings ?? 4096, seq, ends.map((p) => p?.maxSeqLen ?? null))
  const points = await Promise.all(
    ['lora', 'qlora'].map((method) => Promise.all(seqs.map((seq) => planOf({ ...base, method, seq }).then((p) => p.peakBytes / GIB, () => null)))),
  )
  if (gen !== generation) return
  const gpuGiB = plan.gpu ? plan.gpu.memoryBytes / GIB : null
  if (!curve || curveGpu !== plan.gpu?.name) {
    curve?.destroy()
    curve = curveChart($('#curve'), plan.gpu?.name ?? 'GPU', gpuGiB)
    curveGpu = plan.gpu?.name
  }
  curve.setData([seqs, points[0], points[1], seqs.map(() => gpuGiB)])
  document.body.dataset.planDrawn = String(gen)
}

// ---------- runs list ----------

const when = (ms) => new Date(ms).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' })
const signedPercent = (r) => `${r >= 0 ? '+' : '−'}${Math.abs(r * 100).toFixed(1)}%`
// As the terminal prints it (src/runtime/progress.ts ratio): measured over predicted, e.g. `0.97x (−3.3%)`.
const measuredOverPredicted = (measured, predicted) => (measured && predicted ? `${(measured / predicted).toFixed(2)}x (${signedPercent(measured / predicted - 1)})` : '–')
const bytesOr = (b) => (b == null ? '–' : gib(b, 2))

function showRuns() {
  let stopped = false
  const refresh = async () => {
    if (stopped) return
    try {
      const { runs } = await api('/v1/runs?limit=200')
      const body = $('#runs-body')
      body.replaceChildren(
        ...runs.map((r) => {
          const tr = document.createElement('tr')
          tr.dataset.id = r.id
          const cells = [r.id, r.state, r.model ?? '–', r.method ?? '–', r.deviceName ?? r.device ?? '–', `${r.steps}${r.totalSteps ? ` / ${r.totalSteps}` : ''}`, bytesOr(r.predictedPeakBytes), bytesOr(r.measuredPeakBytes), when(r.createdAt)]
          cells.forEach((text, i) => {
            const td = document.createElement('td')
            if (i === 0) {
              const a = document.createElement('a')
              a.href = `#/runs/${r.id}`
              a.textContent = text
              td.append(a)
            } else if (i === 1) {
              td.innerHTML = `<span class="badge"></span>`
              td.firstChild.textContent = text
              td.firstChild.classList.add(text)
            } else td.textContent = text
            if (i >= 5 && i <= 7) td.className = 'num'
            tr.append(td)
          })
          tr.addEventListener('click', () => (location.hash = `#/runs/${r.id}`))
          return tr
        }),
      )
      $('#runs-empty').hidden = runs.length > 0
    } catch (err) {
      $('#runs-empty').hidden = false
      $('#runs-empty').textContent = String(err.message ?? err)
    }
  }
  refresh()
  const timer = setInterval(refresh, 4000)
  return () => {
    stopped = true
    clearInterval(timer)
  }
}

// ---------- live run view ----------

function showRun(id) {
  $('#run-id').textContent = id
  const charts = {
    mem: memoryChart($('#mem-chart')),
    loss: stepChart($('#loss-chart'), { label: 'Loss', yLabel: 'Loss', color: '#e64980', digits: 4 }),
    tps: stepChart($('#tps-chart'), { label: 'Tokens/s', yLabel: 'Tokens per second', color: '#12b886', digits: 0, yFrom0: true }),
  }
  const d = { t0: null, predicted: null, weights: null, time: [], alloc: [], reserved: [], peak: [], used: [], steps: [], loss: [], tps: [], rankPeaks: [] }
  let pending = false
  const redraw = () => {
    if (pending) return
    pending = true
    requestAnimationFrame(() => {
      pending = false
      const pred = d.time.map(() => (d.predicted == null ? null : d.predicted / GIB))
      charts.mem.setData([d.time, d.alloc, d.reserved, d.peak, d.used, pred])
      charts.loss.setData([d.steps, d.loss])
      charts.tps.setData([d.steps, d.tps])
      $('#mem-chart').dataset.points = String(d.time.length)
    })
  }
  const header = async () => {
    try {
      const run = await api(`/v1/runs/${id}`)
      const badge = $('#run-state')
      badge.className = `badge ${run.state}`
      badge.textContent = run.state
      $('#run-meta').textContent = [run.model, run.method, run.deviceName ?? run.device, run.source === 'remote' ? 'reported remotely' : run.source === 'cluster' ? 'on a Kubernetes cluster' : null].filter(Boolean).join(' · ')
      // The run's one prediction (the planner at the longest batch trained), the same number
      // the terminal, run.json and /metrics show; the max_length worst case only beside it.
      if (run.predictedPeakBytes != null && d.predicted !== run.predictedPeakBytes) {
        d.predicted = run.predictedPeakBytes
        redraw()
      }
      const stats = [
        ['steps', 'Steps', `${run.steps}${run.totalSteps ? ` / ${run.totalSteps}` : ''}`],
        ['loss', 'Last loss', run.lastLoss == null ? '–' : run.lastLoss.toFixed(4)],
        ['predicted', 'Predicted peak (longest batch trained)', bytesOr(run.predictedPeakBytes)],
        ['measured', 'Measured peak', bytesOr(run.measuredPeakBytes)],
        ['ratio', 'Measured / predicted', measuredOverPredicted(run.measuredPeakBytes, run.predictedPeakBytes)],
        ['max-length', 'Worst case at max_length', bytesOr(run.predictedMaxLengthPeakBytes)],
      ]
      // The summary's throughput (steady steps, non-padding tokens), the terminal's figure; none while running.
      const tps = run.summary?.tokensPerSecond
      if (typeof tps === 'number') stats.push(['throughput', 'Throughput (steady steps)', `${Math.round(tps).toLocaleString('en-US')} tok/s`])
      // The planner's pre-flight warning (the worst case at max_length exceeds the device), as tune printed it.
      if (run.warning) stats.push(['warning', "Planner's warning", run.warning])
      // Where the base's weights came from (the start event, train.py --weights): random weights keep the
      // memory and speed figures real but make the loss meaningless, as the terminal says.
      if (d.weights) {
        const w = d.weights
        const text = w.source === 'random' ? `random, built from ${w.configFrom ?? "the model's config"} (--weights ${w.mode}): the loss means nothing` : 'pretrained'
        stats.push(['weights', 'Base weights', text])
      }
      // Distributed runs: each rank's measured peak against the planner's per-rank prediction.
      const perRank = run.summary?.measuredPeakBytesPerRank ?? (d.rankPeaks.length > 1 ? d.rankPeaks : null)
      if (perRank && perRank.length > 1) {
        stats.push(['per-rank', 'Peak per rank', perRank.map((b, rank) => `rank ${rank}: ${b ? `${bytesOr(b)} (${measuredOverPredicted(b, run.predictedPeakBytes)})` : '–'}`).join(' · ')])
      }
      $('#run-stats').replaceChildren(
        ...stats.map(([key, k, v]) => {
          const div = document.createElement('div')
          div.dataset.stat = key
          div.innerHTML = '<dt></dt><dd></dd>'
          div.children[0].textContent = k
          div.children[1].textContent = v
          return div
        }),
      )
      return run
    } catch (err) {
      $('#run-meta').textContent = String(err.message ?? err)
      return null
    }
  }
  header()
  const es = new EventSource(`/v1/runs/${encodeURIComponent(id)}/events`)
  const onEvent = (msg) => {
    const e = JSON.parse(msg.data)
    if (e.type === 'start' && e.weights && !e.rank) {
      d.weights = e.weights
      header()
    }
    if (e.type === 'step' && e.rank != null) d.rankPeaks[e.rank] = e.memory.peakAllocatedBytes
    // One series per chart: rank 0's steps (a distributed run's other ranks only add their peaks).
    if (e.type === 'step' && !e.rank) {
      if (e.predictedPeakBytes != null) d.predicted = e.predictedPeakBytes
      if (d.t0 == null) d.t0 = e.t
      d.time.push((e.t - d.t0) / 1000)
      d.alloc.push(e.memory.allocatedBytes / GIB)
      d.reserved.push(e.memory.reservedBytes / GIB)
      d.peak.push(e.memory.peakAllocatedBytes / GIB)
      d.used.push(e.memory.deviceUsedBytes / GIB)
      d.steps.push(e.step)
      d.loss.push(e.loss)
      d.tps.push(e.tokensPerSecond)
      if (d.steps.length % 5 === 1) header()
    }
    if (e.type === 'done') {
      es.close()
      header()
    }
    redraw()
  }
  for (const type of ['start', 'step', 'eval', 'checkpoint', 'oom', 'error', 'done']) es.addEventListener(type, onEvent)
  // The server ends the stream after a run's last event; reconnecting would only replay nothing.
  es.onerror = async () => {
    const run = await header()
    if (run && !['queued', 'running'].includes(run.state)) es.close()
  }
  return () => {
    es.close()
    for (const c of Object.values(charts)) c.destroy()
  }
}

window.addEventListener('hashchange', route)
route()
