#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Benchmark (not a test): `cas-agent download` against curl and sha256sum on a local nginx DP, for
# one big file and for many small files; `cas-agent cache verify` of both packages against
# sha256sum over the cached files; and deduplication (a 1% change of the many-files package,
# downloaded with the old version in the cache, against a cold download). Prints a table per
# measurement and the targets with PASS/MISS. See tests/bench/README.md.
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
Measured, each in N rounds after a warm-up, tools rotated:
  download  CEN00101.1 (1 file) and CEN00102.1 (K files), cold agent cache: cas-agent download
            against curl (-o, -K, --parallel 16), with and without sha256sum
  verify    each package committed in the agent's cache, files in the page cache: cas-agent
            cache verify against sha256sum over the same files (1 GiB: sha256sum FILE; K files:
            find | xargs sha256sum on one core, and xargs -P2 on two)
  dedup     CEN00103.1 = CEN00102.1 with 1 file in 100 rewritten: cas-agent download with
            CEN00102.1 in the cache against a cold download (time, and bytes nginx sent)
With the defaults it all takes 7 to 9 minutes on 2 busy CPUs (load 1 to 4); the quick try
--big-mib 64 --files 500 --rounds 2 under a minute.
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
# Free space. The DP holds both packages (and CEN00103.1, hard links to CEN00102.1's files but
# for the changed ones). Besides it, at most: the big package in the cache (or curl's output),
# or CEN00102.1 and CEN00103.1 in the cache during the dedup rounds.
# ---------------------------------------------------------------------------------------------
BIG_BYTES=$((BIG_MIB * 1048576))
FILE_BYTES=$((FILE_KIB * 1024))
MANY_BYTES=$((FILES * FILE_BYTES))
# Disk use of the many-files package: whole 4 KiB blocks per file, plus folders and the listing.
MANY_DISK_MIB=$(((FILES * ((FILE_BYTES + 4095) / 4096) * 4096 + FILES * 100) / 1048576 + 1))
NEED_MIB=$((2 * BIG_MIB + 3 * MANY_DISK_MIB + 64))
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
C_DEDUP=CEN00103.1 # C_MANY with 1 file in 100 rewritten
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

# The second version: hard links to C_MANY's files (no second copy on the DP), then the 1st,
# 101st, 201st ... file of the listing replaced by a new file of new random bytes, same size.
N_CHANGED=$(((FILES + 99) / 100))
echo "# making $C_DEDUP: $C_MANY with $N_CHANGED of its files rewritten (1 in 100)"
cp -al "$DP/$C_MANY" "$DP/$C_DEDUP"
cut -d' ' -f3- "$DP/$C_MANY.sums" | awk 'NR % 100 == 1' >"$T/changed.list"
while IFS= read -r f; do
    rm -f "$DP/$C_DEDUP/$f" # breaks the link: C_MANY's file stays as it was
    head -c "$FILE_BYTES" /dev/urandom >"$DP/$C_DEDUP/$f"
done <"$T/changed.list"
publish "$C_DEDUP"
H_DEDUP=$PKG_HASH
[[ $PKG_FILES -eq $FILES && $PKG_SIZE -eq $MANY_BYTES ]] ||
    die "$C_DEDUP has $PKG_FILES files, $PKG_SIZE bytes; expected $FILES, $MANY_BYTES"
n=$(comm -13 <(sort "$DP/$C_MANY.sums") <(sort "$DP/$C_DEDUP.sums") | wc -l)
[[ $n -eq $N_CHANGED ]] || die "$C_DEDUP differs from $C_MANY in $n listed files, expected $N_CHANGED"

dp_start "$DP"
ACCESS_LOG=$(dp_access_log "$DP_URL")
DP_PATH=${DP_URL#http://*/} # SMSPKG, as nginx logs it: /SMSPKG/...
echo "# DP $DP_URL (nginx, one worker)"

# ---------------------------------------------------------------------------------------------
# Signed policy advertising all three, agent config (cache in $T, log_level 1), policy apply
# once. A second config differs only in its (empty) cache_dir: the cold downloads of the dedup
# rounds, while the first cache keeps C_MANY. The applied policy lives in state_dir, shared.
# ---------------------------------------------------------------------------------------------
make_site_key CEN
write_policy "$T/policy.json" serial=1 adverts="$(advert_json id=CEN20101 package=CEN00101 version=1 \
    hash="$H_BIG" size="$BIG_BYTES"),
$(advert_json id=CEN20102 package=CEN00102 version=1 hash="$H_MANY" size="$MANY_BYTES"),
$(advert_json id=CEN20103 package=CEN00103 version=1 hash="$H_DEDUP" size="$MANY_BYTES")"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
# The cache must hold the big package whatever --big-mib says, and both many-files versions.
CACHE_MB=$((BIG_MIB + 2 * MANY_DISK_MIB + 1024))
write_config log_level=1 cache_size_mb=$CACHE_MB
CACHE_COLD=$T/cache-cold
CFG_COLD=$T/agent-cold.json
write_config --file "$CFG_COLD" log_level=1 cache_size_mb=$CACHE_MB cache_dir="\"$CACHE_COLD\""
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
# sh -c so that time's %U/%S/%M cover every process of the pipeline. SECTION says what is
# measured: download (cold cache), verify (the package committed in the cache), dedup.
# ---------------------------------------------------------------------------------------------
AGENT_LABEL="cas-agent download"
BIG_LABELS=("$AGENT_LABEL" "curl -o + sha256sum" "curl -o" "curl -o + sync")
MANY_LABELS=("$AGENT_LABEL" "curl -K + sha256sum" "curl -K" "curl --parallel 16"
    "curl --parallel 16 + sha256sum")
VERIFY_LABEL="cas-agent cache verify"
# Two sha256sum processes need work for both: 500 files each, fewer for a small --files.
P2_N=500
((FILES >= 8 * P2_N)) || P2_N=$(((FILES + 7) / 8))
VERIFY_BIG_LABELS=("$VERIFY_LABEL" "sha256sum")
VERIFY_MANY_LABELS=("$VERIFY_LABEL" "xargs sha256sum" "xargs -P2 -n $P2_N sha256sum")
DEDUP_LABEL="cas-agent download (dedup)"
COLD_LABEL="cas-agent download (cold)"
DEDUP_LABELS=("$DEDUP_LABEL" "$COLD_LABEL")
SECTION=download

# tool_cmd C LABEL -- sets CMD (array) for that tool on that package, in this SECTION.
tool_cmd()
{
    local c=$1 label=$2
    local fetch_many=(curl -s --create-dirs -K "$MANY_CFG")
    local par_many=(curl --parallel --parallel-max 16 -s --create-dirs -K "$MANY_CFG")
    # shellcheck disable=SC2016 # the $1.. are sh -c's own arguments
    local hash_many='cd "$1" && xargs -r -d "\n" sha256sum <"$2" >"$3"'
    case $SECTION:$c:$label in
    download:*:"$AGENT_LABEL") CMD=("$CAS_AGENT" --config "$CFG" download "$c") ;;
    download:"$C_BIG:curl -o") CMD=(curl -s -o "$OUT" "$BIG_URL") ;;
    download:"$C_BIG:curl -o + sha256sum")
        # shellcheck disable=SC2016
        CMD=(sh -c 'curl -s -o "$1" "$2" && sha256sum "$1" >"$3"' sh "$OUT" "$BIG_URL" "$SUMOUT")
        ;;
    download:"$C_BIG:curl -o + sync")
        # shellcheck disable=SC2016
        CMD=(sh -c 'curl -s -o "$1" "$2" && sync -f "$1"' sh "$OUT" "$BIG_URL")
        ;;
    download:"$C_MANY:curl -K") CMD=("${fetch_many[@]}") ;;
    download:"$C_MANY:curl --parallel 16") CMD=("${par_many[@]}") ;;
    download:"$C_MANY:curl -K + sha256sum")
        CMD=(sh -c "${fetch_many[*]@Q} && set -- ${OUT@Q}/$C_MANY ${MANY_LIST@Q} ${SUMOUT@Q} && { $hash_many; }")
        ;;
    download:"$C_MANY:curl --parallel 16 + sha256sum")
        CMD=(sh -c "${par_many[*]@Q} && set -- ${OUT@Q}/$C_MANY ${MANY_LIST@Q} ${SUMOUT@Q} && { $hash_many; }")
        ;;
    verify:*:"$VERIFY_LABEL") CMD=("$CAS_AGENT" --config "$CFG" cache verify "$c") ;;
    verify:"$C_BIG:sha256sum") CMD=(sha256sum "$CACHE/$c/big.bin") ;;
    # The output goes to a file, not /dev/null, to be checked: under a MiB, it costs nothing.
    verify:"$C_MANY:xargs sha256sum")
        # shellcheck disable=SC2016
        CMD=(sh -c 'cd "$1" && find . -type f -print0 | xargs -0 sha256sum >"$2"' sh "$CACHE/$c" "$SUMOUT")
        ;;
    verify:"$C_MANY:xargs -P2 -n $P2_N sha256sum")
        # shellcheck disable=SC2016
        CMD=(sh -c 'cd "$1" && find . -type f -print0 | xargs -0 -P2 -n "$3" sha256sum >"$2"' sh
            "$CACHE/$c" "$SUMOUT" "$P2_N")
        ;;
    dedup:"$C_DEDUP:$DEDUP_LABEL") CMD=("$CAS_AGENT" --config "$CFG" download "$c") ;;
    dedup:"$C_DEDUP:$COLD_LABEL") CMD=("$CAS_AGENT" --config "$CFG_COLD" download "$c") ;;
    *) die "no command for $label on $c ($SECTION)" ;;
    esac
}

# empty_cache [DIR] -- cold cache: nothing in DIR (default cache_dir), hidden staging/lock files
# included.
empty_cache()
{
    local dir=${1:-$CACHE}
    if [[ -d $dir ]]; then
        find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    fi
}

sums_requests()
{
    grep -c "\"GET /$DP_PATH/$1.sums " "$ACCESS_LOG" || true
}

# log_size -- bytes in nginx's access log so far: a run's requests are what it appends.
log_size()
{
    stat -c %s "$ACCESS_LOG" 2>/dev/null || echo 0
}

# dp_bytes_since OFFSET -- body bytes nginx sent for the requests logged after OFFSET: the 10th
# field of the default (combined) log format, $body_bytes_sent.
dp_bytes_since()
{
    tail -c +$(($1 + 1)) "$ACCESS_LOG" | awk '{ s += $10 } END { printf "%d\n", s }'
}

# cache_copied C -- "FILES BYTES": what CAS.log says the agent copied from other cached content
# for C instead of downloading it, "0 0" without such a record. Read loosely: a record about C
# saying "instead of download...", its first "N [of M] file" and "B bytes".
cache_copied()
{
    local rec
    rec=$({ log_texts "$LOGS/CAS.lo_" && log_texts "$LOGS/CAS.log"; } |
        grep -i "Content ${1//./\\.}[: ].*instead of download" | tail -n 1 || true)
    awk -v r="$rec" 'BEGIN {
        f = 0; b = 0
        if (match(r, /[0-9]+ (of [0-9]+ )?file/)) { split(substr(r, RSTART, RLENGTH), w, " "); f = w[1] }
        if (match(r, /[0-9]+ bytes/)) { split(substr(r, RSTART, RLENGTH), w, " "); b = w[1] }
        print f, b }'
}

# count_files DIR -- "FILES BYTES" of the regular files under DIR.
count_files()
{
    find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d %d\n", NR, s }'
}

# check_committed C CACHEDIR LABEL RC -- the agent exited 0 and C is committed in CACHEDIR with
# the DP's listing, fetched from the DP by this run (the cache was cold for C). Sets FILES_BYTES.
check_committed()
{
    local c=$1 dir=$2 label=$3 rc=$4
    if [[ $rc -ne 0 ]]; then
        cat "$RUN_ERR" >&2
        die "$label $c exited $rc (its stderr above)"
    fi
    if [[ ! -f $dir/$c.sums || ! -d $dir/$c ]] || ! cmp -s "$dir/$c.sums" "$DP/$c.sums"; then
        cat "$RUN_ERR" >&2
        die "$label $c exited 0 but $c is not committed in the cache (it holds: $(find "$dir" -mindepth 1 -maxdepth 1 -printf '%f ')))"
    fi
    FILES_BYTES=$(count_files "$dir/$c")
    if [[ $(sums_requests "$c") -ne $((SUMS_BEFORE + 1)) ]]; then
        die "$label $c did not fetch $c.sums from the DP: the cache was not cold"
    fi
}

# check_run C LABEL RC -- abort unless the run did the whole job; the numbers mean nothing otherwise.
check_run()
{
    local c=$1 label=$2 rc=$3 want_files want_bytes
    FILES_BYTES=""
    if [[ $c == "$C_BIG" ]]; then
        want_files=1
        want_bytes=$BIG_BYTES
    else
        want_files=$FILES
        want_bytes=$MANY_BYTES
    fi
    case $SECTION:$label in
    download:"$AGENT_LABEL") check_committed "$c" "$CACHE" "$label" "$rc" ;;
    dedup:"$DEDUP_LABEL") check_committed "$c" "$CACHE" "$label" "$rc" ;;
    dedup:"$COLD_LABEL") check_committed "$c" "$CACHE_COLD" "$label" "$rc" ;;
    verify:"$VERIFY_LABEL")
        if [[ $rc -ne 0 ]]; then
            cat "$RUN_ERR" >&2
            die "$label $c exited $rc (its stderr above)"
        fi
        grep -qFx "$c"$'\t'verified$'\t'"$(upper "${H_OF[$c]}")" "$RUN_OUT" ||
            die "$label $c exited 0 but did not print '$c<TAB>verified<TAB>HASH': $(head -c 500 "$RUN_OUT")"
        return 0
        ;;
    verify:*)
        if [[ $rc -ne 0 ]]; then
            cat "$RUN_ERR" >&2
            die "$label on $c exited $rc"
        fi
        if [[ $c == "$C_BIG" ]]; then
            [[ $(cut -d' ' -f1 "$RUN_OUT") == "$H_BIG_FILE" ]] || die "$label: wrong hash of $c"
        elif [[ $label == "xargs sha256sum" ]]; then
            # find's order is the folder's, not the listing's: compare sorted by path.
            cmp -s <(sed 's|  \./|  |' "$SUMOUT" | sort -k2) <(sort -k2 "$DP/$c.sums") ||
                die "$label: sha256sum's output differs from $c.sums"
        else
            # Two processes share the output file: their lines may interleave at buffer
            # boundaries, their number does not change.
            [[ $(wc -l <"$SUMOUT") -eq $FILES ]] || die "$label hashed $(wc -l <"$SUMOUT") files, expected $FILES"
        fi
        return 0
        ;;
    download:*)
        if [[ $rc -ne 0 ]]; then
            cat "$RUN_ERR" >&2
            die "$label on $c exited $rc"
        fi
        local out=$OUT
        [[ $c == "$C_BIG" ]] || out=$OUT/$c
        FILES_BYTES=$(count_files "$out")
        if [[ $label == *sha256sum ]]; then
            if [[ $c == "$C_BIG" ]]; then
                [[ $(cut -d' ' -f1 "$SUMOUT") == "$H_BIG_FILE" ]] || die "$label: wrong hash of $c"
            else
                cmp -s "$SUMOUT" "$DP/$c.sums" || die "$label: sha256sum's output differs from $c.sums"
            fi
        fi
        ;;
    *) die "no check for $label ($SECTION)" ;;
    esac
    local files bytes
    read -r files bytes <<<"$FILES_BYTES"
    [[ $files -eq $want_files && $bytes -eq $want_bytes ]] ||
        die "$label on $c left $files files, $bytes bytes; expected $want_files, $want_bytes"
}
H_BIG_FILE=$(cut -d' ' -f1 "$DP/$C_BIG.sums")
declare -A H_OF=([$C_BIG]=$H_BIG [$C_MANY]=$H_MANY [$C_DEDUP]=$H_DEDUP)

# before_run C LABEL -- the state a run starts from, outside the measured time.
before_run()
{
    local c=$1 label=$2
    rm -rf "$OUT" "$SUMOUT" "$TIMEOUT"
    case $SECTION:$label in
    download:*) empty_cache ;;
    verify:*) ;; # the package stays committed for the whole section
    dedup:"$DEDUP_LABEL")
        [[ -f $CACHE/$C_MANY.sums && ! -e $CACHE/$c.sums && ! -e $CACHE/$c ]] ||
            die "before $label: the cache should hold $C_MANY and not $c; it holds: $(find "$CACHE" -mindepth 1 -maxdepth 1 -printf '%f ')"
        ;;
    dedup:"$COLD_LABEL") empty_cache "$CACHE_COLD" ;;
    esac
    # CAS.log then holds only this run's records (read by cache_copied).
    rm -f "$LOGS/CAS.log" "$LOGS/CAS.lo_"
}

# after_run C LABEL -- back to the section's state, outside the measured time.
after_run()
{
    local c=$1 label=$2
    rm -rf "$OUT" "$SUMOUT"
    case $SECTION:$label in
    download:*) empty_cache ;;
    dedup:"$DEDUP_LABEL")
        if ! "$CAS_AGENT" --config "$CFG" cache delete "$c" >"$RUN_OUT" 2>"$RUN_ERR"; then
            cat "$RUN_ERR" >&2
            die "cas-agent cache delete $c failed"
        fi
        ;;
    dedup:"$COLD_LABEL") empty_cache "$CACHE_COLD" ;;
    esac
}

# run_one C LABEL [RESULT_FILE] -- one run, timed; appends "wall user sys rss_kib time_e
# dp_bytes copied_files copied_bytes" to the file.
run_one()
{
    local c=$1 label=$2 res=${3:-} t0 t1 rc=0 log0
    tool_cmd "$c" "$label"
    before_run "$c" "$label"
    SUMS_BEFORE=$(sums_requests "$c")
    log0=$(log_size)
    # No dirty pages from the previous run: the agent syncs its files (syncfs) and must not pay
    # for another tool's writeback.
    sync
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %U %S %M' -o "$TIMEOUT" "${CMD[@]}" >"$RUN_OUT" 2>"$RUN_ERR" || rc=$?
    t1=$EPOCHREALTIME
    check_run "$c" "$label" "$rc"
    local e u s m sent copied
    sent=$(dp_bytes_since "$log0")
    copied=$(cache_copied "$c")
    if [[ -n $res ]]; then
        read -r e u s m <"$TIMEOUT"
        awk -v a="$t0" -v b="$t1" -v u="$u" -v s="$s" -v m="$m" -v e="$e" -v d="$sent" -v cp="$copied" \
            'BEGIN { printf "%.4f %s %s %s %s %s %s\n", b - a, u, s, m, e, d, cp }' >>"$res"
    fi
    after_run "$c" "$label"
}

# fill_cache C -- one agent download of C into the (emptied) cache, not measured, checked.
fill_cache()
{
    local rc=0
    empty_cache
    SUMS_BEFORE=$(sums_requests "$1")
    "$CAS_AGENT" --config "$CFG" download "$1" >"$RUN_OUT" 2>"$RUN_ERR" || rc=$?
    check_committed "$1" "$CACHE" "$AGENT_LABEL" "$rc"
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
echo "peers:   $(curl --version | head -1 | cut -d' ' -f1-2), $(sha256sum --version | head -1), $(xargs --version | head -1)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the runs"
echo "runs:    $ROUNDS per tool and measurement after 1 warm-up, tools rotated each round"
echo

# ---------------------------------------------------------------------------------------------
# The runs. Within a round every tool runs once; the starting tool rotates from round to round,
# so that drift (thermal, other load) spreads over all tools alike.
# ---------------------------------------------------------------------------------------------
KEYS=()
declare -A KEY_PKG KEY_LABELS

# bench_package SECTION C LABELS... -- warm-up, then ROUNDS rounds; results in $RES/KEY.i with
# KEY C for downloads, SECTION-C otherwise.
bench_package()
{
    SECTION=$1
    local c=$2
    shift 2
    local labels=("$@") n=$# r k i key=$SECTION-$c t0=$SECONDS
    [[ $SECTION != download ]] || key=$c
    KEYS+=("$key")
    KEY_PKG[$key]=$c
    KEY_LABELS[$key]=$(printf '%s\n' "${labels[@]}")
    printf '# %s %s: warm-up' "$SECTION" "$c"
    for ((i = 0; i < n; i++)); do
        run_one "$c" "${labels[$i]}"
    done
    for ((r = 0; r < ROUNDS; r++)); do
        printf ', round %d' $((r + 1))
        for ((k = 0; k < n; k++)); do
            i=$(((r + k) % n))
            run_one "$c" "${labels[$i]}" "$RES/$key.$i"
        done
    done
    echo " ($((SECONDS - t0)) s)"
}

bench_package download "$C_BIG" "${BIG_LABELS[@]}"
bench_package download "$C_MANY" "${MANY_LABELS[@]}"

# Re-verification: the package committed once, then only read (warm: the agent just wrote it).
fill_cache "$C_BIG"
bench_package verify "$C_BIG" "${VERIFY_BIG_LABELS[@]}"
fill_cache "$C_MANY"
bench_package verify "$C_MANY" "${VERIFY_MANY_LABELS[@]}"

# Deduplication: C_MANY stays in the cache; its files are in the page cache.
DEDUP_SKIP=""
if ! grep -aqi "instead of download" "$CAS_AGENT"; then
    DEDUP_SKIP="this cas-agent has no deduplication (no 'instead of downloaded' record in it)"
    echo "# dedup $C_DEDUP: skipped, $DEDUP_SKIP"
else
    bench_package dedup "$C_DEDUP" "${DEDUP_LABELS[@]}"
fi
empty_cache
empty_cache "$CACHE_COLD"
echo "# load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------------------
# Statistics and the tables.
# ---------------------------------------------------------------------------------------------
# stat_of FILE COLUMN median|min|max -- COLUMN 1 wall, 2 user, 3 sys, 4 rss KiB, 6 bytes nginx
# sent, 7 files and 8 bytes copied from the cache; cpu: user+sys.
stat_of()
{
    awk -v col="$2" '{ print (col == "cpu") ? $2 + $3 : $col }' "$1" | sort -g |
        awk -v what="$3" '
            { v[NR] = $1 }
            END {
                if (what == "min") print v[1]
                else if (what == "max") print v[NR]
                else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            }'
}

declare -A MED_WALL MED_RSS MAX_RSS MED_CPU

# table KEY BYTES TITLE RATIO_HEADER -- the key's tools, the first one compared with the others.
table()
{
    local key=$1 bytes=$2 title=$3 rhead=$4 labels i f med mn mx rss cpu ratio first_med
    mapfile -t labels <<<"${KEY_LABELS[$key]}"
    first_med=$(stat_of "$RES/$key.0" 1 median)
    echo "== $title =="
    printf '%-32s %9s %8s %8s %11s %8s %7s %8s\n' tool "wall med" min max "$rhead" "RSS MiB" "CPU s" "MiB/s"
    for i in "${!labels[@]}"; do
        f=$RES/$key.$i
        med=$(stat_of "$f" 1 median)
        mn=$(stat_of "$f" 1 min)
        mx=$(stat_of "$f" 1 max)
        rss=$(stat_of "$f" 4 median)
        cpu=$(stat_of "$f" cpu median)
        MED_WALL[$key:${labels[$i]}]=$med
        MED_RSS[$key:${labels[$i]}]=$rss
        MED_CPU[$key:${labels[$i]}]=$cpu
        MAX_RSS[$key:${labels[$i]}]=$(stat_of "$f" 4 max)
        if ((i == 0)); then
            ratio=-
        else
            ratio=$(awk -v a="$first_med" -v b="$med" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
        fi
        awk -v l="${labels[$i]}" -v med="$med" -v mn="$mn" -v mx="$mx" -v ratio="$ratio" -v rss="$rss" \
            -v cpu="$cpu" -v bytes="$bytes" 'BEGIN {
                printf "%-32s %9.3f %8.3f %8.3f %11s %8.1f %7.2f %8.1f\n", l, med, mn, mx, ratio,
                    rss / 1024, cpu, (med > 0) ? bytes / 1048576 / med : 0 }'
    done
    echo
}

# grouped N -- N with thousands separators.
grouped()
{
    awk -v n="$1" 'BEGIN {
        s = sprintf("%d", n); out = ""
        while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
        print s out }'
}

# pct A B -- A as a percentage of B.
pct()
{
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f%%", (b > 0) ? 100 * a / b : 0 }'
}

table "$C_BIG" "$BIG_BYTES" "$C_BIG: 1 file, $BIG_MIB MiB" agent/tool
table "$C_MANY" "$MANY_BYTES" "$C_MANY: $FILES files of $FILE_KIB KiB ($((MANY_BYTES / 1048576)) MiB)" agent/tool
echo "wall: seconds, median of $ROUNDS (min, max); agent/tool: the agent's median wall / this tool's;"
echo "RSS: median peak RSS (for sh -c pipelines: their largest process); CPU: median user+sys of all"
echo "processes; MiB/s: package size / median wall. The DP files are in the page cache for every tool."
echo

table "verify-$C_BIG" "$BIG_BYTES" "re-verify $C_BIG in the cache: 1 file, $BIG_MIB MiB" agent/tool
table "verify-$C_MANY" "$MANY_BYTES" "re-verify $C_MANY in the cache: $FILES files of $FILE_KIB KiB" agent/tool
echo "The package committed in the agent's cache once; every tool reads the same cached files, which"
echo "are in the page cache (warm) for all of them: hashing speed, not disk speed. xargs sha256sum runs"
echo "one sha256sum at a time (one core); -P2 -n $P2_N two at a time on batches of $P2_N files."
echo

declare -A MED_SENT MED_COPIED_FILES MED_COPIED_BYTES
if [[ -z $DEDUP_SKIP ]]; then
    k=dedup-$C_DEDUP
    table "$k" "$MANY_BYTES" "$C_DEDUP ($N_CHANGED of $FILES files changed) with $C_MANY in the cache" dedup/cold
    for i in 0 1; do
        l=${DEDUP_LABELS[$i]}
        MED_SENT[$l]=$(stat_of "$RES/$k.$i" 6 median)
        MED_COPIED_FILES[$l]=$(stat_of "$RES/$k.$i" 7 median)
        MED_COPIED_BYTES[$l]=$(stat_of "$RES/$k.$i" 8 median)
    done
    sums_bytes=$(stat -c %s "$DP/$C_DEDUP.sums")
    for l in "${DEDUP_LABELS[@]}"; do
        printf '%-32s sent by nginx %14s bytes (%s of the package), copied from the cache %d files, %s bytes\n' \
            "$l" "$(grouped "${MED_SENT[$l]}")" "$(pct "${MED_SENT[$l]}" "$MANY_BYTES")" \
            "${MED_COPIED_FILES[$l]}" "$(grouped "${MED_COPIED_BYTES[$l]}")"
    done
    echo "dedup: $C_DEDUP downloaded with $C_MANY (whose files are in the page cache) in the agent's cache;"
    echo "cold: the same download into an empty cache. dedup/cold: dedup's median wall / cold's. Bytes sent:"
    echo "median over the runs of nginx's \$body_bytes_sent for the run's requests, the listing"
    echo "$C_DEDUP.sums ($(grouped "$sums_bytes") bytes) included; package: $(grouped "$MANY_BYTES") bytes of files. Copied: the agent's"
    echo "CAS.log record of the run. The single-file package is not measured: a changed file is"
    echo "downloaded whole, so a 1% change of one file transfers 100%, whatever the cache holds."
    echo
else
    echo "== dedup: skipped, $DEDUP_SKIP =="
    echo
fi

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
many_name="$FILES files"
((FILES == 10000)) || many_name="$FILES files (the target is for 10,000)"
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

# cores KEY LABEL -- median CPU s / median wall: how many cores the tool kept busy.
cores()
{
    awk -v c="${MED_CPU[$1:$2]}" -v w="${MED_WALL[$1:$2]}" 'BEGIN { printf "%.2f", (w > 0) ? c / w : 0 }'
}

k=verify-$C_BIG
a=${MED_WALL[$k:$VERIFY_LABEL]}
p=${MED_WALL[$k:sha256sum]}
target "re-verify $big_name <= 1.0 x sha256sum" "$(ratio_of "$a" "$p")" 1.0 \
    "cache verify $(s3 "$a") s, sha256sum $(s3 "$p") s, ratio $(ratio_of "$a" "$p")"
k=verify-$C_MANY
a=${MED_WALL[$k:$VERIFY_LABEL]}
p=${MED_WALL[$k:xargs sha256sum]}
target "re-verify $many_name <= 1.0 x sha256sum (one core)" "$(ratio_of "$a" "$p")" 1.0 \
    "cache verify $(s3 "$a") s on $(cores "$k" "$VERIFY_LABEL") cores, xargs sha256sum $(s3 "$p") s, ratio $(ratio_of "$a" "$p")"
p=${MED_WALL[$k:xargs -P2 -n $P2_N sha256sum]}
echo "  info  re-verify $FILES files against two sha256sum at a time: cache verify $(s3 "$a") s, xargs -P2 -n $P2_N" \
    "sha256sum $(s3 "$p") s on $(cores "$k" "xargs -P2 -n $P2_N sha256sum") cores, ratio $(ratio_of "$a" "$p")"

if [[ -z $DEDUP_SKIP ]]; then
    k=dedup-$C_DEDUP
    d=${MED_SENT[$DEDUP_LABEL]}
    files_only=$((d - sums_bytes))
    # The listing is fetched whatever changed (it is what the signed hash covers): a fixed cost
    # of ~81 bytes per file, 2% of a package of 4 KiB files. The target is about file data.
    target "dedup: a 1% change transfers <= 2% of the package's file bytes" \
        "$(awk -v a="$files_only" -v b="$MANY_BYTES" 'BEGIN { print 100 * a / b }')" 2 \
        "files $(grouped "$files_only") of $(grouped "$MANY_BYTES") bytes, $(pct "$files_only" "$MANY_BYTES")"
    echo "  info  dedup: with the listing ($(grouped "$sums_bytes") bytes) $(grouped "$d") bytes were sent," \
        "$(pct "$d" "$MANY_BYTES") of the package"
    a=${MED_WALL[$k:$DEDUP_LABEL]}
    p=${MED_WALL[$k:$COLD_LABEL]}
    echo "  info  dedup time: $C_DEDUP with $C_MANY cached $(s3 "$a") s, cold $(s3 "$p") s, ratio $(ratio_of "$a" "$p")"
else
    echo "  SKIP  dedup: a 1% change transfers <= 2% of the package's file bytes: $DEDUP_SKIP"
fi

if [[ -n $RAW ]]; then
    {
        echo "package,tool,run,wall_s,user_s,sys_s,max_rss_kib,time_e_s,dp_body_bytes,copied_files,copied_bytes"
        for key in "${KEYS[@]}"; do
            mapfile -t labels <<<"${KEY_LABELS[$key]}"
            for i in "${!labels[@]}"; do
                awk -v c="${KEY_PKG[$key]}" -v l="${labels[$i]}" \
                    '{ printf "%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s\n", c, l, NR, $1, $2, $3, $4, $5, $6, $7, $8 }' "$RES/$key.$i"
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
