#!/usr/bin/env bash
# The test command: sets up, then runs the TypeScript (node:test) and Python (pytest) suites
# and ends with one line `N passed, N failed` summing both.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

# Real peers from Debian: chromium (the dashboard's browser test, through playwright-core) and
# prometheus + promtool (a real server scraping /metrics).
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/prometheus ] || missing="$missing prometheus"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ]; then
  echo "headroom test: installing Debian's$missing for the browser and Prometheus tests…"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) || echo "headroom test: installing$missing failed; the tests that need it will fail"
fi

mkdir -p test-artifacts
node_files=$(find src test -name '*.test.ts' 2>/dev/null | sort)
node_pass=0; node_fail=0
if [ -n "$node_files" ]; then
  node --import tsx --test --test-concurrency=2 $node_files 2>&1 | tee test-artifacts/node-tests.tap
  node_pass=$(grep -E '^# pass ' test-artifacts/node-tests.tap | tail -1 | awk '{print $3}')
  node_fail=$(grep -E '^# fail ' test-artifacts/node-tests.tap | tail -1 | awk '{print $3}')
  node_cancel=$(grep -E '^# cancelled ' test-artifacts/node-tests.tap | tail -1 | awk '{print $3}')
  node_pass=${node_pass:-0}; node_fail=$(( ${node_fail:-1} + ${node_cancel:-0} ))
fi

py_pass=0; py_fail=0
.venv/bin/python -m pytest -q -p no:cacheprovider python/tests 2>&1 | tee test-artifacts/pytest.txt
py_rc=${PIPESTATUS[0]}
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' test-artifacts/pytest.txt | tail -1)
py_pass=$(echo "$summary" | grep -oE '[0-9]+ passed' | awk '{print $1}'); py_pass=${py_pass:-0}
py_fail=$(echo "$summary" | grep -oE '[0-9]+ failed' | awk '{print $1}'); py_fail=${py_fail:-0}
py_err=$(echo "$summary" | grep -oE '[0-9]+ error' | awk '{print $1}'); py_fail=$(( py_fail + ${py_err:-0} ))
# pytest exit 5 = no tests collected: not a failure; any other non-zero with no counted failure is one.
if [ "$py_rc" != 0 ] && [ "$py_rc" != 5 ] && [ "$py_fail" = 0 ]; then py_fail=1; fi

echo "typescript: ${node_pass} passed, ${node_fail} failed; python: ${py_pass} passed, ${py_fail} failed"
total_pass=$(( node_pass + py_pass )); total_fail=$(( node_fail + py_fail ))
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" = 0 ]
