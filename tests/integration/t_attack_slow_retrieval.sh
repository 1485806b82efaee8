#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: slow retrieval (TUF). The policy is genuine; the distribution point is the attacker's
# (cas-faultd). It drips a file at 100 B/s, or sends a few bytes of the listing and then nothing
# while holding the connection open, to keep the agent from ever getting the update.
# Defence: a transfer slower than low_speed_bytes_per_second for low_speed_seconds is aborted
# (here 1000 B/s for 1 s), retried at most 3 times per location, and the next location is tried.
# Asserts: 0x80072EE2 within a bound computed from the configuration (3 attempts, their backoff and
# a generous margin), the CAS.log / ContentTransferManager.log lines naming the DP, nothing run, no
# entry and nothing of the attacker in the cache, the previous policy (serial 3) in force byte for
# byte; with the good DP as second location the content runs, from the good DP, also in bounded
# time.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_slow_retrieval"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the attacker's server.
CONFIG_DEFAULTS=(cache_dedup=false)
FAULTD=${CAS_FAULTD:-$(dirname "$CAS_AGENT")/tests/cas-faultd}
[[ -x $FAULTD ]] || fail "cas-faultd is built" "not found at $FAULTD (set CAS_FAULTD)"

LOW_BPS=1000
LOW_S=1
write_config low_speed_bytes_per_second=$LOW_BPS low_speed_seconds=$LOW_S connect_timeout_seconds=5
make_site_key CEN
make_package "$T/src"
P=data/payload.bin # 3000 bytes: at 100 B/s, 30 s
mkdir -p "$T/good" "$T/fd"
for c in CEN00002.1 CEN00021.1 CEN00022.1 CEN00023.1 CEN00024.1; do
    dp_publish "$T/src" "$T/good" "$c"
done
H=$PKG_HASH S=$PKG_SIZE
dp_start "$T/good"
GOOD=$DP_URL

# The attacker serves the genuine bytes, only slowly: what it wants is that the update never
# arrives (tampering is refused by hash, see t_attack_arbitrary_package.sh).
cp -R "$T/good" "$T/fd/${DP_PREFIX#/}"
cat >"$T/rules" <<RULES
$DP_PREFIX/CEN00021.1/$P drip 100
$DP_PREFIX/CEN00022.1.sums stall 10
$DP_PREFIX/CEN00023.1/$P drip 100
$DP_PREFIX/CEN00024.1.sums stall 10
RULES
"$FAULTD" --root "$T/fd" --rules "$T/rules" --port-file "$T/faultd.port" --log "$T/faultd.log" \
    >/dev/null 2>"$T/faultd.err" &
FPID=$!
lib_on_exit "kill -TERM $FPID 2>/dev/null; wait $FPID 2>/dev/null"
for ((k = 0; k < 100; k++)); do [[ -s $T/faultd.port ]] && break; sleep 0.1; done
[[ -s $T/faultd.port ]] || fail "cas-faultd started" "$(cat "$T/faultd.err")"
BAD="http://127.0.0.1:$(cat "$T/faultd.port")$DP_PREFIX"
ok "the attacker's DP (cas-faultd) listens at $BAD"

write_policy "$T/policy.json" serial=3 adverts="$(
    advert_json id=CEN20001 package=CEN00002 version=1 hash="$H" size="$S" locations="$GOOD"
    echo ,
    advert_json id=CEN20021 package=CEN00021 version=1 hash="$H" size="$S" locations="$BAD"
    echo ,
    advert_json id=CEN20022 package=CEN00022 version=1 hash="$H" size="$S" locations="$BAD"
    echo ,
    advert_json id=CEN20023 package=CEN00023 version=1 hash="$H" size="$S" locations="$BAD $GOOD"
    echo ,
    advert_json id=CEN20024 package=CEN00024 version=1 hash="$H" size="$S" locations="$BAD $GOOD"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 3 applied, CEN20001 ran from the good DP"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
atk_snapshot 3

# The most a slow location may cost: 3 attempts of at most low_speed_seconds each (curl checks the
# rate once a second, so allow 2 s more per attempt), the backoff between them (at most 0.5 s and
# 1 s), and a generous 5 s for a loaded machine.
MAX_S=$((3 * (LOW_S + 2) + 2 + 5))

# timed CMD... -- run CMD like assert_exit would, and set ELAPSED (seconds, decimal). The agent
# runs under timeout(1), so an agent that never gives up fails the test instead of hanging it.
timed()
{
    local t0 t1
    t0=$(date +%s.%N)
    run "$@"
    t1=$(date +%s.%N)
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

within()
{
    awk -v e="$ELAPSED" -v lo="$1" -v hi="$2" 'BEGIN { exit !(e >= lo && e <= hi) }' ||
        fail "$3 took between $1 and $2 s" "elapsed $ELAPSED s"
    ok "$3 took $ELAPSED s (bound $1..$2 s)"
}

# atk_partial_genuine -- whatever a timed-out job keeps in staging for resume is genuine: files
# placed in the staging content folder equal the source, part files are prefixes of a source file.
atk_partial_genuine()
{
    local f rel n=0 g size good
    while IFS= read -r -d '' f; do
        rel=${f#"$CACHE/.partial/"}
        case $rel in
        *.json | *.lock) continue ;;
        CEN000??.1/CEN000??.1/*)
            n=$((n + 1))
            cmp -s "$f" "$T/src/${rel#*/*/}" ||
                fail "a file kept in staging is the genuine one" "$(_lib_show "$f")"
            ;;
        *)
            n=$((n + 1))
            size=$(stat -c %s "$f")
            good=0
            while IFS= read -r -d '' g; do
                if [[ $size -le $(stat -c %s "$g") ]] && cmp -s -n "$size" "$f" "$g"; then
                    good=1
                fi
            done < <(find "$T/src" -type f -print0)
            [[ $good -eq 1 ]] || fail "a part file kept in staging is a prefix of a genuine file" \
                "$(_lib_show "$f"): $size bytes"
            ;;
        esac
    done < <(find "$CACHE/.partial" -type f -print0 2>/dev/null)
    ok "the $n file(s) kept in staging for resume hold only genuine bytes"
}

# slow_refused N WHAT FILE -- advert CEN200N, the slow DP alone: 0x80072EE2 in bounded time.
slow_refused()
{
    local n=$1 what=$2 file=$3 c="CEN000$1.1" lines
    echo "# $what"
    timed timeout -k 5 $((MAX_S + 30)) "$CAS_AGENT" --config "$CFG" execute "CEN200$n"
    assert_eq 1 "$LAST_RC" "exit 1: cas-agent execute CEN200$n"
    assert_error 0x80072EE2
    # Three attempts, each given at least low_speed_seconds.
    within $((3 * LOW_S)) "$MAX_S" "the refusal"
    atk_nothing_ran "CEN200$n"
    assert_log_has "$LOGS/CAS.log" "Download failed for content $c under context System, error 0x80072EE2"
    assert_not_available "$c" "CEN200$n" 0x80072EE2
    lines=$(grep -cF "<![LOG[Location $BAD failed for $file of content $c: error 0x80072EE2 (" \
        "$LOGS/ContentTransferManager.log" || true)
    assert_eq 3 "$lines" "ContentTransferManager.log names the slow DP and the timeout for each of 3 attempts"
    assert_no_file "$CACHE/$c"
    assert_no_file "$CACHE/$c.sums"
    atk_partial_genuine
}

slow_refused 21 "a file dripped at 100 B/s" "$P"
slow_refused 22 "a listing stalled after 10 bytes" "the sums listing"
assert_eq "" "$(grep -F "CEN00022.1/" "$T/faultd.log" || true)" "no file of CEN00022.1 was requested"

echo "# after the attacks"
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"

# good_second N WHAT -- advert CEN200N, the slow DP then the good one: the content runs.
good_second()
{
    local n=$1 what=$2 c="CEN000$1.1"
    echo "# not over-refused: $what, then the good DP"
    timed timeout -k 5 $((MAX_S + 30)) "$CAS_AGENT" --config "$CFG" execute "CEN200$n"
    assert_eq 0 "$LAST_RC" "exit 0: cas-agent execute CEN200$n"
    within 0 "$MAX_S" "the download"
    assert_eq 1 "$(proof_runs "CEN200$n")" "the program ran"
    assert_download_succeeded "$c"
    assert_same_tree "$T/src" "$CACHE/$c"
}
good_second 23 "a file dripped at 100 B/s"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $GOOD chosen for file $P of content CEN00023.1"
good_second 24 "a listing stalled after 10 bytes"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $GOOD chosen for the sums listing of content CEN00024.1"
assert_no_file "$CACHE/.partial/CEN00023.1"
assert_no_file "$CACHE/.partial/CEN00024.1"

assert_cmtrace_logs
done_testing
