#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# `policy fetch` against nginx as the management point: the signed policy is fetched and applied;
# the next poll is conditional (If-None-Match) and nginx answers 304 without a body; a new serial
# is applied; a tampered signature, a missing signature and an unreachable MP are refused with
# their codes, and the applied policy stays in force byte for byte.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_policy_fetch"

make_site_key CEN
make_package "$T/src"
mkdir -p "$T/dp" "$T/mp"
dp_publish "$T/src" "$T/dp" CEN00081.1
dp_start "$T/dp"
DP=$DP_URL
publish()
{
    write_policy "$T/mp/policy.json" serial="$1" adverts="$(advert_json id=CEN20081 package=CEN00081 version=1 locations="$DP")"
    sign_policy "$PRIV/CEN.key" "$T/mp/policy.json"
}
publish 1
dp_start "$T/mp"
MP=$DP_URL
MPLOG=$(dp_access_log "$MP")
POLLOG=$LOGS/PolicyAgent.log
write_config management_point="\"$MP/policy.json\""
# status_of PATH -- status and body bytes of nginx's last answer for PATH ("304 0").
status_of() { awk -v p="$DP_PREFIX/$1" '$7 == p { s = $9 " " $10 } END { print s }' "$MPLOG"; }

echo "# the first poll fetches and applies serial 1"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 1, 1 advertisement(s)"
assert_same_file "$T/mp/policy.json" "$STATE/policy/CEN.json"
assert_eq "200" "$(status_of policy.json | cut -d' ' -f1)" "nginx sent the policy"
assert_eq "200" "$(status_of policy.json.sig | cut -d' ' -f1)" "nginx sent the signature"
assert_exit 0 agent execute CEN20081
assert_eq 1 "$(proof_runs CEN20081)" "the fetched policy's program ran"

echo "# the second poll is conditional: 304, no body, nothing applied"
n_sig=$(grep -c "policy.json.sig " "$MPLOG")
assert_exit 0 agent policy fetch
assert_stdout_has "Policy unchanged"
assert_eq "304 0" "$(status_of policy.json)" "nginx answered 304 with no body"
assert_eq "$n_sig" "$(grep -c "policy.json.sig " "$MPLOG")" "the signature was not fetched again"
assert_log_has "$POLLOG" "Policy at $MP/policy.json is not modified; the applied policy stays"

echo "# a new serial is applied"
sleep 1.1 # a new Last-Modified second for nginx's ETag
publish 2
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 2, 1 advertisement(s)"
assert_same_file "$T/mp/policy.json" "$STATE/policy/CEN.json"
cp "$STATE/policy/CEN.json" "$T/applied-2.json"

echo "# a tampered signature at the MP: refused with 0x80090006, serial 2 stays"
sleep 1.1
publish 3
flip_byte "$T/mp/policy.json.sig" 10
assert_exit 1 agent policy fetch
assert_error 0x80090006
assert_same_file "$T/applied-2.json" "$STATE/policy/CEN.json"

echo "# no signature at the MP: refused with 0x800B0100, serial 2 stays"
rm "$T/mp/policy.json.sig"
assert_exit 1 agent policy fetch
assert_error 0x800B0100
assert_same_file "$T/applied-2.json" "$STATE/policy/CEN.json"

echo "# the MP unreachable: the failure is logged, serial 2 stays"
write_config management_point="\"$(dp_url_dead)/policy.json\""
assert_exit 1 agent policy fetch
assert_error 0x80072EFD
assert_same_file "$T/applied-2.json" "$STATE/policy/CEN.json"
line=$(log_find "$POLLOG" "^Policy request to .* failed, error 0x80072EFD: .*; the applied policy stays\$")
[[ -n $line ]] || fail "PolicyAgent.log says the request failed" "$(log_texts "$POLLOG" | tail -3)"
ok "PolicyAgent.log: $line"

echo "# no management point configured: a configuration error"
write_config
assert_exit 1 agent policy fetch
assert_error 0x8007064A

assert_no_file "$STATE/policy/incoming.json"
assert_cmtrace_logs
done_testing
