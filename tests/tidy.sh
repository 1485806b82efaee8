#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Run clang-tidy (the checks in the top-level .clang-tidy) over every C file of the project.
#   bash tests/tidy.sh [BUILD_DIR]
# BUILD_DIR (default $CAS_TIDY_BUILD_DIR, else build-tidy at the top) is configured with
# compile_commands.json, not built. Checked: each .c file under common/ cache/ agent/ site/
# tests/tools/ tests/unit/ tests/fuzz/ that the build compiles (the fuzz targets are built by
# tests/fuzz/run.sh, outside CMake, so they are only checked once CMake knows them). Prints every
# diagnostic, then one summary line; exits 1 on any warning or a file clang-tidy could not check.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P) # physical, as CMake records the sources
top=$(dirname "$here")
build="${1:-${CAS_TIDY_BUILD_DIR:-$top/build-tidy}}"

tidy=""
for t in clang-tidy-14 clang-tidy; do
  if command -v "$t" >/dev/null; then
    tidy=$(command -v "$t")
    break
  fi
done
if [ -z "$tidy" ] && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "Installing: clang-tidy-14"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    clang-tidy-14 >/dev/null
  tidy=$(command -v clang-tidy-14)
fi
[ -n "$tidy" ] || { echo "tidy.sh: clang-tidy-14 or clang-tidy is needed" >&2; exit 2; }

# The configure step needs the build's dependencies (cmocka for the unit tests) and jq.
# shellcheck source=tests/deps.sh
. "$here/deps.sh"
cas_deps_install
cmake -S "$top" -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
db="$build/compile_commands.json"

files=()
while IFS= read -r f; do
  case "$f" in
    "$top"/common/*.c | "$top"/cache/*.c | "$top"/agent/*.c | "$top"/site/*.c | \
      "$top"/tests/tools/*.c | "$top"/tests/unit/*.c | "$top"/tests/fuzz/*.c) files+=("$f") ;;
  esac
done < <(jq -r '.[] | if (.file | startswith("/")) then .file else .directory + "/" + .file end' \
  "$db" | sort -u)
[ ${#files[@]} -gt 0 ] || { echo "tidy.sh: no project .c file in $db" >&2; exit 2; }

out=$(mktemp -d "${TMPDIR:-/tmp}/cas-tidy.XXXXXX")
trap 'rm -rf "$out"' EXIT
# One output file per source so that parallel runs do not interleave.
export CAS_TIDY_BIN="$tidy" CAS_TIDY_DB_DIR="$build" CAS_TIDY_OUT="$out"
# shellcheck disable=SC2016 # the inner script expands its own variables, in the child
printf '%s\0' "${files[@]}" | xargs -0 -n1 -P"$(nproc)" bash -c '
  log="$CAS_TIDY_OUT/$(printf %s "$1" | tr / _).log"
  "$CAS_TIDY_BIN" -p "$CAS_TIDY_DB_DIR" --quiet "$1" >"$log" 2>&1 || touch "$log.failed"
' tidy || true

diag='^[^ ].*:[0-9]+:[0-9]+: (warning|error): .*\[[^]]+\]$'
# "N warnings generated." counts what clang saw in system headers too: not ours.
noise='^[0-9]+ (warning|error)s? (and [0-9]+ (warning|error)s? )?generated\.$'
cat "$out"/*.log | grep -Ev "$noise" || true
# A header's warning is reported once per file that includes it: count each once.
warnings=$(cat "$out"/*.log | { grep -E "$diag" || true; } | sort -u | wc -l)
# clang-tidy also exits non-zero when it could not check a file at all (no diagnostic then).
broken=0
for f in "$out"/*.failed; do
  [ -e "$f" ] || continue
  grep -qE "$diag" "${f%.failed}" || broken=$((broken + 1))
done
summary="clang-tidy: ${#files[@]} files checked, $warnings warnings"
[ "$broken" -eq 0 ] || summary="$summary, $broken files clang-tidy could not check"
echo "$summary"
[ "$warnings" -eq 0 ] && [ "$broken" -eq 0 ]
