#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The program's exit code decides the execution status: one of the advert's success codes gives
# Success, anything else FailureNonRetry and error 0xA0CA0101. (SuccessRebootRequired for
# 3010 — exit status 194 — and the retryable 1618 are in t_service.)
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_program_exit"

write_config
make_site_key CEN
make_package "$T/src"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN00002.1
dp_start "$T/dp"

# install.sh PROOF TAG EXIT: the same content, four adverts with different exit codes and
# success codes.
ad()
{
    advert_json id="$1" package=CEN00002 version=1 args="\"$PROOF\", \"$1\", \"$2\"" \
        success_codes="${3:-0, 3010}"
}
write_policy "$T/policy.json" serial=1 adverts="$(
    ad EXIT0 0
    echo ,
    ad EXIT1 1
    echo ,
    ad EXIT7 7 "0, 7"
    echo ,
    ad EXIT3 3 "0, 7"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

done_line() { echo "Execution is complete for program install.sh. The exit code is $1, the execution status is $2"; }

assert_exit 0 agent execute EXIT0
assert_log_has "$LOGS/execmgr.log" "$(done_line 0 Success)"

assert_exit 1 agent execute EXIT1
assert_error 0xA0CA0101
assert_eq 1 "$(proof_runs EXIT1)" "the failing program ran"
assert_log_has "$LOGS/execmgr.log" "$(done_line 1 FailureNonRetry)"

assert_exit 0 agent execute EXIT7
assert_eq 1 "$(proof_runs EXIT7)" "the program ran"
assert_log_has "$LOGS/execmgr.log" "$(done_line 7 Success)"

assert_exit 1 agent execute EXIT3
assert_error 0xA0CA0101
assert_log_has "$LOGS/execmgr.log" "$(done_line 3 FailureNonRetry)"

assert_eq 1 "$(log_count "$LOGS/CAS.log" "Download started for content CEN00002.1")" \
    "the content was downloaded once for all four adverts"
assert_cmtrace_logs
done_testing
