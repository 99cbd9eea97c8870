#!/usr/bin/env bash
# The built-in demo, end to end: bring the stack up, run the user-service → auth-service
# latency ladder (50 → 120 → 250 ms) until a guard stops it, show the postmortem, take the
# stack down again whatever happens.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
scenario=${GAMEDAY_DEMO_SCENARIO:-auth-latency-ladder}
# The demo's findings stay in its state folder, not in the catalog's history.
export GAMEDAY_HISTORY=${GAMEDAY_HISTORY:-$PWD/.gameday/history}

$bin/chaosctl catalog validate || exit 2
$bin/chaosctl catalog list
$bin/chaosctl demo up || exit 1
trap '$bin/chaosctl demo down' EXIT
eval "$($bin/chaosctl demo env)"
$bin/chaosctl start "$scenario" --requester "${USER:-demo}"
code=$?
report=$(ls -t reports/out/*/postmortem.md 2>/dev/null | head -n 1)
if [ -n "$report" ]; then
  printf '\n==================== %s ====================\n\n' "$report"
  cat "$report"
fi
# A guard stopping the top step is the expected outcome of this demo (exit 4).
[ $code -eq 0 ] || [ $code -eq 4 ] && exit 0
exit $code
