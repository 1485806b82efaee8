#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Crash torture. The agent is killed with SIGKILL at many exact points of a download and of the
# commit, with no test hook in the product: strace's fault injection delivers SIGKILL as the
# agent enters the chosen system call (the call itself is not made). After every kill:
#   1. the agent really died of SIGKILL, and on entering the intended call (strace's record of
#      the call is checked against the point's pattern, so a point past the last call or a
#      shifted count is a test failure, not a silent pass);
#   2. the cache holds no entry that fails verification: if C.sums is there, C/ is there, the
#      package hash recomputed with coreutils equals the signed hash, C.sums is the signed
#      listing byte for byte, and every file of C/ is read-only;
#   3. no program ran;
#   4. the next run without strace exits 0, the entry is committed and verifies (sha256sum -c
#      against the signed listing, no other file), no staging folder is left, an `execute` ran the
#      program exactly once, in the committed folder, and nginx's access log shows the big file
#      fetched exactly as the kill's leftovers allow: not at all when it was already placed (or
#      the entry committed: then nothing at all is fetched), resumed with a 206 carrying exactly
#      the missing bytes when its side record was kept, in full otherwise.
# No litter either: a staging lock or an index temp file left by a kill is gone after the next
# run (cache_open removes them).
# The calls are chosen from traced runs made at test time (strace -f -y), never from hard-coded
# counts: data writes spread over the bytes of a 3 MiB file, any write of the job, the staging
# folders and locks, side records, placing files, every step of cache_commit (seal, syncfs, the
# listing's temp file, the locks, the renames, the syncs, the index), what execute does before
# the program starts (hold, index, pipe, fork). Some points kill twice in a row: the second kill
# in the run that resumes the first, at a call found by a dry run from the first kill's leftovers.
# Needs strace (tests/deps.sh installs it); skipped with 77 without it or without ptrace. Under
# ASan, LeakSanitizer cannot run under ptrace: the traced runs set detect_leaks=0, the others not.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_crash"

if ! command -v strace >/dev/null 2>&1; then
    echo "# skipped: strace is not installed (tests/deps.sh installs it)"
    exit 77
fi
if ! strace -f -qq -o /dev/null -e trace=getpid true >/dev/null 2>&1; then
    echo "# skipped: strace cannot trace here (ptrace not permitted)"
    exit 77
fi
T0=$SECONDS

C=CEN00051.1
AD=CEN20051
BIG=$((3 * 1024 * 1024))

# One 3 MiB file and 39 small ones in sub-folders (many chmods to seal). Under 64 files the cache
# re-hashes on one thread, so every thread's call counts are the same from run to run.
make_site_key CEN
make_package "$T/src"
head -c "$BIG" /dev/urandom >"$T/src/data/big.bin"
for d in a b c; do
    mkdir -p "$T/src/tree/$d"
    for i in $(seq 1 12); do
        printf 'small file %s/%s\n' "$d" "$i" >"$T/src/tree/$d/f$i.txt"
    done
done
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" "$C"
dp_start "$T/dp"
DP_PORT=${DP_URL#http://127.0.0.1:}
DP_PORT=${DP_PORT%%/*}
ACCESS_LOG=$(dp_access_log "$DP_URL")
BIG_URL_PATH="$DP_PREFIX/$C/data/big.bin"
BIG_HASH=$(file_hash "$T/src/data/big.bin")
write_policy "$T/policy.json" serial=1 adverts="$(advert_json id="$AD" package="${C%.*}" version=1)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

# No log rotation during the test: a rotation renames files and would shift the counts of rename.
config_parallel()
{
    write_config log_max_size=1073741824
}
config_sequential()
{
    write_config log_max_size=1073741824 max_parallel_transfers=1
}
config_parallel
assert_exit 0 agent policy apply "$T/policy.json"

# Where the job stages the content, and the part file of the big file: files are numbered in
# listing order.
STAGE=$CACHE/.partial/$C
PARTS=$STAGE/parts
bidx=$(cut -d' ' -f3- "$T/dp/$C.sums" | grep -nxF 'data/big.bin' | cut -d: -f1)
BIDX=$(printf '%06d' $((bidx - 1)))
BIG_PART=$PARTS/$BIDX.part
BIG_JSON=$PARTS/$BIDX.json
echo "# $PKG_FILES files, $PKG_SIZE bytes; data/big.bin is part $BIDX"

# ERE-quoted strings for the patterns below.
re_quote()
{
    printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'
}
CRE=$(re_quote "$C")
CACHE_RE=$(re_quote "$CACHE")
STAGE_RE=$(re_quote "$STAGE")
PARTS_RE=$(re_quote "$PARTS")

# strace makes LeakSanitizer's own ptrace fail at exit: leaks are checked in the runs without it.
STRACE_ENV=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
# Every call a point may be chosen from; '?' ignores names this architecture does not have.
DRY_SET='write,openat,?mkdir,mkdirat,?chmod,fchmod,fchmodat,syncfs,fsync,?rename,renameat,?renameat2'
DRY_SET+=',?unlink,unlinkat,?rmdir,flock,?clone,?clone3,?fork,?vfork,pipe2,?newfstatat,?fstatat64'
DRY_SET+=',?statx,?lstat,execve'

MODE_ARGS=()
set_mode()
{
    case $1 in
    download) MODE_ARGS=(download "$C") ;;
    execute) MODE_ARGS=(execute "$AD") ;;
    *) fail "set_mode $1" ;;
    esac
}

# reset -- no cache at all, no proof of a run, no logs: every point starts from the same state,
# so the dry runs' counts hold. (Read-only files go with rm -f: only their folders' modes count.)
reset()
{
    rm -rf "${CACHE:?}" "$PROOF/ran-$AD" "$LOGS"
}

# slurp VAR FILE -- the whole file into VAR without a fork ("" if it is missing).
slurp()
{
    local -n _v=$1
    _v=""
    [[ ! -f $2 ]] || IFS= read -r -d '' _v <"$2" || true
}

# dry NAME MODE -- a complete run under strace without injection, from the current state, every
# candidate call recorded with the paths of its descriptors (-y) in $T/dry-NAME.trace. The state
# is put back afterwards, so a kill can start from exactly where the dry run started.
dry()
{
    local name=$1 mode=$2 rc=0
    set_mode "$mode"
    rm -rf "$T/snap"
    [[ ! -d $CACHE ]] || cp -a "$CACHE" "$T/snap"
    "${STRACE_ENV[@]}" strace -f -qq -y -o "$T/dry-$name.trace" -e trace="$DRY_SET" \
        "$CAS_AGENT" --config "$CFG" "${MODE_ARGS[@]}" >"$T/dry.out" 2>"$T/dry.err" </dev/null || rc=$?
    [[ $rc -eq 0 ]] || fail "the traced $mode without faults ($name) exits 0" "exit status $rc" \
        "stderr: $(head -c 1500 "$T/dry.err")"
    [[ ! -d $CACHE ]] || chmod -R u+rwX "$CACHE"
    rm -rf "$CACHE"
    if [[ -d $T/snap ]]; then mv "$T/snap" "$CACHE"; fi
    rm -f "$PROOF/ran-$AD"
}

# find_call TRACE ERE [WHICH [N]] -- a call of the agent's main thread whose strace line matches
# ERE: WHICH is N (the Nth such call, default 1), "last", "before=ERE2" (the last one before the
# first line matching ERE2) or "after=ERE2" (the Nth one, default first, after the first line
# matching ERE2).
# Sets CALL_SC (the system call) and CALL_K (which call of that system call it is in the main
# thread: the count strace's when= uses, per system call and per thread).
find_call()
{
    local out
    out=$(RE=$2 WHICH=${3:-1} NTH=${4:-1} awk '
        BEGIN {
            w = ENVIRON["WHICH"]
            nth = ENVIRON["NTH"] + 0
            mode = "nth"
            if (w == "last") mode = "last"
            else if (w ~ /^before=/) { mode = "before"; re2 = substr(w, 8) }
            else if (w ~ /^after=/) { mode = "after"; re2 = substr(w, 7) }
            else occ = w + 0
        }
        NR == 1 { leader = $1 }
        $1 != leader { next }
        {
            rest = $0
            sub(/^[0-9]+ +/, "", rest)
            if (rest ~ /^<\.\.\. / || rest !~ /^[a-z_0-9]+\(/) next
            sc = rest
            sub(/\(.*/, "", sc)
            n[sc]++
            if (mode == "before" && $0 ~ re2) { if (last != "") print last; found = 1; exit }
            if (mode == "after" && !seen && $0 ~ re2) { seen = 1; next }
            if ($0 ~ ENVIRON["RE"] && (mode != "after" || seen)) {
                m++
                last = sc " " n[sc]
                if ((mode == "nth" && m == occ) || (mode == "after" && m == nth)) { print last; found = 1; exit }
            }
        }
        END { if (!found && mode == "last" && last != "") print last }' "$1")
    [[ -n $out ]] || fail "the traced run $(_lib_show "$1") has a call ($(_lib_show "${3:-1}")) matching: $(_lib_show "$2")" \
        "$(grep -c '' "$1") lines traced; none matches"
    read -r CALL_SC CALL_K <<<"$out"
}

# count_calls TRACE ERE -- how many calls of the main thread match ERE.
count_calls()
{
    RE=$2 awk 'NR == 1 { leader = $1 } $1 == leader && $0 ~ ENVIRON["RE"] { n++ } END { print n + 0 }' "$1"
}

# dp_settle -- wait until nginx has finished every connection (a killed agent's request is
# logged when nginx sees the connection gone), then empty the access log (nginx appends to it), so
# it holds the next run's requests only.
dp_settle()
{
    local i busy
    for ((i = 0; i < 250; i++)); do
        busy=$(ss -tnH state established state close-wait "( sport = :$DP_PORT )" 2>/dev/null || true)
        if [[ -z $busy ]]; then
            : >"$ACCESS_LOG"
            return 0
        fi
        sleep 0.02
    done
    fail "nginx finishes the killed agent's connections within 5 s" "$busy"
}

NPOINTS=0
NKILLS=0
LABEL=""
KEPT=""
WANT=""
slurp SIGNED_LISTING "$T/dp/$C.sums"

# crash MODE LABEL SYSCALL WHEN ERE [STRACE OPTIONS...] -- run the agent under strace with SIGKILL
# injected on entering call WHEN of SYSCALL (counted among the calls the options select), check
# that it died there, then check what it left.
crash()
{
    local mode=$1 label=$2 sc=$3 when=$4 re=$5 rc=0 last n
    shift 5
    set_mode "$mode"
    LABEL=$label
    # A subshell waits for strace, so the shell's "Killed" notice goes nowhere.
    (
        "${STRACE_ENV[@]}" strace -f -qq -y -o "$T/kill.trace" "$@" -e trace="$sc" \
            -e inject="$sc":signal=KILL:when="$when" \
            "$CAS_AGENT" --config "$CFG" "${MODE_ARGS[@]}" >"$T/kill.out" 2>"$T/kill.err" </dev/null || exit $?
    ) 2>/dev/null || rc=$?
    NKILLS=$((NKILLS + 1))
    # How many calls of SYSCALL the thread that made most of them made, and its last one: the
    # call the agent died entering. (Per thread: as the process dies, strace may print one more
    # line for another thread, repeating the call it died on.)
    read -r n last < <(SC=$sc awk '{ r = $0; sub(/^[0-9]+ +/, "", r) }
        index(r, ENVIRON["SC"] "(") == 1 { n[$1]++; l[$1] = $0 }
        END { for (t in n) if (n[t] > best) { best = n[t]; bl = l[t] } print best + 0, bl }' "$T/kill.trace")
    if [[ $rc -ne 137 ]]; then
        fail "$label: the agent is killed by SIGKILL (exit 137)" \
            "exit status $rc: $sc call $when was never made (a test bug: the point is past the last call) or strace failed" \
            "strace saw $n $sc call(s); last: $(_lib_show "${last:0:200}")" \
            "stderr: $(head -c 1000 "$T/kill.err")"
    fi
    if [[ $n -ne $when || ! $last =~ $re ]]; then
        fail "$label: killed on entering the intended call" \
            "wanted $sc call $when matching: $(_lib_show "$re")" \
            "killed on $sc call $n: $(_lib_show "${last:0:300}")"
    fi
    [[ ! $last =~ ^[0-9]+\ +(.*)$ ]] || last=${BASH_REMATCH[1]}
    [[ $sc != write ]] || last=${last%%, \"*} # not the data
    last=$(_lib_show "$last")
    ok "$label: killed by SIGKILL entering $sc #$when: ${last:0:150}"
    check_left "$label"
}

# check_left LABEL -- what a kill left: no entry that fails verification; no program ran.
check_left()
{
    local label=$1 state h listing scan kind path extra="" writable=""
    # One walk of the cache: anything beside the entries (a stray temp file of a commit, say),
    # writable files of a committed entry, and the size of the big file's part.
    KEPT=""
    scan=$(find "$CACHE" \( -path "$BIG_PART" -printf 'part %s\n' \) -o \
        \( -path "$CACHE/*" ! -path "$CACHE/*/*" ! -name .partial ! -name .lock ! -name .locks \
        ! -name .index.json ! -name "$C" ! -name "$C.sums" -printf 'extra %p\n' \) -o \
        \( -path "$CACHE/$C/*" -type f -perm /222 -printf 'writable %p\n' \))
    while read -r kind path; do
        case $kind in
        part) KEPT=$path ;;
        extra)
            # The index is written through a temp file: one a kill left is litter, not an entry
            # (the next run must remove it: checked after that run).
            [[ $path == "$CACHE"/.index.json.tmp-* ]] || extra+=" $path"
            ;;
        writable) writable+=" $path" ;;
        esac
    done <<<"$scan"
    if [[ -e $CACHE/$C.sums ]]; then
        [[ -d $CACHE/$C ]] || fail "$label: a committed entry has its folder" "C.sums is there, C/ is not" \
            "$(ls -la "$CACHE")"
        h=$(package_hash "$CACHE/$C")
        [[ $h == "$PKG_HASH" ]] || fail "$label: the committed entry verifies" \
            "C.sums is in the cache but C/ hashes to $h, the signed hash is $PKG_HASH" \
            "$(diff <(sums_of "$T/src") <(sums_of "$CACHE/$C") | head -5)" \
            "$(_lib_tail "$LOGS/CAS.log" 8)"
        slurp listing "$CACHE/$C.sums"
        [[ $listing == "$SIGNED_LISTING" ]] || fail "$label: the committed C.sums is the signed listing" \
            "$(diff "$T/dp/$C.sums" "$CACHE/$C.sums" | head -5)"
        [[ -z $writable ]] || fail "$label: every committed file is read-only" "writable:$(_lib_show "$writable")"
        state="committed, verifies"
    elif [[ -e $CACHE/$C ]]; then
        state="C/ without C.sums: not an entry"
    else
        state="nothing committed"
    fi
    [[ -z $extra ]] || fail "$label: nothing but entries and the cache's own files (.partial, .lock, .locks, .index.json)" \
        "$(_lib_show "$extra")"
    [[ ! -e $PROOF/ran-$AD ]] || fail "$label: the program did not run" "$(cat "$PROOF/ran-$AD")"
    ok "$label: no entry fails verification ($state); the program did not run${KEPT:+; big.bin part: $KEPT bytes}"
}

# expected_big -- WANT: an ERE for how the next run must fetch data/big.bin, from what the kill
# left (check_left has set KEPT, the size of its part file).
expected_big()
{
    if [[ -f $CACHE/$C.sums ]]; then
        WANT='^$' # committed: verified from disk, nothing fetched
    elif [[ -f $STAGE/$C/data/big.bin && $(file_hash "$STAGE/$C/data/big.bin") == "$BIG_HASH" ]]; then
        WANT='^$' # already placed in the staging folder: reused
    elif [[ -s $BIG_JSON && -n $KEPT ]]; then
        if ((KEPT == BIG)); then
            # All of it arrived but it was not placed: the range past the end is refused, and
            # the file fetched again after a retry.
            WANT="^416:[0-9]+,200:$BIG\$"
        else
            WANT="^206:$((BIG - KEPT))\$"
        fi
    else
        WANT="^200:$BIG\$"
    fi
}

# complete MODE -- the next run, without strace, completes the job.
complete()
{
    local mode=$1 label=$LABEL got all runs listing scan kind path writable="" left="" tail=""
    local committed="" files=0
    local -a lines=()
    set_mode "$mode"
    expected_big
    [[ ! -f $CACHE/$C.sums ]] || committed=1
    dp_settle
    run "$CAS_AGENT" --config "$CFG" "${MODE_ARGS[@]}"
    [[ $LAST_RC -eq 0 ]] || fail "$label: the next $mode exits 0" "exit status $LAST_RC" \
        "stderr: $(head -c 1000 "$LAST_ERR")" "$(_lib_tail "$LOGS/CAS.log" 12)"
    [[ -f $CACHE/$C.sums && -d $CACHE/$C ]] || fail "$label: the next $mode commits $C" "$(ls -la "$CACHE")"
    # Verified with coreutils: C.sums is the signed listing, every file of it hashes as listed,
    # and C/ holds no other file; so the package hash is the signed one.
    slurp listing "$CACHE/$C.sums"
    [[ $listing == "$SIGNED_LISTING" ]] || fail "$label: the committed C.sums is the signed listing"
    (cd "$CACHE/$C" && sha256sum --quiet --strict -c "$T/dp/$C.sums" >"$T/check.out" 2>&1) ||
        fail "$label: every committed file hashes as the signed listing says" "$(head -5 "$T/check.out")"
    [[ -x $CACHE/$C/install.sh ]] || fail "$label: the program is executable in the cache"
    scan=$(find "$CACHE" \( -path "$CACHE/$C/*" -type f -printf 'file %p\n' -perm /222 -printf 'writable %p\n' \) -o \
        \( -path "$CACHE/.partial/*" ! -name '*.lock' -printf 'left %p\n' \) -o \
        \( -path "$STAGE.lock" -printf 'lock %p\n' \) -o \( -path "$CACHE/.index.json.tmp-*" -printf 'tmp %p\n' \))
    while read -r kind path; do
        case $kind in
        file) files=$((files + 1)) ;;
        writable) writable+=" $path" ;;
        left) left+=" $path" ;;
        lock) fail "$label: no staging lock is left after the next run" "$(_lib_show "$path")" ;;
        tmp) fail "$label: no index temp file is left after the next run" "$(_lib_show "$path")" ;;
        esac
    done <<<"$scan"
    [[ $files -eq $PKG_FILES ]] || fail "$label: the committed folder holds the listed files only" \
        "$files files, the listing has $PKG_FILES"
    [[ -z $writable ]] || fail "$label: every committed file is read-only" "writable:$(_lib_show "$writable")"
    [[ -z $left ]] || fail "$label: no staging folder is left after the run" "$(_lib_show "$left")"
    [[ ! -f $PROOF/ran-$AD ]] || mapfile -t lines <"$PROOF/ran-$AD"
    runs=${#lines[@]}
    if [[ $mode == execute ]]; then
        [[ $runs -eq 1 ]] || fail "$label: the program ran exactly once" "it ran $runs times"
        [[ ${lines[0]} == "ran $AD cwd=$CACHE/$C" ]] || fail "$label: the program ran in the committed folder" \
            "$(_lib_show "${lines[0]}")"
    else
        [[ $runs -eq 0 ]] || fail "$label: download never runs the program" "it ran $runs times"
    fi
    # nginx logs each request as its response ends, before the agent has read it all: the log is
    # complete now. "status:bytes" of each request of big.bin, and how many requests in all.
    read -r all got < <(awk -v p="$BIG_URL_PATH" '
        { all++ } $7 == p { g = g (g == "" ? "" : ",") $9 ":" $10 } END { print all + 0, g }' "$ACCESS_LOG")
    [[ $got =~ $WANT ]] || fail "$label: the next run fetches big.bin as the kill left it" \
        "expected (ERE): $WANT" "nginx logged: ${got:-no request}" "$(_lib_tail "$LOGS/DataTransferService.log" 6)"
    if [[ $WANT == ^206:* ]] && ! log_texts "$LOGS/DataTransferService.log" |
        grep -Fxq "Resuming $DP_URL/$C/data/big.bin at byte $KEPT"; then
        fail "$label: DataTransferService.log says where the resumed run started" \
            "no record 'Resuming $DP_URL/$C/data/big.bin at byte $KEPT'" "$(_lib_tail "$LOGS/DataTransferService.log" 6)"
    fi
    [[ -z $committed || $all -eq 0 ]] || fail "$label: a committed entry is verified from disk, nothing fetched" \
        "$all request(s)"
    ok "$label: the next $mode exits 0, $C is committed and verifies, read-only; program ran $runs time(s); big.bin: ${got:-not fetched}$tail"
}

# point MODE LABEL SYSCALL WHEN ERE [STRACE OPTIONS...] -- one kill from a fresh cache, then the
# completing run of the same mode.
point()
{
    local mode=$1
    NPOINTS=$((NPOINTS + 1))
    reset
    crash "$@"
    complete "$mode"
}

# point_at TRACE MODE LABEL ERE [WHICH [N]] -- a point at the call a dry run found.
point_at()
{
    local tr=$1 mode=$2 label=$3 re=$4 occ=${5:-1} nth=${6:-1}
    find_call "$tr" "$re" "$occ" "$nth"
    point "$mode" "$label" "$CALL_SC" "$CALL_K" "$re"
}

# ---------------------------------------------------------------------------------------------
echo "# dry runs: what a complete download and execute call, in which order"
reset
dry par-dl download
config_sequential
dry seq-dl download
config_parallel
dry par-ex execute

DRY=$T/dry-par-dl.trace
DRY_SEQ=$T/dry-seq-dl.trace
DRY_EX=$T/dry-par-ex.trace

# The data writes of the big file: how many, and the largest. A run may cut the data into more
# pieces but never into fewer than BIG / largest, so every point below that is reached.
BIG_WRITE_RE="^[0-9]+ +write\\([0-9]+<$(re_quote "$BIG_PART")>"
nbw=$(count_calls "$DRY" "$BIG_WRITE_RE")
maxw=$(RE=$BIG_WRITE_RE awk '$0 ~ ENVIRON["RE"] { n = $NF + 0; if (n > m) m = n } END { print m + 0 }' "$DRY")
((nbw > 0 && maxw > 0)) || fail "the dry run wrote big.bin's part file" "$nbw writes, largest $maxw"
NBW_MIN=$(((BIG + maxw - 1) / maxw))
nw=$(count_calls "$DRY" '^[0-9]+ +write\(')
NW_MIN=$((nw - nbw + NBW_MIN))
# Sealing: each file read-only (the program 0555), once.
# The seal opens each file (O_NOFOLLOW, a second name refused) and fchmods it: fchmod(fd<path>, mode).
SEAL_RE="f?chmod(at)?\\((.*\"$STAGE_RE/$CRE/[^\"]+\"|[0-9]+<$STAGE_RE/$CRE/[^>]+>), 0(444|555)"
nseal=$(count_calls "$DRY" "^[0-9]+ +$SEAL_RE")
assert_eq "$PKG_FILES" "$nseal" "the commit seals every file with one chmod each"
echo "# dry run: $nw writes by the main thread, $nbw of them to big.bin's part (largest $maxw bytes)"

# Patterns of the commit's steps.
TMP_RE="$STAGE_RE/$CRE\\.sums\\.tmp-[^\">]+"
UNLINK_SUMS_RE="unlink(at)?\\(.*\"$CACHE_RE/$CRE\\.sums\""
RENAME_C_RE="rename(at2?)?\\(.*\"$STAGE_RE/$CRE\", .*\"$CACHE_RE/$CRE\""
RENAME_SUMS_RE="rename(at2?)?\\(.*\"$STAGE_RE/$CRE\\.sums\", .*\"$CACHE_RE/$CRE\\.sums\""
INDEX_TMP_RE="$CACHE_RE/\\.index\\.json\\.tmp-[^\">]+"
RENAME_INDEX_RE="rename(at2?)?\\(.*\"$INDEX_TMP_RE\", .*\"$CACHE_RE/\\.index\\.json\""
FORK_RE="(clone3?\\(.*SIGCHLD|v?fork\\()"
# The runner's output pipe: the first pipe2 of an execute (the transfer process, forked earlier
# for the download, talks over a socketpair), so the runner's fork is the first fork after it.
RUNNER_PIPE_RE="pipe2?\\("

# ---------------------------------------------------------------------------------------------
echo "# data: writes of big.bin's part file, spread evenly over its bytes"
NDATA=10
for ((i = 0; i < NDATA; i++)); do
    k=$((1 + i * (NBW_MIN - 1) / (NDATA - 1)))
    mode=download
    ((i % 3 != 2)) || mode=execute
    point "$mode" "data $((i + 1))/$NDATA [$mode]" write "$k" "$BIG_WRITE_RE" -P "$BIG_PART"
done

echo "# any write of the job (file data, side records, logs, the listing), spread over the run"
for i in 1 2 3; do
    k=$((i * NW_MIN / 4))
    point download "write $k of $nw [download]" write "$k" '^[0-9]+ +write\('
done

echo "# the staging folder, its lock and the first files"
point_at "$DRY" download "staging lock: open" "openat\\(.*\"$STAGE_RE\\.lock\", O_RDWR\\|O_CREAT"
point_at "$DRY" download "staging lock: flock" "flock\\([0-9]+<$STAGE_RE\\.lock>, LOCK_EX"
point_at "$DRY" download "mkdir staging" "mkdir(at)?\\(.*\"$STAGE_RE\", 0700"
point_at "$DRY" download "mkdir staging content folder" "mkdir(at)?\\(.*\"$STAGE_RE/$CRE\", 0755"
point_at "$DRY" download "mkdir parts" "mkdir(at)?\\(.*\"$STAGE_RE/parts\", 0700"
point_at "$DRY" download "mkdirat data/" "mkdirat\\([0-9]+<$STAGE_RE/$CRE>, \"data\", "
point_at "$DRY" download "create big.bin's part file" "openat\\([0-9]+<$PARTS_RE>, \"$BIDX\\.part\", O_RDWR\\|O_CREAT"

echo "# side record and placing files"
point download "side record: its write" write 1 "^[0-9]+ +write\\([0-9]+<$(re_quote "$BIG_JSON")>" -P "$BIG_JSON"
config_sequential
point_at "$DRY_SEQ" download "side record: create (one transfer at a time)" \
    "openat\\([0-9]+<$PARTS_RE>, \"$BIDX\\.json\", O_WRONLY"
point_at "$DRY_SEQ" download "big.bin complete, side record not yet removed (one at a time)" \
    "unlinkat\\([0-9]+<$PARTS_RE>, \"$BIDX\\.json\", 0"
point_at "$DRY_SEQ" download "place big.bin (one at a time)" \
    "renameat2?\\([0-9]+<$PARTS_RE>, \"$BIDX\\.part\", "
config_parallel
point_at "$DRY" download "place the 20th file" "renameat2?\\([0-9]+<$PARTS_RE>, \"[0-9]+\\.part\", " 20
point_at "$DRY" download "place the last file" "renameat2?\\([0-9]+<$PARTS_RE>, \"[0-9]+\\.part\", " last
point_at "$DRY" download "remove parts/ after the last file" "unlinkat\\(.*\"$PARTS_RE\", AT_REMOVEDIR"

echo "# the commit: seal, sync, the listing written atomically, locks, the renames, the syncs, the index"
point_at "$DRY" download "seal: chmod the content folder" "chmod(at)?\\(.*\"$STAGE_RE/$CRE\", 0755"
for occ in 1 last; do
    point_at "$DRY" download "seal: chmod $occ of $nseal files" "$SEAL_RE" "$occ"
done
point_at "$DRY" download "seal: chmod of the program (0555)" "f?chmod(at)?\\((.*\"$STAGE_RE/$CRE/install\\.sh\"|[0-9]+<$STAGE_RE/$CRE/install\\.sh>), 0555"
point_at "$DRY" download "syncfs" "syncfs\\("
point_at "$DRY" download "listing: create the temp file" "openat\\(.*\"$TMP_RE\", O_RDWR\\|O_CREAT\\|O_EXCL"
point_at "$DRY" download "listing: fchmod the temp file" "fchmod\\([0-9]+<$TMP_RE>"
point_at "$DRY" download "listing: fsync the temp file" "fsync\\([0-9]+<$TMP_RE>"
point_at "$DRY" download "listing: rename the temp file" "rename(at2?)?\\(.*\"$TMP_RE\", .*\"$STAGE_RE/$CRE\\.sums\""
point_at "$DRY" download "listing: fsync the staging folder" "fsync\\([0-9]+<$STAGE_RE>"
point_at "$DRY" download "use lock: flock" "flock\\([0-9]+<$CACHE_RE/\\.locks/$CRE>, LOCK_EX" before="$UNLINK_SUMS_RE"
point_at "$DRY" download "cache lock: flock" "flock\\([0-9]+<$CACHE_RE/\\.lock>, LOCK_EX" before="$UNLINK_SUMS_RE"
point_at "$DRY" download "unlink an older C.sums" "$UNLINK_SUMS_RE"
point_at "$DRY" download "rename C/ into the cache" "$RENAME_C_RE"
point_at "$DRY" download "rename C.sums into the cache" "$RENAME_SUMS_RE"
point_at "$DRY" download "fsync the cache folder" "fsync\\([0-9]+<$CACHE_RE>" after="$RENAME_SUMS_RE"
point_at "$DRY" download "index: create its temp file" "openat\\(.*\"$INDEX_TMP_RE\", " after="$RENAME_SUMS_RE"
point_at "$DRY" download "index: fsync its temp file" "fsync\\([0-9]+<$INDEX_TMP_RE>" after="$RENAME_SUMS_RE"
point_at "$DRY" download "index: rename its temp file" "$RENAME_INDEX_RE" after="$RENAME_SUMS_RE"
point_at "$DRY" download "fsync the cache folder after the index" "fsync\\([0-9]+<$CACHE_RE>" after="$RENAME_SUMS_RE" 2
point_at "$DRY" download "remove staging: chmod" "fchmodat\\(.*\"$STAGE_RE\", 0700"
point_at "$DRY" download "remove staging: rmdir" "(unlinkat|rmdir)\\(.*\"$STAGE_RE\""
point_at "$DRY" download "unlink the staging lock" "unlink(at)?\\(.*\"$STAGE_RE\\.lock\""

echo "# execute: the commit, the checks after it, and the moment before the program starts"
point_at "$DRY_EX" execute "rename C.sums into the cache [execute]" "$RENAME_SUMS_RE"
point_at "$DRY_EX" execute "fsync the cache folder [execute]" "fsync\\([0-9]+<$CACHE_RE>" after="$RENAME_SUMS_RE"
point_at "$DRY_EX" execute "hold the entry for the run (shared use lock) [execute]" \
    "flock\\([0-9]+<$CACHE_RE/\\.locks/$CRE>, LOCK_SH"
point_at "$DRY_EX" execute "stat the program in the cache [execute]" "\"$CACHE_RE/$CRE/install\\.sh\""
point_at "$DRY_EX" execute "index: rename before the run [execute]" "$RENAME_INDEX_RE" before="$RUNNER_PIPE_RE"
point_at "$DRY_EX" execute "pipe for the runner [execute]" "$RUNNER_PIPE_RE"
point_at "$DRY_EX" execute "fork the runner [execute]" "$FORK_RE" after="$RUNNER_PIPE_RE"

# ---------------------------------------------------------------------------------------------
echo "# two kills in a row, then the completing run"

# pair LABEL -- start a pair: a fresh cache.
pair()
{
    NPOINTS=$((NPOINTS + 1))
    reset
    echo "# pair: $1"
}

# second_at NAME MODE LABEL ERE [OCC] -- the second kill of a pair, at a call found by a dry run
# from the state the first kill left.
second_at()
{
    local name=$1 mode=$2 label=$3 re=$4 occ=${5:-1}
    dry "$name" "$mode"
    find_call "$T/dry-$name.trace" "$re" "$occ"
    crash "$mode" "$label" "$CALL_SC" "$CALL_K" "$re"
}


pair "in big.bin at 40%, then again in the resumed run"
k1=$((NBW_MIN * 2 / 5))
crash download "pair 1a: data write $k1" write "$k1" "$BIG_WRITE_RE" -P "$BIG_PART"
[[ -s $BIG_JSON ]] || fail "pair 1a: the side record was kept" "$(ls -la "$PARTS")"
k2=$(((NBW_MIN - k1) / 2))
crash download "pair 1b: data write $k2 of the resumed run" write "$k2" "$BIG_WRITE_RE" -P "$BIG_PART"
complete download

pair "in big.bin at 60%, then at the resumed run's side record (its resume is lost)"
k1=$((NBW_MIN * 3 / 5))
crash download "pair 2a: data write $k1" write "$k1" "$BIG_WRITE_RE" -P "$BIG_PART"
crash execute "pair 2b: side record write of the resumed run [execute]" write 1 \
    "^[0-9]+ +write\\([0-9]+<$(re_quote "$BIG_JSON")>" -P "$BIG_JSON"
complete execute

pair "at the first seal chmod, then at the write of the listing in the run that reuses the files"
find_call "$DRY" "$SEAL_RE" 1
crash download "pair 3a: seal chmod 1" "$CALL_SC" "$CALL_K" "$SEAL_RE"
second_at p3 download "pair 3b: write the listing's temp file" "write\\([0-9]+<$TMP_RE>"
complete download

pair "with C/ renamed but not C.sums, then while the next run removes that orphan"
find_call "$DRY" "$RENAME_SUMS_RE" 1
crash download "pair 4a: rename C.sums (C/ is in place)" "$CALL_SC" "$CALL_K" "$RENAME_SUMS_RE"
[[ -d $CACHE/$C && ! -e $CACHE/$C.sums ]] || fail "pair 4a: C/ without C.sums" "$(ls -la "$CACHE")"
n=$((PKG_FILES / 2))
second_at p4 download "pair 4b: removing the orphan C/, file $n" \
    "unlinkat\\([0-9]+<$CACHE_RE/$CRE(/[^>]*)?>, \"[^\"]+\", 0" "$n"
complete download

pair "at rename of the listing, then at the rename of C.sums in the next run"
re="rename(at2?)?\\(.*\"$TMP_RE\", .*\"$STAGE_RE/$CRE\\.sums\""
find_call "$DRY" "$re" 1
crash download "pair 5a: rename the listing's temp file" "$CALL_SC" "$CALL_K" "$re"
second_at p5 download "pair 5b: rename C.sums into the cache" "$RENAME_SUMS_RE"
complete download

pair "execute killed after the final sync, then again as it forks the runner"
re="fsync\\([0-9]+<$CACHE_RE>"
find_call "$DRY_EX" "$re" after="$RENAME_SUMS_RE"
crash execute "pair 6a: fsync the cache folder [execute]" "$CALL_SC" "$CALL_K" "$re"
second_at p6 execute "pair 6b: fork the runner [execute]" "$FORK_RE"
complete execute

echo "# $NKILLS kills at $NPOINTS points in $((SECONDS - T0)) s"
((NKILLS >= 50)) || fail "at least 50 kill points" "$NKILLS"
ok "$NKILLS kills with SIGKILL, each followed by a run that completed"
done_testing
