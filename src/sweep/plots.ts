/**
 * The sweep's PNG plots, drawn by matplotlib in the Python runtime
 * (python/headroom_runtime/sweep_plots.py) through the supervisor's Python helper. The script
 * reads points.json and prints the files it wrote, one JSON line.
 */
import { runPythonModule } from '../runtime/supervisor.ts'

/** The plot files written into `dir` (names relative to it), or why none were. */
export async function renderPlots(dir: string): Promise<{ files: string[]; error?: string }> {
  const { code, output } = await runPythonModule('headroom_runtime.sweep_plots', ['--dir', dir])
  const last = output.trim().split('\n').reverse().find((l) => l.startsWith('{'))
  if (code !== 0 || !last) return { files: [], error: `sweep_plots exited with ${code}: ${output.trim().split('\n').slice(-3).join(' | ')}` }
  try {
    const parsed = JSON.parse(last) as { files: string[] }
    return { files: parsed.files }
  } catch {
    return { files: [], error: `sweep_plots printed no file list: ${last.slice(0, 200)}` }
  }
}
