#!/usr/bin/env bash
# Fuzz/run.sh TARGET|all SECONDS [libFuzzer flags...]
# Builds the libFuzzer targets (every module of the package instrumented with
# -sanitize=fuzzer,address, in the scratch path .build-fuzz), seeds each corpus from
# models/files, and runs TARGET (or every target in turn) for SECONDS seconds each.
# Prints one line per target: executions and "no finding", or the crashing input's path
# (kept under .build-fuzz/artifacts/TARGET/) and exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: Fuzz/run.sh TARGET|all SECONDS [libFuzzer flags...]}
seconds=${2:?usage: Fuzz/run.sh TARGET|all SECONDS [libFuzzer flags...]}
shift 2
all=(fuzz-safetensors fuzz-npy fuzz-zip fuzz-pickle fuzz-sstable fuzz-protobuf fuzz-hdf5 fuzz-any)
if [ "$target" = all ]; then targets=("${all[@]}"); else targets=("$target"); fi

scratch=.build-fuzz
mkdir -p "$scratch"
if ! swift build --package-path Fuzz --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address > "$scratch/build.log" 2>&1; then
    grep -v "Cannot export local symbol" "$scratch/build.log" | grep -E "error" | head -20 >&2
    echo "Fuzz/run.sh: the fuzz build failed (log: $scratch/build.log)" >&2
    exit 2
fi
python3 Fuzz/seeds.py "$scratch/seeds" > /dev/null

# Swift's runtime keeps caches alive until exit; leak reports would be noise, not findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
status=0
for t in "${targets[@]}"; do
    corpus="$scratch/corpus/$t"
    artifacts="$scratch/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts"
    log="$scratch/$t.log"
    # -malloc_limit_mb: any single allocation above 512 MiB is a finding (memory must stay bounded
    # whatever sizes an input declares); -timeout: an input taking 10 s is a hang.
    if "$scratch/debug/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -malloc_limit_mb=512 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "$@" "$corpus" "$scratch/seeds/$t" > "$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "$t: $runs executions in ${seconds} s, no finding"
    else
        status=1
        echo "$t: FINDING after $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?') executions; see $log"
        grep -E "^==[0-9]+==ERROR|Fatal error|SUMMARY|Test unit written to" "$log" | head -5
    fi
done
exit $status
