#!/usr/bin/env bash
# Valgrind memcheck over every unit test program of a build: any memory error or definite leak
# fails (exit 99 from valgrind), so CI keeps "valgrind finds nothing" true.
#   bash tests/valgrind_unit.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: tests/valgrind_unit.sh BUILD_DIR}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
failed=0
n=0
printf '%-32s %6s %s\n' "unit test" "secs" "result"
for t in "$build"/tests/test_*; do
    [[ -x $t && -f $t ]] || continue
    n=$((n + 1))
    log=$(mktemp)
    start=$(date +%s)
    rc=0
    # --child-silent-after-fork: tests fork programs that exec at once; their own memory is not
    # the test's. The runner falls back from pidfd (not in valgrind) to polling, by design.
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --child-silent-after-fork=yes "$t" >"$log" 2>&1 || rc=$?
    result=clean
    if [[ $rc -ne 0 ]]; then
        result="FAILED (exit $rc)"
        failed=$((failed + 1))
        grep -E '^==[0-9]+==|FAILED|ERROR' "$log" | head -40 || true
    fi
    printf '%-32s %6s %s\n' "$(basename "$t")" "$(($(date +%s) - start))" "$result"
    rm -f "$log"
done
[[ $n -gt 0 ]] || { echo "no unit tests in $build/tests" >&2; exit 1; }
echo "$((n - failed)) of $n unit test programs clean under valgrind"
[[ $failed -eq 0 ]]
