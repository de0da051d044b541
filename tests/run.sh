#!/bin/sh
# tests/run.sh: runs every C test program in $BUILD/tests, then the pytest
# end-to-end suite, and ends with one summary line "N passed, N failed".
# Exit status is non-zero when anything failed or when no test ran at all.
BUILD=${BUILD:-build}
passed=0
failed=0
for t in $(find "$BUILD/tests" -type f -name '*_test' | sort); do
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: crashed or printed no summary (exit $rc)"
        failed=$((failed + 1))
        continue
    fi
    p=$(printf '%s' "$line" | sed -E 's/^[a-z_]+: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(printf '%s' "$line" | sed -E 's/^[a-z_]+: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
done
if [ -d tests/e2e ] && ls tests/e2e/test_*.py >/dev/null 2>&1; then
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e > "$BUILD/pytest.log" 2>&1
    rc=$?
    cat "$BUILD/pytest.log"
    summary=$(tail -n 1 "$BUILD/pytest.log")
    p=$(printf '%s' "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
    f=$(printf '%s' "$summary" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {if (NR) print s}')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    # Exit code 5 means pytest collected nothing: a broken suite, not a pass.
    if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); fi
fi
if [ "$passed" -eq 0 ]; then
    echo "no test ran"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
