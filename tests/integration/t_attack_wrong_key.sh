#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: arbitrary software through a policy signed with the wrong key. The attacker can write
# policy files and serve the management point, and signs its own policy (a higher serial, a
# mandatory advertisement of its package) with a key it holds: its own Ed25519 key, its own RSA
# and ECDSA keys (another type than the site's), and the key another site trusted by this agent
# uses (a key the agent does trust, but not for this site).
# Defence: a policy is verified with `<trusted_keys_dir>/<SITE>.pem` only, and nothing else
# (0x80090006).
# Asserts for each, by `policy apply` and at the MP (`policy fetch`, `run --once`): exit 1 with
# 0x80090006; the attacker's program never runs and its content is never requested; nothing from
# the attacker in the cache or state folder, cache listing unchanged; the applied serial 5 byte
# for byte and in `policy show`; PolicyAgent.log's type-3 line naming the signature, the site and
# the trusted key id. Then the same document signed by the site's key applies (no over-refusal).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_wrong_key"

MARK="attacker-marker-wrongkey-$RANDOM$RANDOM"
make_site_key CEN
make_site_key ABC # another site this agent trusts
make_key "$PRIV/evil-ed25519" ed25519
make_key "$PRIV/evil-rsa" rsa
make_key "$PRIV/evil-ecdsa" ecdsa
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
# No `site` configured: the agent accepts policy for every site it has a key for (CEN and ABC),
# the widest door for a key confusion.
write_config management_point="\"$MP/policy.json\""

# key_id_of PEM -- the key id as docs/formats.md defines it.
CEN_ID=$(key_id_of "$KEYS/CEN.pem")

evil_ad() { advert_json id=CEN2E666 package=CEN000E6 hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }

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

# untouched WHAT -- checks 1-3: nothing ran, nothing from the attacker cached, policy in force.
untouched()
{
    local what=$1 f hits
    assert_exit 1 agent execute CEN2E666
    assert_error 0x80070490
    assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's program did not run ($what)"
    assert_eq "$GOOD_RUNS" "$(proof_runs CEN2A001)" "the applied policy's program did not run again ($what)"
    assert_not_cached CEN000E6.1
    assert_eq "" "$(dp_requests "$DP" | grep -F CEN000E6 || true)" "the DP was never asked for the attacker's content ($what)"
    hits=$(grep -rlF -- "$MARK" "$CACHE" "$STATE" 2>/dev/null || true)
    [[ -z $hits ]] || fail "no attacker bytes in the cache or state folder ($what)" "found in: $(_lib_show "$hits")"
    ok "no attacker bytes in the cache or state folder ($what)"
    agent cache list --json >"$T/after-cache.json"
    assert_same_file "$T/before/cache.json" "$T/after-cache.json"
    assert_no_file "$INCOMING"
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_eq "CEN.json CEN.json.sig CEN.state.json" "$(cd "$STATE/policy" && find . -maxdepth 1 -name '*.json*' ! -name 'mp.json' -printf '%P\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" \
        "no policy stored for any other site ($what)"
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: serial $PREV in force ($what)"
}

# bad_sig_line POLICY SIG -- 4. the type-3 refusal naming the signature, site and trusted key id.
bad_sig_line()
{
    local line="Policy $1 refused: the signature $2 does not verify with the key trusted for site CEN (key id $CEN_ID), error 0x80090006"
    assert_log_has "$POLLOG" "$line"
    assert_log_type "$POLLOG" "$line" 3
}

echo "# the previous policy: serial 5, its program ran"
write_policy "$T/p5.json" serial=5 adverts="$(good_ad)"
sign_policy "$PRIV/CEN.key" "$T/p5.json"
assert_exit 0 agent policy apply "$T/p5.json"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

# The attacker's document: serial 6, its mandatory advert next to the site's.
write_policy "$T/evil.json" serial=6 adverts="$(good_ad), $(evil_ad)" note="$MARK"

for signer in evil-ed25519 evil-rsa evil-ecdsa ABC; do
    echo "# policy apply, signed by $signer"
    cp "$T/evil.json" "$T/$signer.json"
    sign_policy "$PRIV/$signer.key" "$T/$signer.json"
    assert_exit 1 agent policy apply "$T/$signer.json"
    assert_error 0x80090006
    assert_stderr_has "does not verify with the key trusted for site CEN (key id $CEN_ID)"
    untouched "apply, signed by $signer"
    bad_sig_line "$T/$signer.json" "$T/$signer.json.sig"
done

echo "# the same by the management point: policy fetch, then the service (run --once)"
cp "$T/evil-rsa.json" "$T/mp/policy.json"
cp "$T/evil-rsa.json.sig" "$T/mp/policy.json.sig"
assert_exit 1 agent policy fetch
assert_error 0x80090006
untouched "fetch, signed by the attacker's RSA key"
bad_sig_line "$INCOMING" "$INCOMING.sig"
n=$(log_count "$POLLOG" "Policy $INCOMING refused: the signature $INCOMING.sig does not verify with the key trusted for site CEN (key id $CEN_ID), error 0x80090006")
cp "$T/ABC.json" "$T/mp/policy.json"
cp "$T/ABC.json.sig" "$T/mp/policy.json.sig"
fresh_etag "$T/mp/policy.json"
assert_exit 1 agent run --once
assert_error 0x80090006
untouched "run --once, signed by site ABC's key"
assert_eq $((n + 1)) "$(log_count "$POLLOG" "Policy $INCOMING refused: the signature $INCOMING.sig does not verify with the key trusted for site CEN (key id $CEN_ID), error 0x80090006")" \
    "PolicyAgent.log has the service poll's refusal"

echo "# the attacker's signature over the site's own next policy: refused just the same"
write_policy "$T/p6.json" serial=6 adverts="$(good_ad)"
sign_policy "$PRIV/evil-ed25519.key" "$T/p6.json"
assert_exit 1 agent policy apply "$T/p6.json"
assert_error 0x80090006
untouched "the site's serial 6 with the attacker's signature"

echo "# no over-refusal: serial 6 signed by the site's key applies from the MP"
sign_policy "$PRIV/CEN.key" "$T/p6.json"
cp "$T/p6.json" "$T/mp/policy.json"
cp "$T/p6.json.sig" "$T/mp/policy.json.sig"
fresh_etag "$T/mp/policy.json"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 6, 1 advertisement(s)"
assert_log_has "$POLLOG" "Signature of policy for site CEN, serial 6 verified with key $CEN_ID"
assert_same_file "$T/p6.json" "$STATE/policy/CEN.json"
assert_exit 0 agent execute CEN2A001
assert_eq 2 "$(proof_runs CEN2A001)" "serial 6's program ran"
assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's program never ran"

assert_cmtrace_logs
done_testing
