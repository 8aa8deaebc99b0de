// Drawing for the dashboard: the stacked breakdown bar (SVG) and line charts (uPlot).
// Every memory axis is in GiB (2^30 bytes), the unit the CLI prints.
import uPlot from '/static/uplot.js'

export const GIB = 1024 ** 3

export const gib = (bytes, digits = 1) => `${(bytes / GIB).toFixed(digits)} GiB`

/** MemoryPlan.breakdown keys in stacking order, with their colours and plain names. */
export const COMPONENTS = [
  ['weights', 'Weights', '#3b5bdb'],
  ['adapters', 'Adapters', '#15aabf'],
  ['gradients', 'Gradients', '#40c057'],
  ['optimizer', 'Optimizer states', '#fab005'],
  ['activations', 'Activations', '#fd7e14'],
  ['logits', 'Logits + loss', '#e64980'],
  ['overhead', 'CUDA context + allocator', '#868e96'],
]

const SVG = 'http://www.w3.org/2000/svg'
function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v))
  if (text !== undefined) node.textContent = text
  return node
}

/** A "nice" tick step for a GiB axis so there are about `target` ticks. */
function niceStep(maxGiB, target = 8) {
  const raw = maxGiB / target
  const pow = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * pow) return m * pow
  return 10 * pow
}

/**
 * Draws one horizontal bar: the plan's components stacked left to right, against the GPU's
 * memory as a dashed line, with a GiB axis underneath.
 */
export function drawBreakdown(container, legend, plan) {
  const W = 1000
  const H = 128
  const left = 8
  const right = 16
  const barY = 34
  const barH = 44
  const gpuBytes = plan.gpu ? plan.gpu.memoryBytes : 0
  const maxBytes = Math.max(plan.peakBytes, gpuBytes) * 1.04
  const x = (bytes) => left + (bytes / maxBytes) * (W - left - right)

  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Peak ${gib(plan.peakBytes)} by component` })
  if (gpuBytes) svg.append(el('rect', { x: left, y: barY, width: x(gpuBytes) - left, height: barH, fill: '#f1f3f5', rx: 4 }))

  let at = 0
  for (const [key, name, color] of COMPONENTS) {
    const bytes = plan.breakdown[key] ?? 0
    if (bytes <= 0) continue
    const x0 = x(at)
    const w = Math.max(x(at + bytes) - x0, 0.5)
    const rect = el('rect', { x: x0, y: barY, width: w, height: barH, fill: color, 'data-component': key })
    rect.append(el('title', {}, `${name}: ${gib(bytes, 2)}`))
    svg.append(rect)
    if (w > 70) svg.append(el('text', { x: x0 + w / 2, y: barY + barH / 2 + 5, 'text-anchor': 'middle', fill: '#fff', 'font-size': 13, 'font-weight': 600 }, name.split(' ')[0]))
    at += bytes
  }

  const peakX = x(plan.peakBytes)
  svg.append(el('text', { x: Math.min(peakX, W - right), y: barY - 10, 'text-anchor': peakX > W * 0.8 ? 'end' : 'middle', 'font-size': 13, 'font-weight': 700, fill: '#1b1f24' }, `peak ${gib(plan.peakBytes)}`))

  if (gpuBytes) {
    const gx = x(gpuBytes)
    svg.append(el('line', { x1: gx, x2: gx, y1: barY - 6, y2: barY + barH + 6, stroke: '#c92a2a', 'stroke-width': 2, 'stroke-dasharray': '5 4' }))
    const label = `${plan.gpu.name} · ${gib(gpuBytes)}`
    const near = Math.abs(gx - peakX) < 160
    svg.append(el('text', { x: gx - 4, y: near ? barY + barH + 20 : barY - 10, 'text-anchor': 'end', 'font-size': 12, fill: '#c92a2a', 'font-weight': 600 }, label))
  }

  const maxGiB = maxBytes / GIB
  const step = niceStep(maxGiB)
  const axisY = barY + barH + 26
  for (let v = 0; v <= maxGiB + 1e-9; v += step) {
    const tx = x(v * GIB)
    svg.append(el('line', { x1: tx, x2: tx, y1: axisY - 8, y2: axisY - 3, stroke: '#adb5bd' }))
    svg.append(el('text', { x: tx, y: axisY + 10, 'text-anchor': 'middle', 'font-size': 11, fill: '#5d6673' }, `${+v.toFixed(2)}`))
  }
  svg.append(el('text', { x: W - right, y: axisY + 24, 'text-anchor': 'end', 'font-size': 11, fill: '#5d6673' }, 'GiB'))

  container.replaceChildren(svg)

  legend.replaceChildren(
    ...COMPONENTS.filter(([key]) => (plan.breakdown[key] ?? 0) > 0).map(([key, name, color]) => {
      const li = document.createElement('li')
      li.innerHTML = '<span class="sw"></span><span></span><span class="v"></span>'
      li.children[0].style.background = color
      li.children[1].textContent = name
      li.children[2].textContent = gib(plan.breakdown[key], 2)
      return li
    }),
  )
}

const gibTicks = (_u, splits) => splits.map((v) => (v == null ? '' : `${+v.toFixed(v < 10 ? 1 : 0)}`))
const tokensTicks = (_u, splits) => splits.map((v) => (v >= 1024 && v % 1024 === 0 ? `${v / 1024}k` : v.toLocaleString('en-US')))

/**
 * A responsive uPlot line chart. `series` are uPlot series options (after the x series);
 * `data` is uPlot's column form [xs, ys1, ys2, ...].
 */
export function lineChart(container, { xLabel, yLabel, series, xTicks, yTicks, yFrom0 = true, height = 320, xValue, yCap }) {
  const opts = {
    width: Math.max(container.clientWidth, 300),
    height,
    scales: {
      x: { time: false },
      y: {
        range: (_u, min, max) => {
          const top = Math.min(max, yCap?.() ?? Infinity)
          if (yFrom0) return [0, top > 0 ? top * 1.08 : 1]
          const pad = (top - min) * 0.08 || Math.abs(top) * 0.05 || 1
          return [min - pad, top + pad]
        },
      },
    },
    axes: [
      { label: xLabel, values: xTicks, stroke: '#5d6673', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#dee2e6' } },
      { label: yLabel, values: yTicks, size: 64, stroke: '#5d6673', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#dee2e6' } },
    ],
    series: [{ label: xLabel, value: xValue }, ...series],
    cursor: { points: { size: 7 } },
  }
  const plot = new uPlot(opts, [[], ...series.map(() => [])], container)
  const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(container.clientWidth, 300), height }))
  ro.observe(container)
  return {
    plot,
    setData: (data) => plot.setData(data),
    destroy: () => {
      ro.disconnect()
      plot.destroy()
    },
  }
}

const gibValue = (_u, v) => (v == null ? '–' : `${v.toFixed(2)} GiB`)

/** The explorer's memory-versus-sequence-length chart. */
export function curveChart(container, gpuName, gpuGiB) {
  return lineChart(container, {
    // Past twice the GPU's memory the steeper curve would flatten the other one; it runs off the top instead.
    yCap: () => (gpuGiB ? gpuGiB * 2 : Infinity),
    xLabel: 'Sequence length (tokens)',
    yLabel: 'Peak memory (GiB)',
    xTicks: tokensTicks,
    yTicks: gibTicks,
    xValue: (_u, v) => (v == null ? '–' : `${v.toLocaleString('en-US')} tokens`),
    series: [
      { label: 'LoRA', stroke: '#3b5bdb', width: 2.5, value: gibValue, points: { size: 5 } },
      { label: 'QLoRA', stroke: '#12b886', width: 2.5, value: gibValue, points: { size: 5 } },
      { label: `${gpuName} memory`, stroke: '#c92a2a', width: 1.5, dash: [8, 5], value: gibValue, points: { show: false } },
    ],
  })
}

/** The run view's memory-over-time chart, with the predicted peak as a dashed line. */
export function memoryChart(container) {
  return lineChart(container, {
    xLabel: 'Time since start (s)',
    yLabel: 'Memory (GiB)',
    yTicks: gibTicks,
    xValue: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} s`),
    series: [
      { label: 'Allocated', stroke: '#3b5bdb', width: 2, value: gibValue, fill: 'rgba(59,91,219,0.08)' },
      { label: 'Reserved', stroke: '#15aabf', width: 1.5, value: gibValue },
      { label: 'Peak allocated', stroke: '#7048e8', width: 2, value: gibValue },
      { label: 'Device used', stroke: '#868e96', width: 1.5, value: gibValue },
      { label: 'Predicted peak', stroke: '#e8590c', width: 2, dash: [8, 5], value: gibValue, points: { show: false } },
    ],
  })
}

export function stepChart(container, { label, yLabel, color, digits, yFrom0 = false }) {
  return lineChart(container, {
    xLabel: 'Step',
    yLabel,
    height: 220,
    yFrom0,
    xValue: (_u, v) => (v == null ? '–' : `step ${v}`),
    series: [{ label, stroke: color, width: 2, value: (_u, v) => (v == null ? '–' : v.toFixed(digits)) }],
  })
}
