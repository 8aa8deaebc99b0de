/**
 * A cap on how many issues one check reports. A generated or hostile config with 100,000
 * unknown keys would otherwise print 100,000 lines (or a 30 MB JSON answer); the first few
 * hundred tell the user everything they need, and the count says how many more there were.
 */
import type { Issue } from '../errors.ts'

/** More than any hand-written config produces; KAITO's own examples produce under 10. */
export const MAX_ISSUES = 200

/**
 * Keeps the first `max` errors and the first `max` warnings, adding one `too_many_issues`
 * error (or warning) that says how many were left out.
 * @example capIssues({ issues, warnings }).issues.length // <= MAX_ISSUES + 1
 */
export function capIssues<T extends { issues: Issue[]; warnings: Issue[] }>(result: T, max = MAX_ISSUES): T {
  const cut = (list: Issue[], severity: 'error' | 'warning'): Issue[] => {
    if (list.length <= max) return list
    const left = list.length - max
    return [
      ...list.slice(0, max),
      {
        code: 'too_many_issues',
        path: 'training_config',
        severity,
        message: `${left} more ${severity === 'error' ? 'errors' : 'warnings'} not shown (${list.length} in all): fix the ones above and check again`,
      },
    ]
  }
  return { ...result, issues: cut(result.issues, 'error'), warnings: cut(result.warnings, 'warning') }
}
