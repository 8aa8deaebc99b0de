/** "Did you mean" for unknown names: the closest known name by edit distance. */

/**
 * Levenshtein distance, except that swapping one digit for another costs 2: in model and GPU
 * names digits are versions and sizes, so `phi3-mini` is nearer `phi3-mini-4k` than `phi4-mini`.
 */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + substitution(a[i - 1], b[j - 1]))
    }
    prev = row
  }
  return prev[b.length]
}

function substitution(x: string, y: string): number {
  if (x === y) return 0
  return /\d/.test(x) && /\d/.test(y) ? 2 : 1
}

/**
 * The candidate closest to `input`, or undefined when none is close enough to be a typo:
 * within 40% of the longer name's length (so `a100` does not suggest `l4`), or a prefix match.
 * Candidates are [spelling to compare, name to suggest].
 * @example closest('phi3-mini', [['phi3-mini-4k', 'phi-3-mini-4k-instruct']]) // 'phi-3-mini-4k-instruct'
 */
export function closest(input: string, candidates: Iterable<[string, string]>): string | undefined {
  const needle = input.toLowerCase()
  let best: { name: string; score: number } | undefined
  for (const [spelling, name] of candidates) {
    const hay = spelling.toLowerCase()
    const d = editDistance(needle, hay)
    const prefix = needle.length >= 3 && hay.startsWith(needle)
    const limit = Math.max(2, Math.ceil(0.4 * Math.max(needle.length, hay.length)))
    if (d > limit && !prefix) continue
    // a prefix counts as a near miss: `llama-3.1` should suggest `llama-3.1-8b`, not `llama-3-8b`
    const score = prefix ? Math.min(d, 1.5) : d
    if (!best || score < best.score) best = { name, score }
  }
  return best?.name
}

/** ` did you mean "x"?` or the empty string. */
export function didYouMean(input: string, candidates: Iterable<[string, string]>): string {
  const hit = closest(input, candidates)
  return hit ? `: did you mean "${hit}"?` : ''
}
