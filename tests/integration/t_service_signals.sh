#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# `run` as a long-running service against nginx (MP and DP): it wakes for an advertisement's
# start, polls with ETag (later polls transfer no policy body), is the only instance for its
# state folder, reloads its configuration on SIGHUP and logs what changed, and stops on SIGTERM
# within seconds — also during a download (the next `run --once` finishes the job from what was
# kept) and while a program runs (its process group is ended). A SIGKILLed agent while a `never`
# program runs: the next pass records the run as interrupted and does not run it again.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_service_signals"

make_site_key CEN
mkdir -p "$T/dp" "$T/mp" "$T/slow"
make_package "$T/src1" "package 1"
dp_publish "$T/src1" "$T/dp" CEN00071.1
H1=$PKG_HASH S1=$PKG_SIZE
# A program that records its start, then runs until it is stopped.
cat >"$T/slow/slow.sh" <<'EOF'
#!/bin/sh
echo "$$" >>"$1/started-$2"
sleep 120
echo done >>"$1/finished-$2"
EOF
dp_publish "$T/slow" "$T/dp" CEN00072.1
H2=$PKG_HASH S2=$PKG_SIZE
# A big package for a slow (throttled) download.
mkdir -p "$T/big"
cp "$T/src1/install.sh" "$T/big/"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/big/big.bin"
dp_publish "$T/big" "$T/dp" CEN00073.1
H3=$PKG_HASH S3=$PKG_SIZE
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
MPLOG=$(dp_access_log "$MP")
EXLOG=$LOGS/execmgr.log
write_config management_point="\"$MP/policy.json\"" policy_poll_minutes=0.05

publish()
{
    write_policy "$T/mp/policy.json" serial="$1" adverts="$2"
    sign_policy "$PRIV/CEN.key" "$T/mp/policy.json"
}
# wait_for SECONDS CMD... -- poll until CMD succeeds; fail after SECONDS.
wait_for()
{
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
# stop_within SECONDS PID -- SIGTERM, then the process must be gone within SECONDS; prints its
# exit status.
stop_within()
{
    local limit=$1 pid=$2 t0 rc=0
    t0=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    awk -v a="$t0" -v b="$(date +%s.%N)" -v l="$limit" 'BEGIN { exit !(b - a < l) }' ||
        fail "stopped within $limit s" "took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }') s"
    ok "pid $pid stopped within $limit s after SIGTERM"
    STOP_RC=$rc
}
started_count() { if [[ -f $PROOF/started-$1 ]]; then wc -l <"$PROOF/started-$1"; else echo 0; fi; }
policy_gets() { awk -v p="$DP_PREFIX/policy.json" '$7 == p' "$MPLOG" | wc -l; }

echo "# the service wakes for a start that arrives while it sleeps"
START=$(utc_time '+4 sec')
publish 1 "$(advert_json id=CEN20071 package=CEN00071 hash="$H1" size="$S1" locations="$DP" mandatory=true rerun=never start="$START")"
"$CAS_AGENT" --config "$CFG" run >"$T/svc.out" 2>"$T/svc.err" &
SVC=$!
lib_on_exit "kill -9 $SVC 2>/dev/null"
wait_for 20 test -f "$PROOF/ran-CEN20071" || fail "the mandatory program ran after its start" "$(tail -5 "$EXLOG")"
ok "the mandatory program ran after its start"
(($(date -u +%s) >= $(date -u -d "$START" +%s))) || fail "not before its start"
ok "not before its start ($START)"

echo "# a second instance on the same state folder is refused"
assert_exit 1 agent run --once
assert_error 0x80070420
assert_stderr_has "another cas-agent run (pid $SVC) is using state folder $STATE"

echo "# ETag polling: later polls are 304 with no body"
polled_3() { [[ $(policy_gets) -ge 3 ]]; }
wait_for 20 polled_3 || fail "the service polled three times" "$(policy_gets) polls"
ok "the service polled at least three times ($(policy_gets))"
last=$(awk -v p="$DP_PREFIX/policy.json" '$7 == p { s = $9 " " $10 } END { print s }' "$MPLOG")
assert_eq "304 0" "$last" "the last poll was answered 304 with no body"
assert_eq 1 "$(awk -v p="$DP_PREFIX/policy.json.sig" '$7 == p' "$MPLOG" | wc -l)" "the signature was fetched once"
assert_exit 0 agent status --json
assert_eq "true $SVC" "$(jq -r '"\(.service.running) \(.service.pid)"' "$LAST_OUT")" "status: the service runs"
[[ $(jq -r .service.next_poll "$LAST_OUT") != null && $(jq -r .service.last_poll_result "$LAST_OUT") == 0x00000000 ]] ||
    fail "status: next poll and the last poll's result" "$(cat "$LAST_OUT")"
ok "status: next poll and the last poll's result"

echo "# SIGHUP reloads the configuration and logs what changed; a bad file is not taken"
write_config management_point="\"$MP/policy.json\"" policy_poll_minutes=0.1
kill -HUP "$SVC"
wait_for 10 grep -F "Configuration reloaded: policy_poll_minutes changed from 0.05 to 0.1" "$EXLOG" >/dev/null ||
    fail "execmgr.log: policy_poll_minutes changed" "$(tail -3 "$EXLOG")"
ok "execmgr.log: Configuration reloaded: policy_poll_minutes changed from 0.05 to 0.1"
echo '{ "policy_poll_minutes": "often" }' >"$CFG"
kill -HUP "$SVC"
wait_for 10 grep -F "was not reloaded" "$EXLOG" >/dev/null || fail "a bad configuration is not taken" "$(tail -3 "$EXLOG")"
ok "a bad configuration is refused and the running one stays"
kill -0 "$SVC" || fail "the service still runs"
ok "the service still runs"
write_config management_point="\"$MP/policy.json\"" policy_poll_minutes=0.1

echo "# SIGTERM while a program runs: its process group is ended, the service stops within seconds"
sleep 1.1
publish 2 "$(advert_json id=CEN20072 package=CEN00072 hash="$H2" size="$S2" locations="$DP" mandatory=true rerun=if_failed command=slow.sh)"
wait_for 30 test -f "$PROOF/started-CEN20072" || fail "the slow program started" "$(tail -5 "$EXLOG")"
ok "the slow program started"
prog=$(head -1 "$PROOF/started-CEN20072")
echo "# execute of the advertisement the service is running: refused, not started twice"
assert_exit 1 agent execute CEN20072
assert_error 0x80070420
assert_eq 1 "$(started_count CEN20072)" "started once"
stop_within 8 "$SVC"
assert_eq 0 "$STOP_RC" "the service exits 0 on SIGTERM"
kill -0 "$prog" 2>/dev/null && fail "the program was ended with the service"
ok "the program was ended with the service"
assert_no_file "$PROOF/finished-CEN20072"
assert_log_has "$EXLOG" "cas-agent service stopping (signal 15): state saved"
assert_eq "Failed 0x800704C7" "$(agent status --json | jq -r '.adverts[] | select(.id == "CEN20072") | "\(.state) \(.last_error)"')" "status: the stopped run failed as cancelled"

echo "# SIGKILL while a never program runs: recorded as interrupted, never run again"
sleep 1.1
publish 3 "$(advert_json id=CEN20073 package=CEN00072 hash="$H2" size="$S2" locations="$DP" mandatory=true rerun=never command=slow.sh)"
"$CAS_AGENT" --config "$CFG" run --once >/dev/null 2>&1 &
ONCE=$!
wait_for 30 test -f "$PROOF/started-CEN20073" || fail "the never program started"
prog=$(head -1 "$PROOF/started-CEN20073")
kill -9 "$ONCE"
wait "$ONCE" || true
kill -9 -- "-$prog" 2>/dev/null || kill -9 "$prog" 2>/dev/null || true
ok "the agent was killed while its program ran"
assert_exit 0 agent run --once
assert_eq 1 "$(started_count CEN20073)" "the never program did not run a second time"
assert_log_has "$EXLOG" "Advert CEN20073 was running when its agent (pid $ONCE) ended; the program's result is unknown and it is recorded as interrupted, error 0xA0CA0104"
assert_eq "Failed 0xA0CA0104" "$(agent status --json | jq -r '.adverts[] | select(.id == "CEN20073") | "\(.state) \(.last_error)"')" "status: interrupted"
assert_exit 0 agent run --once
assert_eq 1 "$(started_count CEN20073)" "still once after another pass"

echo "# SIGTERM during a download: stopped within 5 s, partial content kept, the next run --once finishes"
sleep 1.1
publish 4 "$(advert_json id=CEN20074 package=CEN00073 hash="$H3" size="$S3" locations="$DP" mandatory=true rerun=never)"
write_config management_point="\"$MP/policy.json\"" policy_poll_minutes=0.1 max_download_kbps=256
"$CAS_AGENT" --config "$CFG" run >/dev/null 2>&1 &
SVC=$!
wait_for 30 grep -F "DTS job" "$LOGS/DataTransferService.log" >/dev/null || fail "the download started"
sleep 2
stop_within 5 "$SVC"
assert_eq 0 "$(proof_runs CEN20074)" "the program did not run"
assert_no_file "$CACHE/CEN00073.1.sums"
kept=$(find "$CACHE/.partial" -type f -name '*.part' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
((kept > 0)) || fail "partial content kept for resume" "nothing under $CACHE/.partial"
ok "partial content kept for resume ($kept bytes)"
write_config management_point="\"$MP/policy.json\"" policy_poll_minutes=0.1
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20074)" "the next run --once finished the job and ran the program"
assert_file "$CACHE/CEN00073.1.sums"
ranges=$(dp_requests "$DP" | grep -c "CEN00073.1/big.bin" || true)
((ranges >= 2)) || fail "the file was requested again to resume" "$ranges requests"
ok "the big file was resumed ($ranges requests)"

assert_cmtrace_logs
done_testing
