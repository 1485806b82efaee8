#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Benchmark (not a test): `cas-agent download` against curl and sha256sum on a local nginx DP, for
# one big file and for many small files. Prints a table per package and the targets with
# PASS/MISS. See tests/bench/README.md.
#
#   bash tests/bench/bench.sh [--rounds N] [--big-mib M] [--files K] [--file-kib S] [--profile]
#                             [--raw FILE]
set -Eeuo pipefail
export LC_ALL=C # sort order, and a '.' decimal point in $EPOCHREALTIME and printf

ROUNDS=5
BIG_MIB=1024
FILES=10000
FILE_KIB=4
PROFILE=""
RAW=""

usage()
{
    cat <<'EOF'
usage: bash tests/bench/bench.sh [--rounds N] [--big-mib M] [--files K] [--file-kib S]
                                 [--profile] [--raw FILE]
  --rounds N     measured runs of every tool per package (default 5; one warm-up run before)
  --big-mib M    size of the single-file package in MiB (default 1024)
  --files K      number of files in the many-files package (default 10000)
  --file-kib S   size of each of those files in KiB (default 4)
  --profile      afterwards, profile one agent download of the big package: perf stat if the
                 CPU counters work here, else valgrind --tool=callgrind + callgrind_annotate
  --raw FILE     also write every measured run as CSV to FILE
Environment: CAS_AGENT / CAS_SITE (default: a Release build into build-bench/), NGINX
(default /usr/sbin/nginx), TMPDIR (where the temp area goes; default /tmp).
EOF
}

die()
{
    echo "bench: $*" >&2
    exit 1
}

positive()
{
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer, got '$2'"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds | --big-mib | --files | --file-kib)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        positive "$1" "$2"
        case $1 in
        --rounds) ROUNDS=$2 ;;
        --big-mib) BIG_MIB=$2 ;;
        --files) FILES=$2 ;;
        --file-kib) FILE_KIB=$2 ;;
        esac
        shift 2
        ;;
    --profile)
        PROFILE=1
        shift
        ;;
    --raw)
        [[ $# -ge 2 ]] || die "--raw needs a file"
        RAW=$(realpath -m "$2")
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

# ---------------------------------------------------------------------------------------------
# What the benchmark needs. Nothing is installed: a missing tool is named with its Debian package.
# ---------------------------------------------------------------------------------------------
NGINX=${NGINX:-/usr/sbin/nginx}
[[ -x $NGINX ]] || die "nginx not found at $NGINX: apt-get install nginx-light (or set NGINX=)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: apt-get install time (bash's 'time' keyword cannot report peak RSS)"
for tool in curl:curl sha256sum:coreutils split:coreutils xargs:findutils openssl:openssl ss:iproute2 awk:mawk; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} not found: apt-get install ${tool#*:}"
done
curl --help all 2>/dev/null | grep -q -- '--parallel-max' || die "this curl has no --parallel-max (needs curl >= 7.66)"
if [[ -n $PROFILE ]] && ! perf stat -e instructions true 2>&1 | grep -q '[0-9] *instructions'; then
    if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
        die "--profile: perf cannot count instructions here and valgrind is missing: apt-get install valgrind"
    fi
fi

# ---------------------------------------------------------------------------------------------
# The programs: from the environment, or a Release build into build-bench/.
# ---------------------------------------------------------------------------------------------
if [[ -z ${CAS_AGENT:-} ]]; then
    command -v cmake >/dev/null || die "CAS_AGENT is not set and cmake is missing to build it"
    B=$REPO/build-bench
    echo "# building cas-agent and cas-site (Release) into $B"
    blog=$(mktemp "${TMPDIR:-/tmp}/cas-bench-build.XXXXXX")
    if ! { cmake -S "$REPO" -B "$B" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$B" -j"$(nproc)" --target cas-agent cas-site; } >"$blog" 2>&1; then
        tail -n 30 "$blog" >&2
        rm -f "$blog"
        die "the build failed (last lines above)"
    fi
    rm -f "$blog"
    export CAS_AGENT=$B/cas-agent CAS_SITE=$B/cas-site
fi
# lib.sh insists on both; the benchmark uses only the agent.
export CAS_SITE=${CAS_SITE:-$(dirname "$CAS_AGENT")/cas-site}

# ---------------------------------------------------------------------------------------------
# Free space. The DP holds both packages; one copy of one package exists besides it at a time
# (the agent's cache or curl's output is removed after every run).
# ---------------------------------------------------------------------------------------------
BIG_BYTES=$((BIG_MIB * 1048576))
FILE_BYTES=$((FILE_KIB * 1024))
MANY_BYTES=$((FILES * FILE_BYTES))
# Disk use of the many-files package: whole 4 KiB blocks per file, plus folders and the listing.
MANY_DISK_MIB=$(((FILES * ((FILE_BYTES + 4095) / 4096) * 4096 + FILES * 100) / 1048576 + 1))
NEED_MIB=$((2 * BIG_MIB + 2 * MANY_DISK_MIB + 64))
TMPBASE=${TMPDIR:-/tmp}
AVAIL_MIB=$(($(df -Pk "$TMPBASE" | awk 'NR == 2 { print $4 }') / 1024))
echo "# temp area in $TMPBASE: needs about $NEED_MIB MiB, $AVAIL_MIB MiB free"
((AVAIL_MIB >= NEED_MIB)) || die "not enough space in $TMPBASE (set TMPDIR, or use a smaller --big-mib / --files)"

# ---------------------------------------------------------------------------------------------
# The harness: temp folder $T, nginx DPs, keys, policy, config; its EXIT trap stops nginx and
# removes $T, also on Ctrl-C.
# ---------------------------------------------------------------------------------------------
LIB_QUIET=1
# shellcheck source=../integration/lib.sh
source "$REPO/tests/integration/lib.sh"
trap '_bench_unexpected $LINENO "$BASH_COMMAND"' ERR
_bench_unexpected()
{
    [[ $BASHPID == "$$" ]] || return 0
    echo "bench: unexpected failure at line $1: $2" >&2
}

OUT=$T/out           # curl's output (a file, or a folder of files)
SUMOUT=$T/sums.out   # sha256sum's output
TIMEOUT=$T/time.out  # /usr/bin/time's output
RUN_OUT=$T/run.stdout
RUN_ERR=$T/run.stderr
RES=$T/results
mkdir -p "$RES"

# ---------------------------------------------------------------------------------------------
# The packages, written straight into the DP folder (no second copy), listed with coreutils
# exactly as lib.sh's dp_publish does.
# ---------------------------------------------------------------------------------------------
DP=$T/dp
C_BIG=CEN00101.1
C_MANY=CEN00102.1
mkdir -p "$DP/$C_BIG" "$DP/$C_MANY"

# publish C -- write DP/C.sums; set PKG_HASH, PKG_SIZE, PKG_FILES for the advert.
publish()
{
    local c=$1
    (cd "$DP/$c" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' sha256sum) >"$DP/$c.sums"
    PKG_ALG=sha256
    PKG_HASH=$(sha256sum "$DP/$c.sums" | cut -d' ' -f1)
    PKG_SIZE=$(find "$DP/$c" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    PKG_FILES=$(find "$DP/$c" -type f | wc -l)
}

echo "# making $C_BIG: 1 file of $BIG_MIB MiB"
head -c "$BIG_BYTES" /dev/urandom >"$DP/$C_BIG/big.bin"
publish "$C_BIG"
H_BIG=$PKG_HASH

echo "# making $C_MANY: $FILES files of $FILE_KIB KiB in folders of 100"
left=$FILES
d=0
while ((left > 0)); do
    n=$((left < 100 ? left : 100))
    dir=$DP/$C_MANY/$(printf 'd%04d' "$d")
    mkdir -p "$dir"
    # One random stream per folder, cut into files: a few processes instead of one per file.
    head -c $((n * FILE_BYTES)) /dev/urandom | split -a 3 -d -b "$FILE_BYTES" --additional-suffix=.bin - "$dir/f"
    left=$((left - n))
    d=$((d + 1))
done
publish "$C_MANY"
H_MANY=$PKG_HASH
[[ $PKG_FILES -eq $FILES && $PKG_SIZE -eq $MANY_BYTES ]] ||
    die "the many-files package has $PKG_FILES files, $PKG_SIZE bytes; expected $FILES, $MANY_BYTES"

dp_start "$DP"
ACCESS_LOG=$(dp_access_log "$DP_URL")
DP_PATH=${DP_URL#http://*/} # SMSPKG, as nginx logs it: /SMSPKG/...
echo "# DP $DP_URL (nginx, one worker)"

# ---------------------------------------------------------------------------------------------
# Signed policy advertising both, agent config (cache in $T, log_level 1), policy apply once.
# ---------------------------------------------------------------------------------------------
make_site_key CEN
write_policy "$T/policy.json" serial=1 adverts="$(advert_json id=CEN20101 package=CEN00101 version=1 \
    hash="$H_BIG" size="$BIG_BYTES"),
$(advert_json id=CEN20102 package=CEN00102 version=1 hash="$H_MANY" size="$MANY_BYTES")"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
# The cache must hold the big package whatever --big-mib says.
write_config log_level=1 cache_size_mb=$((BIG_MIB + MANY_DISK_MIB + 1024))
if ! "$CAS_AGENT" --config "$CFG" policy apply "$T/policy.json" >"$RUN_OUT" 2>"$RUN_ERR"; then
    cat "$RUN_ERR" >&2
    die "policy apply failed"
fi

# curl's inputs for the many-files package: the listing and every file, as the agent fetches them.
MANY_CFG=$T/many.curl
MANY_LIST=$T/many.list
cut -d' ' -f3- "$DP/$C_MANY.sums" >"$MANY_LIST"
{
    printf 'url = "%s"\noutput = "%s"\n' "$DP_URL/$C_MANY.sums" "$OUT/$C_MANY.sums"
    awk -v u="$DP_URL/$C_MANY/" -v o="$OUT/$C_MANY/" '{ printf "url = \"%s%s\"\noutput = \"%s%s\"\n", u, $0, o, $0 }' "$MANY_LIST"
} >"$MANY_CFG"
BIG_URL=$DP_URL/$C_BIG/big.bin

# ---------------------------------------------------------------------------------------------
# The tools. Each is a label and a command line run under /usr/bin/time; compound ones go through
# sh -c so that time's %U/%S/%M cover every process of the pipeline.
# ---------------------------------------------------------------------------------------------
AGENT_LABEL="cas-agent download"
BIG_LABELS=("$AGENT_LABEL" "curl -o + sha256sum" "curl -o" "curl -o + sync")
MANY_LABELS=("$AGENT_LABEL" "curl -K + sha256sum" "curl -K" "curl --parallel 16"
    "curl --parallel 16 + sha256sum")

# tool_cmd C LABEL -- sets CMD (array) for that tool on that package.
tool_cmd()
{
    local c=$1 label=$2
    local fetch_many=(curl -s --create-dirs -K "$MANY_CFG")
    local par_many=(curl --parallel --parallel-max 16 -s --create-dirs -K "$MANY_CFG")
    # shellcheck disable=SC2016 # the $1.. are sh -c's own arguments
    local hash_many='cd "$1" && xargs -r -d "\n" sha256sum <"$2" >"$3"'
    case $c:$label in
    *:"$AGENT_LABEL") CMD=("$CAS_AGENT" --config "$CFG" download "$c") ;;
    "$C_BIG:curl -o") CMD=(curl -s -o "$OUT" "$BIG_URL") ;;
    "$C_BIG:curl -o + sha256sum")
        # shellcheck disable=SC2016
        CMD=(sh -c 'curl -s -o "$1" "$2" && sha256sum "$1" >"$3"' sh "$OUT" "$BIG_URL" "$SUMOUT")
        ;;
    "$C_BIG:curl -o + sync")
        # shellcheck disable=SC2016
        CMD=(sh -c 'curl -s -o "$1" "$2" && sync -f "$1"' sh "$OUT" "$BIG_URL")
        ;;
    "$C_MANY:curl -K") CMD=("${fetch_many[@]}") ;;
    "$C_MANY:curl --parallel 16") CMD=("${par_many[@]}") ;;
    "$C_MANY:curl -K + sha256sum")
        CMD=(sh -c "${fetch_many[*]@Q} && set -- ${OUT@Q}/$C_MANY ${MANY_LIST@Q} ${SUMOUT@Q} && { $hash_many; }")
        ;;
    "$C_MANY:curl --parallel 16 + sha256sum")
        CMD=(sh -c "${par_many[*]@Q} && set -- ${OUT@Q}/$C_MANY ${MANY_LIST@Q} ${SUMOUT@Q} && { $hash_many; }")
        ;;
    *) die "no command for $label on $c" ;;
    esac
}

# empty_cache -- cold cache: nothing in cache_dir, hidden staging/lock files included.
empty_cache()
{
    if [[ -d $CACHE ]]; then
        find "$CACHE" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    fi
}

sums_requests()
{
    grep -c "\"GET /$DP_PATH/$1.sums " "$ACCESS_LOG" || true
}

# check_run C LABEL RC -- abort unless the run did the whole job; the numbers mean nothing otherwise.
check_run()
{
    local c=$1 label=$2 rc=$3 files bytes want_files want_bytes
    if [[ $c == "$C_BIG" ]]; then
        want_files=1
        want_bytes=$BIG_BYTES
    else
        want_files=$FILES
        want_bytes=$MANY_BYTES
    fi
    if [[ $label == "$AGENT_LABEL" ]]; then
        if [[ $rc -ne 0 ]]; then
            cat "$RUN_ERR" >&2
            die "$label $c exited $rc (its stderr above)"
        fi
        if [[ ! -f $CACHE/$c.sums || ! -d $CACHE/$c ]] || ! cmp -s "$CACHE/$c.sums" "$DP/$c.sums"; then
            cat "$RUN_ERR" >&2
            die "$label $c exited 0 but $c is not committed in the cache (it holds: $(find "$CACHE" -mindepth 1 -maxdepth 1 -printf '%f ')))"
        fi
        files=$(find "$CACHE/$c" -type f | wc -l)
        bytes=$(find "$CACHE/$c" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
        if [[ $(sums_requests "$c") -ne $((SUMS_BEFORE + 1)) ]]; then
            die "$label $c did not fetch $c.sums from the DP: the cache was not cold"
        fi
    else
        if [[ $rc -ne 0 ]]; then
            cat "$RUN_ERR" >&2
            die "$label on $c exited $rc"
        fi
        local out=$OUT
        [[ $c == "$C_BIG" ]] || out=$OUT/$c
        files=$(find "$out" -type f | wc -l)
        bytes=$(find "$out" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
        if [[ $label == *sha256sum ]]; then
            if [[ $c == "$C_BIG" ]]; then
                [[ $(cut -d' ' -f1 "$SUMOUT") == "$H_BIG_FILE" ]] || die "$label: wrong hash of $c"
            else
                cmp -s "$SUMOUT" "$DP/$c.sums" || die "$label: sha256sum's output differs from $c.sums"
            fi
        fi
    fi
    [[ $files -eq $want_files && $bytes -eq $want_bytes ]] ||
        die "$label on $c left $files files, $bytes bytes; expected $want_files, $want_bytes"
}
H_BIG_FILE=$(cut -d' ' -f1 "$DP/$C_BIG.sums")

# run_one C LABEL [RESULT_FILE] -- one cold run, timed; appends "wall user sys rss_kib" to the file.
run_one()
{
    local c=$1 label=$2 res=${3:-} t0 t1 rc=0
    tool_cmd "$c" "$label"
    empty_cache
    rm -rf "$OUT" "$SUMOUT" "$TIMEOUT"
    SUMS_BEFORE=$(sums_requests "$c")
    # No dirty pages from the previous run: the agent syncs its files (syncfs) and must not pay
    # for another tool's writeback.
    sync
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %U %S %M' -o "$TIMEOUT" "${CMD[@]}" >"$RUN_OUT" 2>"$RUN_ERR" || rc=$?
    t1=$EPOCHREALTIME
    check_run "$c" "$label" "$rc"
    if [[ -n $res ]]; then
        local e u s m
        read -r e u s m <"$TIMEOUT"
        awk -v a="$t0" -v b="$t1" -v u="$u" -v s="$s" -v m="$m" -v e="$e" \
            'BEGIN { printf "%.4f %s %s %s %s\n", b - a, u, s, m, e }' >>"$res"
    fi
    empty_cache
    rm -rf "$OUT" "$SUMOUT"
}

# ---------------------------------------------------------------------------------------------
# The header: machine, programs.
# ---------------------------------------------------------------------------------------------
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=unknown
if command -v git >/dev/null && commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
    # --no-optional-locks: never touch the index of a checkout others are working in.
    if [[ -n $(git --no-optional-locks -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        commit="$commit (with uncommitted changes)"
    fi
fi
echo
echo "machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(awk '/^MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
echo "agent:   $("$CAS_AGENT" --version 2>&1 | head -1), commit $commit, $CAS_AGENT"
echo "peers:   $(curl --version | head -1 | cut -d' ' -f1-2), $(sha256sum --version | head -1)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the runs"
echo "runs:    $ROUNDS per tool and package after 1 warm-up, tools rotated each round; cold agent cache"
echo

# ---------------------------------------------------------------------------------------------
# The runs. Within a round every tool runs once; the starting tool rotates from round to round,
# so that drift (thermal, other load) spreads over all tools alike.
# ---------------------------------------------------------------------------------------------
# bench_package C LABELS... -- warm-up, then ROUNDS rounds.
bench_package()
{
    local c=$1
    shift
    local labels=("$@") n=$# r k i
    printf '# %s: warm-up' "$c"
    for ((i = 0; i < n; i++)); do
        run_one "$c" "${labels[$i]}"
    done
    for ((r = 0; r < ROUNDS; r++)); do
        printf ', round %d' $((r + 1))
        for ((k = 0; k < n; k++)); do
            i=$(((r + k) % n))
            run_one "$c" "${labels[$i]}" "$RES/$c.$i"
        done
    done
    echo
}

bench_package "$C_BIG" "${BIG_LABELS[@]}"
bench_package "$C_MANY" "${MANY_LABELS[@]}"
echo "# load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------------------
# Statistics and the tables.
# ---------------------------------------------------------------------------------------------
# stat_of FILE COLUMN median|min|max -- COLUMN 1 wall, 2 user, 3 sys, 4 rss KiB, 6 user+sys.
stat_of()
{
    awk -v col="$2" '{ print (col == 6) ? $2 + $3 : $col }' "$1" | sort -g |
        awk -v what="$3" '
            { v[NR] = $1 }
            END {
                if (what == "min") print v[1]
                else if (what == "max") print v[NR]
                else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            }'
}

declare -A MED_WALL MED_RSS MAX_RSS

# table C BYTES TITLE LABELS...
table()
{
    local c=$1 bytes=$2 title=$3
    shift 3
    local labels=("$@") i f med mn mx rss cpu ratio agent_med
    agent_med=$(stat_of "$RES/$c.0" 1 median)
    echo "== $title =="
    printf '%-32s %9s %8s %8s %11s %8s %7s %8s\n' tool "wall med" min max "agent/tool" "RSS MiB" "CPU s" "MiB/s"
    for i in "${!labels[@]}"; do
        f=$RES/$c.$i
        med=$(stat_of "$f" 1 median)
        mn=$(stat_of "$f" 1 min)
        mx=$(stat_of "$f" 1 max)
        rss=$(stat_of "$f" 4 median)
        cpu=$(stat_of "$f" 6 median)
        MED_WALL[$c:${labels[$i]}]=$med
        MED_RSS[$c:${labels[$i]}]=$rss
        MAX_RSS[$c:${labels[$i]}]=$(stat_of "$f" 4 max)
        if ((i == 0)); then
            ratio=-
        else
            ratio=$(awk -v a="$agent_med" -v b="$med" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
        fi
        awk -v l="${labels[$i]}" -v med="$med" -v mn="$mn" -v mx="$mx" -v ratio="$ratio" -v rss="$rss" \
            -v cpu="$cpu" -v bytes="$bytes" 'BEGIN {
                printf "%-32s %9.3f %8.3f %8.3f %11s %8.1f %7.2f %8.1f\n", l, med, mn, mx, ratio,
                    rss / 1024, cpu, (med > 0) ? bytes / 1048576 / med : 0 }'
    done
    echo
}

table "$C_BIG" "$BIG_BYTES" "$C_BIG: 1 file, $BIG_MIB MiB" "${BIG_LABELS[@]}"
table "$C_MANY" "$MANY_BYTES" "$C_MANY: $FILES files of $FILE_KIB KiB ($((MANY_BYTES / 1048576)) MiB)" "${MANY_LABELS[@]}"
echo "wall: seconds, median of $ROUNDS (min, max); agent/tool: the agent's median wall / this tool's;"
echo "RSS: median peak RSS (for sh -c pipelines: their largest process); CPU: median user+sys of all"
echo "processes; MiB/s: package size / median wall. The DP files are in the page cache for every tool."
echo

# target LABEL VALUE LIMIT DETAIL -- one PASS/MISS line (VALUE <= LIMIT passes).
target()
{
    awk -v l="$1" -v v="$2" -v lim="$3" -v d="$4" \
        'BEGIN { printf "  %s  %s: %s\n", (v <= lim + 1e-9) ? "PASS" : "MISS", l, d }'
}

s3()
{
    awk -v v="$1" 'BEGIN { printf "%.3f", v }'
}

ratio_of()
{
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

big_name="1 GiB"
((BIG_MIB == 1024)) || big_name="$BIG_MIB MiB (the target is for 1 GiB)"
echo "targets:"
a=${MED_WALL[$C_BIG:$AGENT_LABEL]}
p=${MED_WALL[$C_BIG:curl -o]}
target "$big_name: agent <= 1.0 x curl -o" "$(ratio_of "$a" "$p")" 1.0 \
    "agent $(s3 "$a") s, curl -o $(s3 "$p") s, ratio $(ratio_of "$a" "$p")"
p=${MED_WALL[$C_BIG:curl -o + sha256sum]}
target "$big_name: agent <= 0.7 x (curl -o + sha256sum)" "$(ratio_of "$a" "$p")" 0.7 \
    "agent $(s3 "$a") s, curl -o + sha256sum $(s3 "$p") s, ratio $(ratio_of "$a" "$p")"
a=${MED_WALL[$C_MANY:$AGENT_LABEL]}
p=${MED_WALL[$C_MANY:curl --parallel 16]}
target "$FILES files: agent <= 1.2 x curl --parallel --parallel-max 16" "$(ratio_of "$a" "$p")" 1.2 \
    "agent $(s3 "$a") s, curl --parallel 16 $(s3 "$p") s, ratio $(ratio_of "$a" "$p")"
for c in "$C_BIG" "$C_MANY"; do
    m=$(awk -v k="${MAX_RSS[$c:$AGENT_LABEL]}" 'BEGIN { printf "%.1f", k / 1024 }')
    target "agent peak RSS <= 32 MiB on $c" "$m" 32 \
        "highest of $ROUNDS runs $m MiB, median $(awk -v k="${MED_RSS[$c:$AGENT_LABEL]}" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
done

if [[ -n $RAW ]]; then
    {
        echo "package,tool,run,wall_s,user_s,sys_s,max_rss_kib,time_e_s"
        for c in "$C_BIG" "$C_MANY"; do
            if [[ $c == "$C_BIG" ]]; then labels=("${BIG_LABELS[@]}"); else labels=("${MANY_LABELS[@]}"); fi
            for i in "${!labels[@]}"; do
                awk -v c="$c" -v l="${labels[$i]}" '{ printf "%s,%s,%d,%s,%s,%s,%s,%s\n", c, l, NR, $1, $2, $3, $4, $5 }' "$RES/$c.$i"
            done
        done
    } >"$RAW"
    echo
    echo "# raw runs in $RAW"
fi

# ---------------------------------------------------------------------------------------------
# Profile of one agent download of the big package (cold cache).
# ---------------------------------------------------------------------------------------------
if [[ -n $PROFILE ]]; then
    echo
    empty_cache
    sync
    if perf stat -e instructions true 2>&1 | grep -q '[0-9] *instructions'; then
        echo "== profile: perf stat, agent download of $C_BIG =="
        perf stat -e task-clock,cycles,instructions -- "$CAS_AGENT" --config "$CFG" download "$C_BIG" 2>&1 >/dev/null |
            grep -v '^$'
    else
        echo "== profile: callgrind (perf cannot count instructions here), agent download of $C_BIG =="
        valgrind --tool=callgrind --callgrind-out-file="$T/callgrind.out" \
            "$CAS_AGENT" --config "$CFG" download "$C_BIG" >"$RUN_OUT" 2>"$RUN_ERR" ||
            {
                tail -n 20 "$RUN_ERR" >&2
                die "the agent failed under valgrind"
            }
        callgrind_annotate "$T/callgrind.out" 2>/dev/null | head -30
        # The call path down to the hot spot: the agent's functions between main and libcrypto.
        echo "-- inclusive:"
        callgrind_annotate --inclusive=yes "$T/callgrind.out" 2>/dev/null |
            sed -n '/file:function/,/^$/p' | sed -n '3,22p'
    fi
    empty_cache
    sync
    # The CPU profiles miss time spent waiting in the kernel; strace's wall-clock summary shows
    # it (the commit's syncfs above all). Threads are summed, so overlapping calls add up.
    if command -v strace >/dev/null; then
        echo "== profile: wall time in system calls (strace -f -c -w), agent download of $C_BIG =="
        strace -f -c -w -o "$T/strace.txt" \
            -e trace=syncfs,fsync,fdatasync,sync_file_range,write,pwrite64,pread64,read,recvfrom,renameat,renameat2,poll,ppoll,epoll_wait \
            "$CAS_AGENT" --config "$CFG" download "$C_BIG" >"$RUN_OUT" 2>"$RUN_ERR" ||
            die "the agent failed under strace: $(tail -n 5 "$RUN_ERR")"
        head -n 20 "$T/strace.txt"
    else
        echo "(strace is not installed: no system-call wall times; apt-get install strace)"
    fi
    empty_cache
fi
