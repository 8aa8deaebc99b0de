/** "Did you mean": the closest known name to a misspelt one. */

/** Edit distance (insertions, deletions, substitutions) between two strings. */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0
  if (!a.length) return b.length
  if (!b.length) return a.length
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    }
    prev = cur
  }
  return prev[b.length]
}

/**
 * The closest candidate, or undefined when none is close enough to be a plausible typo
 * (at most a third of the name's length, and never more than 4 edits).
 * @example closest('lora_alpah', ['lora_alpha', 'r']) // 'lora_alpha'
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  // Long keys (fuzzed or pasted) would make the quadratic distance slow for no useful answer.
  if (name.length > 64) return undefined
  const lower = name.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = c.toLowerCase() === lower ? 0 : levenshtein(lower, c.toLowerCase())
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  const limit = Math.min(4, Math.max(1, Math.floor(name.length / 3)))
  return bestDistance <= limit ? best : undefined
}
