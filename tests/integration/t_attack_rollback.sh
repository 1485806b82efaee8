#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: rollback / replay. The attacker holds older policies the site really signed (it sits on
# the network path to the management point, or simply kept old files) and wants the agent back on
# one of them, to bring back an advertisement the site withdrew: it replays serial 4 under serial
# 5, replays serial 5 itself, and a second document the site signed with serial 5; by hand
# (`policy apply`) and at the management point (`policy fetch`, `run --once`); and, once the
# applied serial 6 has expired, serial 4 again (the check must use the last applied serial even
# when that policy has expired: go-tuf's CVE-2022-29173 was this check missing).
# Defence: a policy's serial must be higher than the last one applied for the site (0xA0CA0001,
# checked after the signature, before anything is stored).
# Asserts for each: exit 1 with 0xA0CA0001 and the serials in the detail; the withdrawn program
# never runs and the DP is never asked for its content; nothing from the attacker in the cache or
# the state folder, the cache listing unchanged; the applied policy's files byte for byte and
# `policy show` on the applied serial; PolicyAgent.log's type-3 refusal line. Then serials 6 and
# 7 apply (no over-refusal), and the same bytes as the applied policy at the MP change nothing.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_rollback"

MARK="attacker-marker-rollback-$RANDOM$RANDOM"
make_site_key CEN
make_package "$T/good" "the site's current package"
make_package "$T/evil" "$MARK"
mkdir -p "$T/dp" "$T/mp"
dp_publish "$T/good" "$T/dp" CEN000A1.1
GOOD_HASH=$PKG_HASH GOOD_SIZE=$PKG_SIZE
dp_publish "$T/evil" "$T/dp" CEN000E6.1
EVIL_HASH=$PKG_HASH EVIL_SIZE=$PKG_SIZE
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
POLLOG=$LOGS/PolicyAgent.log
INCOMING=$STATE/policy/incoming.json
write_config management_point="\"$MP/policy.json\"" site='"CEN"'

# The withdrawn advertisement: mandatory, so the service would run it at once if it came back.
evil_ad() { advert_json id=CEN2E666 package=CEN000E6 hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }
# signed FILE SERIAL [write_policy keys...] -- a policy signed with the site's real key.
signed()
{
    local f=$1 s=$2
    shift 2
    write_policy "$f" serial="$s" "$@"
    sign_policy "$PRIV/CEN.key" "$f"
}
# at_mp FILE -- the management point serves FILE and its signature from now on (with a new
# ETag).
at_mp()
{
    cp "$1" "$T/mp/policy.json"
    cp "$1.sig" "$T/mp/policy.json.sig"
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

# untouched WHAT -- checks 1-3 after an attack: nothing ran, nothing cached, previous policy.
untouched()
{
    local what=$1 f hits
    # 1. nothing ran: the attacker's advertisement is not known, its program never ran, and the
    # site's program was not run again either.
    assert_exit 1 agent execute CEN2E666
    assert_error 0x80070490
    assert_eq 0 "$(proof_runs CEN2E666)" "the withdrawn program did not run ($what)"
    assert_eq "$GOOD_RUNS" "$(proof_runs CEN2A001)" "the applied policy's program did not run again ($what)"
    # 2. nothing from the attacker in the cache (nor in the state folder), not even requested.
    assert_not_cached CEN000E6.1
    hits=$(grep -rlF -- "$MARK" "$CACHE" "$STATE" 2>/dev/null || true)
    [[ -z $hits ]] || fail "no attacker bytes in the cache or state folder ($what)" "found in: $(_lib_show "$hits")"
    ok "no attacker bytes in the cache or state folder ($what)"
    agent cache list --json >"$T/after-cache.json"
    assert_same_file "$T/before/cache.json" "$T/after-cache.json"
    assert_eq "" "$(dp_requests "$DP" | grep -F CEN000E6 || true)" "the DP was never asked for the withdrawn content ($what)"
    assert_no_file "$INCOMING"
    # 3. the previous policy is still in force, byte for byte.
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: serial $PREV in force ($what)"
    assert_eq "CEN2A001" "$(jq -r '[.advertisements[].id] | join(" ")' "$LAST_OUT")" "policy show: only the applied advertisement ($what)"
}

# refused_line POLICY_PATH SERIAL -- 4. PolicyAgent.log says what was refused and why (type 3).
refused_line()
{
    local line="Policy $1 refused: serial $2 is not higher than serial $PREV already applied for site CEN (replayed or rolled-back policy), error 0xA0CA0001"
    assert_log_has "$POLLOG" "$line"
    assert_log_type "$POLLOG" "$line" 3
}

echo "# the site's history: serial 4 advertised CEN2E666 (since withdrawn); serial 5 replaced it"
signed "$T/p4.json" 4 adverts="$(evil_ad)" note="$MARK"
signed "$T/p5.json" 5 adverts="$(good_ad)"
# The site also signed a second serial 5 (e.g. a draft) that still names the withdrawn advert.
signed "$T/p5b.json" 5 adverts="$(good_ad), $(evil_ad)" note="$MARK"
assert_exit 0 agent policy apply "$T/p4.json" # at the time, legitimately
assert_exit 0 agent policy apply "$T/p5.json"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

echo "# attack 1: policy apply of the older serial 4"
assert_exit 1 agent policy apply "$T/p4.json"
assert_error 0xA0CA0001
assert_stderr_has "serial 4 is not higher than serial 5 already applied for site CEN"
untouched "apply serial 4"
refused_line "$T/p4.json" 4

echo "# attack 2: policy apply of serial 5 replayed, the same bytes"
cp "$T/p5.json" "$T/replay5.json"
cp "$T/p5.json.sig" "$T/replay5.json.sig"
assert_exit 1 agent policy apply "$T/replay5.json"
assert_error 0xA0CA0001
untouched "apply serial 5 again"
refused_line "$T/replay5.json" 5

echo "# attack 3: policy apply of another document signed with serial 5"
assert_exit 1 agent policy apply "$T/p5b.json"
assert_error 0xA0CA0001
untouched "apply another serial 5"
refused_line "$T/p5b.json" 5

echo "# attack 4: the management point serves serial 4 (policy fetch)"
at_mp "$T/p4.json"
assert_exit 1 agent policy fetch
assert_error 0xA0CA0001
untouched "fetch serial 4"
refused_line "$INCOMING" 4
assert_eq "" "$(log_find "$POLLOG" '^Applied policy for site CEN, serial 4 \(previous 5\)')" \
    "PolicyAgent.log never says serial 4 was applied over 5"

echo "# attack 5: the management point serves the other serial 5 (run --once, the service)"
at_mp "$T/p5b.json"
n_refused=$(log_count "$POLLOG" "Policy $INCOMING refused: serial 5 is not higher than serial 5 already applied for site CEN (replayed or rolled-back policy), error 0xA0CA0001")
assert_exit 1 agent run --once
assert_error 0xA0CA0001
untouched "run --once with another serial 5"
refused_line "$INCOMING" 5
assert_eq $((n_refused + 1)) "$(log_count "$POLLOG" "Policy $INCOMING refused: serial 5 is not higher than serial 5 already applied for site CEN (replayed or rolled-back policy), error 0xA0CA0001")" \
    "the service's poll logged its own refusal"

echo "# the applied policy itself at the MP: not a refusal, nothing changes"
at_mp "$T/p5.json"
assert_exit 0 agent policy fetch
assert_stdout_has "Policy unchanged"
assert_log_has "$POLLOG" "Policy at $MP/policy.json is the one already applied"
untouched "the applied bytes at the MP"

echo "# no over-refusal: serial 6 (expiring in 6 s) applies from the MP"
EXP6=$(utc_time '+6 sec')
signed "$T/p6.json" 6 adverts="$(good_ad)" expires="$EXP6"
at_mp "$T/p6.json"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 6, 1 advertisement(s)"
assert_same_file "$T/p6.json" "$STATE/policy/CEN.json"
assert_exit 0 agent execute CEN2A001
assert_eq 2 "$(proof_runs CEN2A001)" "serial 6's program ran"
snapshot 6

echo "# attack 6: serial 6 has expired; serial 4 (not expired) at the MP is still a rollback"
while [[ $(date -u +%s) -le $(date -u -d "$EXP6" +%s) ]]; do
    sleep 0.2
done
assert_exit 1 agent execute CEN2A001
assert_error 0x800B0101
at_mp "$T/p4.json"
assert_exit 1 agent policy fetch
assert_error 0xA0CA0001
untouched "serial 4 after serial 6 expired"
refused_line "$INCOMING" 4
assert_exit 1 agent policy apply "$T/p4.json"
assert_error 0xA0CA0001
untouched "apply serial 4 after serial 6 expired"

echo "# no over-refusal: serial 7 applies by hand"
signed "$T/p7.json" 7 adverts="$(good_ad)"
assert_exit 0 agent policy apply "$T/p7.json"
assert_same_file "$T/p7.json" "$STATE/policy/CEN.json"
assert_exit 0 agent execute CEN2A001
assert_eq 3 "$(proof_runs CEN2A001)" "serial 7's program ran"
assert_eq 0 "$(proof_runs CEN2E666)" "the withdrawn program never ran"

assert_cmtrace_logs
done_testing
