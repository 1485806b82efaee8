#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: indefinite freeze. The attacker controls the path to the management point and keeps the
# agent on stale policy so it never learns of the site's updates (a withdrawn advertisement stays,
# a fix never arrives): (a) it serves a policy the site really signed long ago, with a serial the
# agent has not seen yet but expired since; (b) it keeps answering with the applied policy (304
# forever) while that policy runs past its expiry.
# Defence: every policy carries `expires`; an expired policy is refused on arrival (0x800B0101),
# and an applied policy that has expired is no longer used: the service runs none of its
# advertisements (a type-2 warning each pass) and `execute` refuses them, until a newer policy
# is applied.
# Asserts for (a), by `policy fetch`, `run --once` and `policy apply`: exit 1 with 0x800B0101 and
# the expiry time; the attacker's mandatory program never runs and its content is never asked
# for; nothing from the attacker in the cache or state folder, cache listing unchanged; the
# applied policy byte for byte, `policy show` on serial 5; PolicyAgent.log's type-3 refusal. For
# (b): the expired policy's due mandatory program does not run and its content is not fetched,
# `execute` refuses with 0x800B0101, execmgr.log has the warning each pass, the stored policy is
# unchanged. Then the site's serial 8 arrives and the program runs (no over-refusal).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_indefinite_freeze"

MARK="attacker-marker-freeze-$RANDOM$RANDOM"
make_site_key CEN
make_package "$T/good" "the site's current package"
make_package "$T/fix" "the site's fix"
make_package "$T/evil" "$MARK"
mkdir -p "$T/dp" "$T/mp"
dp_publish "$T/good" "$T/dp" CEN000A1.1
GOOD_HASH=$PKG_HASH GOOD_SIZE=$PKG_SIZE
dp_publish "$T/fix" "$T/dp" CEN000A2.1
FIX_HASH=$PKG_HASH FIX_SIZE=$PKG_SIZE
dp_publish "$T/evil" "$T/dp" CEN000E6.1
EVIL_HASH=$PKG_HASH EVIL_SIZE=$PKG_SIZE
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
MPLOG=$(dp_access_log "$MP")
POLLOG=$LOGS/PolicyAgent.log
EXLOG=$LOGS/execmgr.log
INCOMING=$STATE/policy/incoming.json
write_config management_point="\"$MP/policy.json\"" site='"CEN"'

fix_ad() { advert_json id=CEN2A002 package=CEN000A2 hash="$FIX_HASH" size="$FIX_SIZE" locations="$DP" mandatory=true; }
evil_ad() { advert_json id=CEN2E666 package=CEN000E6 hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }
# publish SERIAL [write_policy keys...] -- the MP's policy, signed with the site's real key, with
# a new ETag.
publish()
{
    local s=$1
    shift
    write_policy "$T/mp/policy.json" serial="$s" "$@"
    sign_policy "$PRIV/CEN.key" "$T/mp/policy.json"
    fresh_etag "$T/mp/policy.json"
}

# snapshot SERIAL -- record the applied policy (serial SERIAL) and the cache listing.
snapshot()
{
    PREV=$1
    rm -rf "$T/before"
    mkdir -p "$T/before"
    cp "$STATE/policy/CEN.json" "$STATE/policy/CEN.json.sig" "$STATE/policy/CEN.state.json" "$T/before/"
    agent cache list --json >"$T/before/cache.json"
    GOOD_RUNS=$(proof_runs CEN2A001)
}

# untouched WHAT ADVERT CONTENT -- checks 1-3: ADVERT (whose content is CONTENT) did not run and
# its content was neither fetched nor cached; the applied policy is unchanged.
untouched()
{
    local what=$1 ad=$2 c=$3 f hits
    assert_eq 0 "$(proof_runs "$ad")" "$ad's program did not run ($what)"
    assert_eq "$GOOD_RUNS" "$(proof_runs CEN2A001)" "the applied policy's program did not run again ($what)"
    assert_not_cached "$c"
    assert_eq "" "$(dp_requests "$DP" | grep -F "${c%.*}" || true)" "the DP was never asked for $c ($what)"
    hits=$(grep -rlF -- "$MARK" "$CACHE" "$STATE" 2>/dev/null || true)
    [[ -z $hits ]] || fail "no attacker bytes in the cache or state folder ($what)" "found in: $(_lib_show "$hits")"
    ok "no attacker bytes in the cache or state folder ($what)"
    agent cache list --json >"$T/after-cache.json"
    assert_same_file "$T/before/cache.json" "$T/after-cache.json"
    assert_no_file "$INCOMING"
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: serial $PREV in force ($what)"
}

echo "# the previous policy: serial 5 from the MP, its program ran"
publish 5 adverts="$(good_ad)"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 5, 1 advertisement(s)"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

echo "# attack (a): the MP serves serial 6, really signed, expired yesterday"
EXP6=$(utc_time '-1 day')
publish 6 adverts="$(evil_ad)" issued="$(utc_time '-3 day')" expires="$EXP6" note="$MARK"
cp "$T/mp/policy.json" "$T/p6.json"
cp "$T/mp/policy.json.sig" "$T/p6.json.sig"
openssl pkeyutl -verify -pubin -inkey "$KEYS/CEN.pem" -rawin -in "$T/p6.json" -sigfile "$T/p6.json.sig" >/dev/null
ok "openssl: the stale serial 6 is validly signed by the site's key"
REFUSED6="Policy $INCOMING refused: the policy expired at $EXP6, error 0x800B0101"
assert_exit 1 agent policy fetch
assert_error 0x800B0101
assert_stderr_has "the policy expired at $EXP6"
untouched "policy fetch of expired serial 6" CEN2E666 CEN000E6.1
assert_log_has "$POLLOG" "$REFUSED6"
assert_log_type "$POLLOG" "$REFUSED6" 3
assert_exit 1 agent execute CEN2E666
assert_error 0x80070490

echo "# attack (a) again through the service: run --once polls, refuses, runs nothing"
assert_exit 1 agent run --once
assert_error 0x800B0101
untouched "run --once with expired serial 6" CEN2E666 CEN000E6.1
assert_eq 2 "$(log_count "$POLLOG" "$REFUSED6")" "PolicyAgent.log has the service poll's refusal too"
assert_exit 0 agent status --json
assert_eq 0x800B0101 "$(jq -r .service.last_poll_result "$LAST_OUT")" "status: the last poll was refused with 0x800B0101"

echo "# attack (a) by hand: policy apply of the same file"
assert_exit 1 agent policy apply "$T/p6.json"
assert_error 0x800B0101
untouched "policy apply of expired serial 6" CEN2E666 CEN000E6.1
assert_log_has "$POLLOG" "Policy $T/p6.json refused: the policy expired at $EXP6, error 0x800B0101"
assert_log_type "$POLLOG" "Policy $T/p6.json refused: the policy expired at $EXP6, error 0x800B0101" 3

echo "# the site's serial 7 (expires in 6 s) arrives, with the mandatory CEN2A002 due now"
EXP7=$(utc_time '+6 sec')
publish 7 adverts="$(good_ad), $(fix_ad)" expires="$EXP7"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 7, 2 advertisement(s)"
snapshot 7

echo "# attack (b): the MP is frozen on serial 7 (304 each poll) while serial 7 expires"
while [[ $(date -u +%s) -le $(date -u -d "$EXP7" +%s) ]]; do
    sleep 0.2
done
WARN7="The applied policy for site CEN expired at $EXP7; none of its advertisements is run until a newer policy is applied"
assert_exit 0 agent run --once
assert_eq "304 0" "$(status_of policy.json)" "the MP answered 304: nothing newer reached the agent"
untouched "run --once on expired serial 7" CEN2A002 CEN000A2.1
assert_log_has "$EXLOG" "$WARN7"
assert_log_type "$EXLOG" "$WARN7" 2
assert_log_has "$EXLOG" "run --once finished: 0 program(s) started, all went well"
assert_exit 0 agent run --once
assert_eq 2 "$(log_count "$EXLOG" "$WARN7")" "the warning comes again on the next pass"
untouched "second run --once on expired serial 7" CEN2A002 CEN000A2.1
assert_exit 1 agent execute CEN2A002
assert_error 0x800B0101
assert_stderr_has "the applied policy for site CEN expired at $EXP7; apply a newer one"
assert_exit 1 agent execute CEN2A001
assert_error 0x800B0101
untouched "execute on expired serial 7" CEN2A002 CEN000A2.1
assert_exit 0 agent status --json
assert_eq "$EXP7" "$(jq -r '.policies[0].expires' "$LAST_OUT")" "status shows when the applied policy expired"

echo "# no over-refusal: the site's serial 8 reaches the agent; the service runs the fix"
publish 8 adverts="$(good_ad), $(fix_ad)"
assert_exit 0 agent run --once
assert_log_has "$POLLOG" "Applied policy for site CEN, serial 8 (previous 7), 2 advertisement(s), expires $(sed -n 's/^  "expires": "\(.*\)",$/\1/p' "$T/mp/policy.json")"
assert_same_file "$T/mp/policy.json" "$STATE/policy/CEN.json"
assert_eq 1 "$(proof_runs CEN2A002)" "the fix ran once serial 8 was applied"
assert_download_succeeded CEN000A2.1
assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's program never ran"

assert_cmtrace_logs
done_testing
