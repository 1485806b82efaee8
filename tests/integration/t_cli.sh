#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The command line: help, version, usage errors (exit 2), errinfo, and the codes of the simple
# failures (no policy, unknown content, unknown advert, bad config).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_cli"

write_config

echo "# help, version, usage errors"
assert_exit 0 "$CAS_AGENT" --help
assert_stdout_has "execute"
assert_exit 0 "$CAS_AGENT" --version
assert_eq "cas-agent 0.1.0" "$(cat "$LAST_OUT")" "--version prints the version"
assert_exit 2 agent frobnicate
assert_exit 2 agent
assert_exit 2 agent download
assert_exit 2 agent execute
assert_exit 2 agent policy
assert_exit 2 agent policy apply
assert_exit 2 agent errinfo
assert_exit 2 agent --no-such-option cache list

echo "# errinfo"
assert_exit 0 agent errinfo 0x80091007
assert_stdout_has CRYPT_E_HASH_VALUE
grep -Eqi 'hash' <(sed 's/CRYPT_E_HASH_VALUE//' "$LAST_OUT") ||
    fail "errinfo prints a message besides the name" "stdout: $(cat "$LAST_OUT")"
ok "errinfo prints a message besides the name"
hex_out=$(cat "$LAST_OUT")
dec=$((0x80091007))
assert_eq 2148077575 "$dec" "0x80091007 is 2148077575"
for form in 80091007 "$dec"; do
    assert_exit 0 agent errinfo "$form"
    assert_eq "$hex_out" "$(cat "$LAST_OUT")" "errinfo $form says the same as errinfo 0x80091007"
done
assert_exit 0 agent errinfo 0x80090006
assert_stdout_has NTE_BAD_SIGNATURE
assert_exit 1 agent errinfo 0x12345678

echo "# simple failures"
assert_exit 1 agent policy show
assert_error 0x87D00607
assert_exit 0 agent cache list
assert_eq "" "$(cat "$LAST_OUT")" "cache list on an empty cache prints nothing"
assert_exit 0 agent cache list --json
assert_eq "[]" "$(cat "$LAST_OUT")" "cache list --json on an empty cache"

make_site_key CEN
make_package "$T/src"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN00002.1
dp_start "$T/dp"
write_policy "$T/policy.json" serial=1
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent policy show --json
assert_stdout_has "{\"site\":\"CEN\",\"serial\":1,"
assert_stdout_has "\"advertisements\":[{\"id\":\"CEN20001\",\"content\":\"CEN00002.1\",\"hash\":\"$(upper "$PKG_HASH")\",\"alg\":\"sha256\",\"size\":$PKG_SIZE,\"mandatory\":false,\"context\":\"System\",\"command\":\"install.sh\""
assert_exit 1 agent download CEN00009.1
assert_error 0x87D00607
assert_exit 1 agent execute CEN29999
assert_error 0x80070490
assert_eq 0 "$(proof_runs CEN29999)" "nothing ran"
assert_no_file "$CACHE/CEN00009.1"

echo "# configuration"
write_config --file "$T/bad.json" log_level='"verbose"'
assert_exit 1 "$CAS_AGENT" --config "$T/bad.json" cache list
assert_error 0x8007064A
assert_stderr_has log_level
write_config --file "$T/unknown.json" no_such_key=true
assert_exit 0 "$CAS_AGENT" --config "$T/unknown.json" cache list
echo '{ "cache_dir": ' >"$T/broken.json"
assert_exit 1 "$CAS_AGENT" --config "$T/broken.json" cache list

done_testing
