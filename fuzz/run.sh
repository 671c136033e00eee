#!/bin/sh
# Run libFuzzer targets built in build/fuzz, each for SECONDS, and print a
# summary table.  Usage: fuzz/run.sh SECONDS TARGET...  (TARGET: form, ...)
#
# Each target reads its seeds from fuzz/corpus/TARGET (never written) and
# keeps what it finds in build/fuzz/corpus-TARGET; a crash, leak, timeout or
# failed invariant leaves its input in build/fuzz/artifacts-TARGET/ and the
# run's output in build/fuzz/TARGET.log.  Exits 1 if any target found one.
set -u
secs=$1
shift
cd "$(dirname "$0")/.."

summary=build/fuzz/summary.txt
mkdir -p build/fuzz
printf '%-16s %8s %14s %10s %8s  %s\n' target seconds executions exec/s corpus \
    result > "$summary"
failed=0
for t in "$@"; do
    bin=build/fuzz/fuzz_$t
    corpus=build/fuzz/corpus-$t
    artifacts=build/fuzz/artifacts-$t/
    log=build/fuzz/$t.log
    mkdir -p "$corpus" "$artifacts"
    case $t in
        amount|timestamp) maxlen=64 ;;
        reply) maxlen=1024 ;;
        json) maxlen=8192 ;;            # K2NotifyMaxBody's default
        *) maxlen=4096 ;;
    esac
    dict=
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    echo "== fuzz_$t for ${secs}s (log: $log)"
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -max_len="$maxlen" -artifact_prefix="$artifacts" $dict \
        "$corpus" "fuzz/corpus/$t" > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    size=$(find "$corpus" "fuzz/corpus/$t" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="FINDING (exit $rc)"
        failed=1
        echo "-- fuzz_$t failed: the end of $log:"
        tail -n 60 "$log"
        for f in "$artifacts"*; do
            [ -f "$f" ] || continue
            echo "-- input $f (base64): $(base64 -w0 "$f")"
        done
    fi
    printf '%-16s %8s %14s %10s %8s  %s\n' "fuzz_$t" "$secs" "${execs:-?}" \
        "${rate:-?}" "$size" "$result" >> "$summary"
done
echo "== fuzzing summary"
cat "$summary"
exit $failed
