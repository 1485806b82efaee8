#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the libFuzzer targets in tests/fuzz/ (clang, ASan + UBSan) and run each for a fixed time.
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET] [--target NAME] [--keep]
# SECONDS_PER_TARGET defaults to 60 (CI runs 20 as a regression check). Objects, scratch corpora,
# logs and crash files go to $CAS_FUZZ_BUILD_DIR (default ${TMPDIR:-/tmp}/build-fuzz); the seed
# corpus in tests/fuzz/corpus/ is only read. --keep keeps the scratch corpora of an earlier run
# (a longer campaign in steps); otherwise each run starts from the seeds. Prints one line per
# target and exits 1 if any target crashed, leaked, timed out or ran out of memory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${CAS_FUZZ_BUILD_DIR:-${TMPDIR:-/tmp}/build-fuzz}"

# Targets, in priority order, with the longest input worth trying (a policy is many adverts; a
# log line may be up to CAS_LOGREAD_LINE_MAX bytes and longer ones must be refused).
targets=(policy sums config keychange logread http_header)
declare -A max_len=([policy]=16384 [sums]=4096 [config]=4096 [keychange]=8192 [logread]=33000
  [http_header]=512)
declare -A extra_src=([http_header]="$repo/agent/http_header.c")
declare -A dict_of=([policy]=json [config]=json [keychange]=json [sums]=sums [logread]=logread
  [http_header]=http_header)

seconds=60
only=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) only="${2:?--target needs a name}"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '3,9p' "$0"; exit 0 ;;
    *[!0-9]* | "") echo "usage: $0 [SECONDS_PER_TARGET] [--target NAME] [--keep]" >&2; exit 2 ;;
    *) seconds="$1"; shift ;;
  esac
done
if [ -n "$only" ]; then
  [ -n "${max_len[$only]:-}" ] || { echo "unknown target: $only (${targets[*]})" >&2; exit 2; }
  targets=("$only")
fi

cc="${CC_FUZZ:-clang}"
probe_fuzzer() {
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
    'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }' |
    "$cc" -x c -fsanitize=fuzzer,address,undefined -o "$build/probe" - >/dev/null 2>&1
}
mkdir -p "$build"
if ! command -v "$cc" >/dev/null || ! probe_fuzzer; then
  # Same installer as the build's own dependencies (root or sudo, Debian only). The fuzzer
  # runtime is only a Recommends of clang, which that installer does not pull in.
  # shellcheck source=../deps.sh
  source "$repo/tests/deps.sh"
  cas_deps_packages=(clang pkg-config libssl-dev libcjson-dev)
  cas_deps_install
  major="$("$cc" -dumpversion | cut -d. -f1)"
  probe_fuzzer || { cas_deps_packages=("libclang-rt-$major-dev") && cas_deps_install; }
  probe_fuzzer || { echo "$cc cannot build a libFuzzer target" >&2; exit 1; }
fi

read -r -a cjson_cflags <<<"$(pkg-config --cflags libcjson)"
read -r -a cjson_libs <<<"$(pkg-config --libs libcjson)"
san="address,undefined"
cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer "-fsanitize=$san" -fno-sanitize-recover=all -D_GNU_SOURCE "-DCAS_VERSION=\"fuzz\"" "-I$repo" "${cjson_cflags[@]}")

# common/ once, instrumented for coverage but without libFuzzer's main.
echo "== building into $build"
mkdir -p "$build/obj"
objs=() pids=()
for src in "$repo"/common/*.c; do
  obj="$build/obj/$(basename "$src" .c).o"
  "$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj" &
  objs+=("$obj") pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for t in "${targets[@]}"; do
  read -r -a extra <<<"${extra_src[$t]:-}"
  "$cc" "${cflags[@]}" -fsanitize=fuzzer -o "$build/fuzz_$t" "$here/fuzz_$t.c" \
    ${extra[@]+"${extra[@]}"} "${objs[@]}" -lcrypto "${cjson_libs[@]}"
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
rows=()
for t in "${targets[@]}"; do
  scratch="$build/corpus/$t" art="$build/artifacts/$t/" log="$build/fuzz_$t.log"
  [ $keep -eq 1 ] || rm -rf "$scratch"
  rm -rf "$art"
  mkdir -p "$scratch" "$art"
  dict=()
  [ -n "${dict_of[$t]:-}" ] && dict=("-dict=$here/${dict_of[$t]}.dict")
  echo "== fuzz_$t: $seconds s (log: $log)"
  rc=0
  (cd "$build" && "./fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${max_len[$t]}" -print_final_stats=1 -artifact_prefix="$art" \
    ${dict[@]+"${dict[@]}"} "$scratch" "$here/corpus/$t") >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  corp="$(grep -o "corp: [0-9]*" "$log" | tail -n 1 | cut -d" " -f2 || true)"
  result=ok
  if [ $rc -ne 0 ]; then
    failed=1
    crash="$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)"
    result="FAILED (exit $rc): ${crash:-see $log}"
    # What went wrong: the sanitizer's or libFuzzer's first report line, else the log's end.
    grep -m 3 -E '^(==[0-9]+== ?ERROR|SUMMARY|.*runtime error)' "$log" || tail -n 3 "$log"
  fi
  rows+=("$(printf '%-12s %7s %12s %7s  %s' "$t" "$seconds" "${execs:-?}" "${corp:-?}" "$result")")
done

printf '\n%-12s %7s %12s %7s  %s\n' target seconds execs corpus result
printf '%s\n' "${rows[@]}"
exit $failed
