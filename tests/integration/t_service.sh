#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# `run --once` against nginx as management point and distribution point: a due mandatory
# advertisement runs, a future one has its content downloaded ahead and runs on the first pass
# after its start, an available one runs only on `execute`; rerun never / if_failed / always on a
# serial bump with changed advertisements; a removed advertisement is never started again;
# rollback, expired and unsigned policies refused with the applied one still in force, unsigned
# accepted with a warning in compatibility mode; exit codes: 3010 as success with a restart,
# retryable 1618 retried after retry_interval_minutes up to retry_count times; status and
# policy show report each advertisement's state and the polls.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_service"

make_site_key CEN
mkdir -p "$T/dp" "$T/mp"
for n in 1 2 3 4 5; do
    make_package "$T/src$n" "package $n"
    dp_publish "$T/src$n" "$T/dp" "CEN0009$n.1"
    declare "HASH$n=$PKG_HASH" "SIZE$n=$PKG_SIZE"
done
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
MPLOG=$(dp_access_log "$MP")
EXLOG=$LOGS/execmgr.log
POLLOG=$LOGS/PolicyAgent.log
write_config management_point="\"$MP/policy.json\"" retry_interval_minutes=0.05 retry_count=2

# ad N ID key=value... -- advertisement ID of package N (CEN0009N.1).
ad()
{
    local n=$1 id=$2 h s
    shift 2
    h=HASH$n
    s=SIZE$n
    advert_json id="$id" package="CEN0009$n" version=1 hash="${!h}" size="${!s}" locations="$DP" "$@"
}
# publish SERIAL ADVERTS [write_policy keys...] -- the MP's policy, signed with the site key.
publish()
{
    local serial=$1 adverts=$2
    shift 2
    write_policy "$T/mp/policy.json" serial="$serial" adverts="$adverts" "$@"
    sign_policy "$PRIV/CEN.key" "$T/mp/policy.json"
}
# assert_log_re FILE ERE -- a record matches the extended regular expression.
assert_log_re()
{
    [[ -n $(log_find "$1" "$2") ]] || fail "$(basename "$1") matches: $2" "$(log_texts "$1" | tail -5)"
    ok "$(basename "$1") matches: $2"
}
# state_of ID -- the advertisement's state in `status --json`.
state_of()
{
    agent status --json | jq -r --arg id "$1" '.adverts[] | select(.id == $id) | .state'
}

START_FUTURE=$(utc_time '+6 sec')
ADS="$(ad 1 CEN20091 mandatory=true rerun=never),
$(ad 2 CEN20092 mandatory=true rerun=always start="$START_FUTURE"),
$(ad 3 CEN20093 mandatory=false rerun=if_failed)"
publish 1 "$ADS"

echo "# before any pass: nothing ran, states WaitingContent"
assert_exit 0 agent policy fetch
assert_eq WaitingContent "$(state_of CEN20091)" "a due advertisement waits for content"

echo "# run --once: the due mandatory one runs; the future one is downloaded ahead; the available one waits"
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20091)" "the due mandatory program ran once"
assert_eq 0 "$(proof_runs CEN20092)" "the future mandatory program did not run"
assert_eq 0 "$(proof_runs CEN20093)" "the available program did not run"
assert_file "$CACHE/CEN00092.1.sums"
assert_log_has "$EXLOG" "Content CEN00092.1 for mandatory advert CEN20092 is downloaded ahead of its start at $START_FUTURE"
assert_no_file "$CACHE/CEN00093.1.sums"
assert_eq Succeeded "$(state_of CEN20091)" "status: CEN20091 Succeeded"
assert_eq Ready "$(state_of CEN20092)" "status: CEN20092 Ready (content ahead of start)"
assert_eq WaitingContent "$(state_of CEN20093)" "status: CEN20093 WaitingContent"

echo "# a second pass before the start runs nothing and downloads nothing again"
n_files=$(dp_requests "$DP" | wc -l)
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20091)" "rerun never: not again"
assert_eq 0 "$(proof_runs CEN20092)" "still before its start"
assert_eq "$n_files" "$(dp_requests "$DP" | wc -l)" "no request to the DP"

echo "# after the start passes, the next pass runs the second one (from the content fetched ahead)"
while [[ $(date -u +%s) -le $(date -u -d "$START_FUTURE" +%s) ]]; do sleep 0.5; done
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20092)" "the mandatory program ran once its start passed"
assert_eq 1 "$(proof_runs CEN20091)" "the first one did not run again"
assert_eq "$n_files" "$(dp_requests "$DP" | wc -l)" "it ran from the content downloaded ahead"
assert_log_has "$EXLOG" "Mandatory advert CEN20092 is due (start $START_FUTURE, rerun always)"

echo "# execute runs the available one"
assert_exit 0 agent execute CEN20093
assert_eq 1 "$(proof_runs CEN20093)" "the available program ran on request"
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20093)" "the service does not run an available advertisement"

echo "# policy show: states, starts, rerun"
assert_exit 0 agent policy show
assert_stdout_has "CEN20091  CEN00091.1  mandatory from"
assert_stdout_has "rerun never  Succeeded (exit 0)"
assert_exit 0 agent policy show --json
assert_eq "Succeeded 1 0" "$(jq -r '.advertisements[] | select(.id == "CEN20092") | "\(.state) \(.runs) \(.last_exit_code)"' "$LAST_OUT")" "policy show --json: state, runs, exit code"

echo "# serial 2 changes all three (new arguments): always reruns, never does not, if_failed after a success does not"
sleep 1.1
ADS="$(ad 1 CEN20091 mandatory=true rerun=never args="\"$PROOF\", \"CEN20091\", \"0\""),
$(ad 2 CEN20092 mandatory=true rerun=always start="$START_FUTURE" args="\"$PROOF\", \"CEN20092\", \"0\""),
$(ad 3 CEN20093 mandatory=true rerun=if_failed args="\"$PROOF\", \"CEN20093\", \"0\"")"
publish 2 "$ADS"
assert_exit 0 agent run --once
assert_log_re "$POLLOG" "^Applied policy for site CEN, serial 2 \\(previous 1\\), 3 advertisement"
assert_eq 1 "$(proof_runs CEN20091)" "never: the changed advertisement does not run again"
assert_eq 2 "$(proof_runs CEN20092)" "always: the changed advertisement runs again"
assert_eq 1 "$(proof_runs CEN20093)" "if_failed: a success is not run again"
echo "# the same policy polled again: nothing runs"
assert_exit 0 agent run --once
assert_eq 2 "$(proof_runs CEN20092)" "always: an unchanged advertisement does not run again"
assert_eq 304 "$(awk -v p="$DP_PREFIX/policy.json" '$7 == p { s = $9 } END { print s }' "$MPLOG")" "the poll was answered 304"

echo "# if_failed: a failed run reruns when policy changes it"
sleep 1.1
ADS="$(ad 4 CEN20094 mandatory=true rerun=if_failed args="\"$PROOF\", \"CEN20094\", \"7\"")"
publish 3 "$ADS"
assert_exit 1 agent run --once
assert_error 0xA0CA0101
assert_eq 1 "$(proof_runs CEN20094)" "the failing program ran"
assert_eq Failed "$(state_of CEN20094)" "status: Failed"
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20094)" "if_failed: an unchanged failed advertisement does not run each pass"
assert_exit 1 agent execute CEN20091
assert_error 0x80070490
ok "a removed advertisement cannot be executed"
sleep 1.1
publish 4 "$(ad 4 CEN20094 mandatory=true rerun=if_failed args="\"$PROOF\", \"CEN20094\", \"0\"")"
assert_exit 0 agent run --once
assert_eq 2 "$(proof_runs CEN20094)" "if_failed: the changed advertisement ran again"
assert_eq Succeeded "$(state_of CEN20094)" "status: Succeeded"
assert_eq 2 "$(proof_runs CEN20092)" "CEN20092, removed from policy, was never started again"

echo "# exit 3010 (194 as an 8-bit status): success with a restart required"
sleep 1.1
publish 5 "$(ad 5 CEN20095 mandatory=true rerun=never args="\"$PROOF\", \"CEN20095\", \"3010\"")"
assert_exit 0 agent run --once
assert_log_has "$EXLOG" "Execution is complete for program install.sh. The exit code is 194 (3010 as a Windows exit code), the execution status is SuccessRebootRequired"
assert_eq "Succeeded true" "$(agent status --json | jq -r '.adverts[] | select(.id == "CEN20095") | "\(.state) \(.restart_required)"')" "status: Succeeded, restart required"

echo "# exit 1618 (82): retried after retry_interval_minutes, at most retry_count times"
sleep 1.1
publish 6 "$(ad 5 CEN20096 mandatory=true rerun=if_failed args="\"$PROOF\", \"CEN20096\", \"1618\"")"
assert_exit 1 agent run --once
assert_error 0xA0CA0103
assert_eq 1 "$(proof_runs CEN20096)" "the first run"
assert_eq Retrying "$(state_of CEN20096)" "status: Retrying"
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20096)" "not before its retry time"
sleep 3.5
assert_exit 1 agent run --once
assert_eq 2 "$(proof_runs CEN20096)" "retry 1"
sleep 3.5
assert_exit 1 agent run --once
assert_eq 3 "$(proof_runs CEN20096)" "retry 2"
assert_error 0xA0CA0101
assert_log_has "$EXLOG" "Advert CEN20096 is retried (retry 2 of 2)"
assert_log_re "$EXLOG" "^Program install.sh of advert CEN20096 exited with retryable code 82 \\(1618 as a Windows exit code\\); all 2 retries are used\$"
sleep 3.5
assert_exit 0 agent run --once
assert_eq 3 "$(proof_runs CEN20096)" "no third retry"
assert_eq Failed "$(state_of CEN20096)" "status: Failed"

echo "# rollback and expired policies at the MP: refused, serial 6 stays in force"
cp "$STATE/policy/CEN.json" "$T/applied-6.json"
sleep 1.1
publish 5 "$(ad 1 CEN20099 mandatory=true)"
assert_exit 1 agent run --once
assert_error 0xA0CA0001
assert_same_file "$T/applied-6.json" "$STATE/policy/CEN.json"
assert_eq 0 "$(proof_runs CEN20099)" "nothing of the rolled-back policy ran"
sleep 1.1
publish 7 "$(ad 1 CEN20099 mandatory=true)" issued="$(utc_time '-2 day')" expires="$(utc_time '-1 day')"
assert_exit 1 agent run --once
assert_error 0x800B0101
assert_same_file "$T/applied-6.json" "$STATE/policy/CEN.json"
assert_eq 0 "$(proof_runs CEN20099)" "nothing of the expired policy ran"
assert_exit 0 agent status --json
assert_eq 0x800B0101 "$(jq -r .service.last_poll_result "$LAST_OUT")" "status: the last poll's error"
[[ $(jq -r .service.last_poll "$LAST_OUT") != null ]] || fail "status: the last poll's time"
ok "status: the last poll's time"

echo "# unsigned policy: refused; accepted with a warning in compatibility mode, every time"
sleep 1.1
publish 8 "$(ad 1 CEN20099 mandatory=true)"
rm "$T/mp/policy.json.sig"
assert_exit 1 agent run --once
assert_error 0x800B0100
assert_eq 0 "$(proof_runs CEN20099)" "the unsigned policy's program did not run"
write_config management_point="\"$MP/policy.json\"" require_signed_policy=false
assert_exit 0 agent run --once
assert_eq 1 "$(proof_runs CEN20099)" "accepted in compatibility mode, its program ran"
unsigned_line() { log_texts "$POLLOG" | grep -c "^Accepting UNSIGNED policy .* for site CEN because require_signed_policy is false\$" || true; }
assert_eq 1 "$(unsigned_line)" "PolicyAgent.log warns of the unsigned policy"
grep -F '<![LOG[Accepting UNSIGNED policy' "$POLLOG" | grep 'type="2"' >/dev/null || fail "the unsigned warning is type 2"
ok "the unsigned warning is type 2"
sleep 1.1
publish 9 "$(ad 1 CEN20099 mandatory=true)"
rm "$T/mp/policy.json.sig"
assert_exit 0 agent run --once
assert_eq 2 "$(unsigned_line)" "the warning is logged for every unsigned policy"
echo "# a signed policy is still verified in compatibility mode"
sleep 1.1
publish 10 "$(ad 1 CEN20099 mandatory=true)"
flip_byte "$T/mp/policy.json.sig" 5
assert_exit 1 agent run --once
assert_error 0x80090006

assert_cmtrace_logs
done_testing
