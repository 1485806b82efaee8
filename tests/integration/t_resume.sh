#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# An interrupted download continues where it stopped. The agent is slowed with max_download_kbps
# (which this also checks: the rate stays within 10% of the cap), killed with SIGKILL in the
# middle of a 4 MiB file, and run again: nginx's access log must show a 206 carrying only the
# bytes that were missing. SIGINT and SIGTERM end a job cleanly with 0x800704C7 and keep the same
# state.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the server this test is about.
CONFIG_DEFAULTS=(cache_dedup=false)
echo "# t_resume"

make_site_key CEN
make_package "$T/src"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T/src/data/big.bin"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN00021.1
dp_publish "$T/src" "$T/dp" CEN00022.1
dp_publish "$T/src" "$T/dp" CEN00023.1
H=$PKG_HASH
dp_start "$T/dp"
write_policy "$T/policy.json" serial=1 adverts="$(
    advert_json id=CEN20021 package=CEN00021 version=1 hash="$H"
    echo ,
    advert_json id=CEN20022 package=CEN00022 version=1 hash="$H"
    echo ,
    advert_json id=CEN20023 package=CEN00023 version=1 hash="$H"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
BIG=$((4 * 1024 * 1024))
URL_PATH="$DP_PREFIX/CEN00021.1/data/big.bin"

# bytes_sent PATH STATUS -- body bytes nginx sent for requests of PATH with that status, one per line
bytes_sent()
{
    awk -v p="$1" -v s="$2" '$7 == p && $9 == s { print $10 }' "$(dp_access_log "$DP_URL")"
}

echo "# throttled download killed with SIGKILL after about 6 s"
# 2000 kbit/s = 250000 B/s: the 4 MiB file takes about 17 s.
write_config max_download_kbps=2000 max_parallel_transfers=1
assert_exit 0 agent policy apply "$T/policy.json"
"$CAS_AGENT" --config "$CFG" download CEN00021.1 >"$T/kill.out" 2>&1 &
pid=$!
sleep 6
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
part=$(find "$CACHE/.partial/CEN00021.1/parts" -name '*.part' -size +1M 2>/dev/null | head -1)
[[ -n $part ]] || fail "a partial file over 1 MiB was kept" "$(find "$CACHE" | head -20)"
kept=$(stat -c %s "$part")
ok "a partial file was kept ($kept bytes)"
# The rate while it ran: kept bytes over about 6 s must be near 250000 B/s.
rate=$((kept / 6))
((rate > 200000 && rate < 275000)) ||
    fail "throttled rate within 10% of 250000 B/s (allowing for start-up)" "measured $rate B/s"
ok "throttled rate near the cap ($rate B/s)"
assert_no_file "$CACHE/CEN00021.1"
assert_no_file "$CACHE/CEN00021.1.sums"

echo "# run again, unthrottled: only the rest is transferred"
write_config
assert_exit 0 agent download CEN00021.1
assert_download_succeeded CEN00021.1
assert_same_tree "$T/src" "$CACHE/CEN00021.1"
sent=$(bytes_sent "$URL_PATH" 206 | tail -1)
[[ -n $sent ]] || fail "the second run resumed with a 206" "$(cat "$(dp_access_log "$DP_URL")")"
assert_eq "$((BIG - kept))" "$sent" "the second run transferred exactly the missing bytes"
assert_log_has "$LOGS/DataTransferService.log" "Resuming $DP_URL/CEN00021.1/data/big.bin at byte $kept"
assert_no_partial

for sig in INT TERM; do
    if [[ $sig == INT ]]; then C=CEN00022.1; else C=CEN00023.1; fi
    echo "# SIG$sig: a clean stop with 0x800704C7, then resume"
    write_config max_download_kbps=2000 max_parallel_transfers=1
    "$CAS_AGENT" --config "$CFG" download "$C" >"$T/int.out" 2>"$T/int.err" &
    pid=$!
    sleep 3
    kill -"$sig" "$pid"
    rc=0
    wait "$pid" || rc=$?
    assert_eq 1 "$rc" "SIG$sig: exit status 1"
    grep -q '^cas-agent: error 0x800704C7: ' "$T/int.err" ||
        fail "SIG$sig: stderr names 0x800704C7" "$(cat "$T/int.err")"
    ok "SIG$sig: stderr names 0x800704C7"
    assert_no_file "$CACHE/$C"
    assert_no_file "$CACHE/$C.sums"
    kept2=$(stat -c %s "$CACHE/.partial/$C"/parts/*.part 2>/dev/null | sort -n | tail -1)
    ((kept2 > 0)) || fail "SIG$sig kept the partial file" "$(find "$CACHE/.partial")"
    ok "SIG$sig kept the partial file ($kept2 bytes)"
    write_config
    assert_exit 0 agent download "$C"
    assert_download_succeeded "$C"
    sent=$(bytes_sent "$DP_PREFIX/$C/data/big.bin" 206 | tail -1)
    assert_eq "$((BIG - kept2))" "$sent" "after SIG$sig the rerun transferred exactly the missing bytes"
    assert_no_partial
done

assert_cmtrace_logs
done_testing
