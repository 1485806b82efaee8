#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: a policy for a site the agent should not take orders from. The attacker writes policy
# files and serves the management point: (a) a policy for site XYZ, signed with a key it made,
# hoping the agent trusts whatever key comes for a site it has never heard of (trust on first
# use); (b) a policy for site ABC, properly signed by ABC's key, sent to an agent assigned to site
# CEN (ABC's key is trusted on this machine, so only the site assignment stops it); (c) a site
# name shaped like a path ("../CEN") to steer the key lookup.
# Defence: a key is trusted only from `<trusted_keys_dir>/<SITE>.pem`, never from the network
# (0x800B0109); with `site` configured, only that site's policy is accepted (0xA0CA0002, checked
# before the signature); a site is 3 of [A-Z0-9] (0x8007000D).
# Asserts for each, by `policy apply` and at the MP (`policy fetch`, `run --once`): the error
# code and its detail; the attacker's program never runs and its content is never requested;
# nothing from the attacker in the cache or the state folder (no policy stored for the other
# site, no key installed), cache listing unchanged; CEN serial 5 byte for byte and the only
# policy in `policy show`; PolicyAgent.log's type-3 refusal. Then ABC's policy applies on an
# agent with no `site` (no over-refusal).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_unknown_site"

MARK="attacker-marker-site-$RANDOM$RANDOM"
make_site_key CEN
make_site_key ABC # another site, trusted on this machine
make_key "$PRIV/XYZ" ed25519 # the attacker's key: no $KEYS/XYZ.pem
make_package "$T/good" "the site's current package"
make_package "$T/evil" "$MARK"
mkdir -p "$T/dp" "$T/mp"
dp_publish "$T/good" "$T/dp" CEN000A1.1
GOOD_HASH=$PKG_HASH GOOD_SIZE=$PKG_SIZE
dp_publish "$T/evil" "$T/dp" XYZ000E6.1
EVIL_HASH=$PKG_HASH EVIL_SIZE=$PKG_SIZE
cp -R "$T/dp/XYZ000E6.1" "$T/dp/ABC000E6.1"
cp "$T/dp/XYZ000E6.1.sums" "$T/dp/ABC000E6.1.sums"
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
POLLOG=$LOGS/PolicyAgent.log
INCOMING=$STATE/policy/incoming.json
cp -R "$KEYS" "$T/keys-before"
# Two configurations on the same folders: any site with a trusted key, or assigned to CEN.
CFG_ANY=$T/agent-any.json
CFG_CEN=$T/agent-cen.json
write_config --file "$CFG_ANY" management_point="\"$MP/policy.json\""
write_config --file "$CFG_CEN" management_point="\"$MP/policy.json\"" site='"CEN"'
CFG=$CFG_ANY

# evil_ad SITE -- the attacker's mandatory advertisement, as package SITE000E6.
evil_ad() { advert_json id=ATK2E666 package="${1}000E6" hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }
# attack FILE SITE KEY -- the attacker's policy for SITE (serial 9), signed with KEY.
attack()
{
    write_policy "$1" serial=9 site="$2" adverts="$(evil_ad "$2")" note="$MARK"
    sign_policy "$3" "$1"
}
# at_mp FILE -- the MP serves FILE and its signature (with a new ETag).
at_mp()
{
    cp "$1" "$T/mp/policy.json"
    cp "$1.sig" "$T/mp/policy.json.sig"
    fresh_etag "$T/mp/policy.json"
}

snapshot()
{
    PREV=$1
    rm -rf "$T/before"
    mkdir -p "$T/before"
    cp "$STATE/policy/CEN.json" "$STATE/policy/CEN.json.sig" "$STATE/policy/CEN.state.json" "$T/before/"
    agent cache list --json >"$T/before/cache.json"
    GOOD_RUNS=$(proof_runs CEN2A001)
}

# untouched WHAT -- checks 1-3, under the current $CFG.
untouched()
{
    local what=$1 f hits
    assert_exit 1 agent execute ATK2E666
    assert_error 0x80070490
    assert_eq 0 "$(proof_runs ATK2E666)" "the attacker's program did not run ($what)"
    assert_eq "$GOOD_RUNS" "$(proof_runs CEN2A001)" "the applied policy's program did not run again ($what)"
    assert_not_cached XYZ000E6.1
    assert_not_cached ABC000E6.1
    assert_eq "" "$(dp_requests "$DP" | grep -F 000E6 || true)" "the DP was never asked for the attacker's content ($what)"
    hits=$(grep -rlF -- "$MARK" "$CACHE" "$STATE" "$KEYS" 2>/dev/null || true)
    [[ -z $hits ]] || fail "no attacker bytes in the cache, state or keys folder ($what)" "found in: $(_lib_show "$hits")"
    ok "no attacker bytes in the cache, state or keys folder ($what)"
    agent cache list --json >"$T/after-cache.json"
    assert_same_file "$T/before/cache.json" "$T/after-cache.json"
    assert_same_tree "$T/keys-before" "$KEYS"
    assert_no_file "$INCOMING"
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_eq "" "$(find "$STATE/policy" -name 'XYZ*' -o -name 'ABC*' -o -name '*.keychange*' | head -3)" \
        "no policy or state stored for another site ($what)"
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: only CEN serial $PREV ($what)"
}

# refused_line POLICY DETAIL CODE -- 4. PolicyAgent.log's type-3 refusal.
refused_line()
{
    local line="Policy $1 refused: $2, error $3"
    assert_log_has "$POLLOG" "$line"
    assert_log_type "$POLLOG" "$line" 3
}

echo "# the previous policy: CEN serial 5, its program ran"
write_policy "$T/p5.json" serial=5 adverts="$(good_ad)"
sign_policy "$PRIV/CEN.key" "$T/p5.json"
assert_exit 0 agent policy apply "$T/p5.json"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

NOKEY="no trusted key for site XYZ ($KEYS/XYZ.pem does not exist)"
echo "# (a) site XYZ, signed by the attacker's own key, on an agent that takes any trusted site"
attack "$T/xyz.json" XYZ "$PRIV/XYZ.key"
assert_exit 1 agent policy apply "$T/xyz.json"
assert_error 0x800B0109
assert_stderr_has "$NOKEY"
untouched "apply XYZ"
refused_line "$T/xyz.json" "$NOKEY" 0x800B0109
at_mp "$T/xyz.json"
assert_exit 1 agent policy fetch
assert_error 0x800B0109
untouched "fetch XYZ"
refused_line "$INCOMING" "$NOKEY" 0x800B0109
n=$(log_count "$POLLOG" "Policy $INCOMING refused: $NOKEY, error 0x800B0109")
assert_exit 1 agent run --once
assert_error 0x800B0109
untouched "run --once XYZ"
assert_eq $((n + 1)) "$(log_count "$POLLOG" "Policy $INCOMING refused: $NOKEY, error 0x800B0109")" \
    "PolicyAgent.log has the service poll's refusal"

OTHER="the policy is for site ABC, this agent is assigned to site CEN"
echo "# (b) site ABC, signed by ABC's trusted key, on an agent assigned to CEN"
CFG=$CFG_CEN
attack "$T/abc.json" ABC "$PRIV/ABC.key"
assert_exit 1 agent policy apply "$T/abc.json"
assert_error 0xA0CA0002
assert_stderr_has "$OTHER"
untouched "apply ABC to a CEN agent"
refused_line "$T/abc.json" "$OTHER" 0xA0CA0002
at_mp "$T/abc.json"
assert_exit 1 agent policy fetch
assert_error 0xA0CA0002
untouched "fetch ABC on a CEN agent"
refused_line "$INCOMING" "$OTHER" 0xA0CA0002
assert_exit 1 agent run --once
assert_error 0xA0CA0002
untouched "run --once ABC on a CEN agent"
assert_eq 2 "$(log_count "$POLLOG" "Policy $INCOMING refused: $OTHER, error 0xA0CA0002")" \
    "PolicyAgent.log has the service poll's refusal"

echo "# (a) on the CEN agent: the site assignment refuses XYZ before any key is looked for"
assert_exit 1 agent policy apply "$T/xyz.json"
assert_error 0xA0CA0002
assert_stderr_has "the policy is for site XYZ, this agent is assigned to site CEN"
untouched "apply XYZ to a CEN agent"
refused_line "$T/xyz.json" "the policy is for site XYZ, this agent is assigned to site CEN" 0xA0CA0002

echo "# (c) a site shaped like a path, on both agents"
cp "$PRIV/ABC.pem" "$T/CEN.pem" # the key an attacker would like picked up from ../
write_policy "$T/path.json" serial=9 site="../CEN" adverts="$(evil_ad XYZ)" note="$MARK"
sign_policy "$PRIV/ABC.key" "$T/path.json"
for CFG in "$CFG_ANY" "$CFG_CEN"; do
    assert_exit 1 agent policy apply "$T/path.json"
    assert_error 0x8007000D
    assert_stderr_has "site"
    untouched "site ../CEN ($(basename "$CFG"))"
    line=$(log_find "$POLLOG" "^Policy ${T//./\\.}/path\\.json refused: .*site.*, error 0x8007000D\$")
    [[ -n $line ]] || _lib_log_fail "PolicyAgent.log: the path-shaped site refused with 0x8007000D" "$POLLOG" "no such record"
    ok "PolicyAgent.log: $line"
done

echo "# no over-refusal: ABC's own policy applies on an agent that takes any trusted site"
CFG=$CFG_ANY
write_policy "$T/abc-good.json" serial=1 site=ABC adverts="$(advert_json id=ABC2A001 package=CEN000A1 hash="$GOOD_HASH" size="$GOOD_SIZE" locations="$DP")"
sign_policy "$PRIV/ABC.key" "$T/abc-good.json"
assert_exit 0 agent policy apply "$T/abc-good.json"
assert_same_file "$T/abc-good.json" "$STATE/policy/ABC.json"
for f in CEN.json CEN.json.sig CEN.state.json; do
    assert_same_file "$T/before/$f" "$STATE/policy/$f"
done
assert_exit 0 agent execute ABC2A001
assert_eq 1 "$(proof_runs ABC2A001)" "site ABC's program ran"
assert_eq 0 "$(proof_runs ATK2E666)" "the attacker's program never ran"

assert_cmtrace_logs
done_testing
