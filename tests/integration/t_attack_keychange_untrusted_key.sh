#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: take over the site's key through a forged key change. The attacker serves the
# management point: it publishes `CEN.keychange` naming its own public key, next to a policy it
# signed with that key (serial 6, a mandatory advertisement of its package), hoping the agent
# installs the key first and then accepts the policy in the same poll. The document is signed by
# the attacker's own key, then by another site's key the agent trusts (ABC), then not signed at
# all (also with require_signed_policy false), then made for site ABC and published as CEN's.
# Defence: a key change is accepted only when signed by the key trusted for the site now
# (0x80090006; unsigned 0x800B0100 whatever require_signed_policy says; another site's document
# 0xA0CA0002); a refused key change is logged and changes nothing, and the policy is then checked
# with the key still trusted (0x80090006).
# Asserts for each: `policy fetch` / `run --once` exit 1 with the policy's 0x80090006; the key
# change's type-3 refusal line with its code and the trusted key id, and the policy's; the
# trusted-keys folder byte for byte (CEN.pem unchanged, nothing added) and no key-change state;
# the attacker's program never runs and its content is never requested; nothing from the
# attacker in the cache or state folder, cache listing unchanged; serial 5 byte for byte and in
# `policy show`. Then `policy apply` of the attacker-signed policy is refused too, and a genuine
# key change (signed by the trusted key) followed by a policy signed by the new key is accepted.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_keychange_untrusted_key"

MARK="attacker-marker-keychange-$RANDOM$RANDOM"
make_site_key CEN
make_site_key ABC # another site this agent trusts
make_key "$PRIV/attacker" ed25519
make_key "$PRIV/CEN2" ed25519 # the site's genuine next key
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
KC_URL=$MP/CEN.keychange
write_config management_point="\"$MP/policy.json\"" site='"CEN"'

ID1=$(key_id_of "$KEYS/CEN.pem")
evil_ad() { advert_json id=CEN2E666 package=CEN000E6 hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }

# keychange_doc FILE SERIAL NEW_PEM [SITE] -- a key-change document (docs/formats.md), made with
# printf and awk.
keychange_doc()
{
    local file=$1 serial=$2 pem=$3 site=${4:-CEN} key
    key=$(awk '{ printf "%s\\n", $0 }' "$pem")
    printf '{\n  "schema": 1,\n  "type": "keychange",\n  "site": "%s",\n  "serial": %s,\n  "issued": "%s",\n  "key": "%s",\n  "key_id": "%s"\n}\n' \
        "$site" "$serial" "$(utc_time now)" "$key" "$(key_id_of "$pem")" >"$file"
}
# publish_kc SERIAL SIGNER_KEY|none [SITE] -- the MP's CEN.keychange moving to the attacker's key.
publish_kc()
{
    keychange_doc "$T/mp/CEN.keychange" "$1" "$PRIV/attacker.pem" "${3:-CEN}"
    rm -f "$T/mp/CEN.keychange.sig"
    [[ $2 == none ]] || sign_policy "$2" "$T/mp/CEN.keychange" "$T/mp/CEN.keychange.sig"
}

snapshot()
{
    PREV=$1
    rm -rf "$T/before"
    mkdir -p "$T/before"
    cp "$STATE/policy/CEN.json" "$STATE/policy/CEN.json.sig" "$STATE/policy/CEN.state.json" "$T/before/"
    cp -R "$KEYS" "$T/before/keys"
    agent cache list --json >"$T/before/cache.json"
    GOOD_RUNS=$(proof_runs CEN2A001)
}

# untouched WHAT -- checks 1-3, and the trusted keys unchanged.
untouched()
{
    local what=$1 f hits
    assert_exit 1 agent execute CEN2E666
    assert_error 0x80070490
    assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's program did not run ($what)"
    assert_eq "$GOOD_RUNS" "$(proof_runs CEN2A001)" "the applied policy's program did not run again ($what)"
    assert_not_cached CEN000E6.1
    assert_eq "" "$(dp_requests "$DP" | grep -F CEN000E6 || true)" "the DP was never asked for the attacker's content ($what)"
    hits=$(grep -rlF -- "$MARK" "$CACHE" "$STATE" "$KEYS" 2>/dev/null || true)
    [[ -z $hits ]] || fail "no attacker bytes in the cache, state or keys folder ($what)" "found in: $(_lib_show "$hits")"
    ok "no attacker bytes in the cache, state or keys folder ($what)"
    agent cache list --json >"$T/after-cache.json"
    assert_same_file "$T/before/cache.json" "$T/after-cache.json"
    # The attacker's key is trusted nowhere: the keys folder is byte for byte what it was.
    assert_same_tree "$T/before/keys" "$KEYS"
    assert_same_file "$T/before/keys/CEN.pem" "$KEYS/CEN.pem"
    assert_eq "ABC.pem CEN.pem" "$(find "$KEYS" -mindepth 1 -printf '%P\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" "no other file in the trusted-keys folder ($what)"
    assert_no_file "$STATE/policy/CEN.keychange.state.json"
    assert_no_file "$INCOMING"
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: serial $PREV in force ($what)"
}

# kc_refused CODE DETAIL -- 4. the key change's type-3 refusal, once more than before ($N_KC).
kc_refused()
{
    local line="Key change $KC_URL for site CEN refused: $2, error $1"
    assert_log_has "$POLLOG" "$line"
    assert_log_type "$POLLOG" "$line" 3
}
POL_REFUSED="Policy $INCOMING refused: the signature $INCOMING.sig does not verify with the key trusted for site CEN (key id $ID1), error 0x80090006"
BAD_KC_SIG="the signature does not verify with the key trusted for site CEN (key id $ID1)"

echo "# the previous policy: serial 5 from the MP, its program ran"
write_policy "$T/mp/policy.json" serial=5 adverts="$(good_ad)"
sign_policy "$PRIV/CEN.key" "$T/mp/policy.json"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 5, 1 advertisement(s)"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

echo "# the attacker's policy (serial 6) at the MP, signed with the attacker's key"
write_policy "$T/mp/policy.json" serial=6 adverts="$(good_ad), $(evil_ad)" note="$MARK"
sign_policy "$PRIV/attacker.key" "$T/mp/policy.json"
fresh_etag "$T/mp/policy.json"
cp "$T/mp/policy.json" "$T/evil.json"
cp "$T/mp/policy.json.sig" "$T/evil.json.sig"

echo "# (1) CEN.keychange to the attacker's key, signed by the attacker's key: policy fetch"
publish_kc 1 "$PRIV/attacker.key"
assert_exit 1 agent policy fetch
assert_error 0x80090006
kc_refused 0x80090006 "$BAD_KC_SIG"
assert_log_has "$POLLOG" "$POL_REFUSED"
assert_log_type "$POLLOG" "$POL_REFUSED" 3
# The order matters: the key change was refused before the policy was checked.
assert_log_order "$POLLOG" "Key change $KC_URL for site CEN refused: $BAD_KC_SIG, error 0x80090006" "$POL_REFUSED"
log_texts "$POLLOG" | awk -v a="Key change $KC_URL for site CEN refused: $BAD_KC_SIG, error 0x80090006" \
    '$0 == a { seen = 1 } seen && index($0, "Requesting policy from ") == 1 { found = 1 } END { exit !found }' ||
    _lib_log_fail "the key change was refused before the policy was requested" "$POLLOG" "no policy request after it"
ok "PolicyAgent.log: the key change was refused before the policy was requested"
assert_eq "" "$(log_find "$POLLOG" '^Key change for site CEN accepted')" "no key change accepted"
untouched "key change signed by the attacker"

echo "# (1) again through the service: run --once, with a higher key-change serial"
publish_kc 99 "$PRIV/attacker.key"
n_pol=$(log_count "$POLLOG" "$POL_REFUSED")
assert_exit 1 agent run --once
assert_error 0x80090006
assert_eq 2 "$(log_count "$POLLOG" "Key change $KC_URL for site CEN refused: $BAD_KC_SIG, error 0x80090006")" \
    "the service's poll refused the key change too"
assert_eq $((n_pol + 1)) "$(log_count "$POLLOG" "$POL_REFUSED")" "and then the policy"
untouched "run --once, key change signed by the attacker"

echo "# (2) signed by site ABC's key (trusted, for another site)"
publish_kc 2 "$PRIV/ABC.key"
assert_exit 1 agent policy fetch
assert_error 0x80090006
assert_eq 3 "$(log_count "$POLLOG" "Key change $KC_URL for site CEN refused: $BAD_KC_SIG, error 0x80090006")" \
    "PolicyAgent.log: the key change signed by ABC's key refused"
untouched "key change signed by site ABC's key"

echo "# (3) no signature at all"
publish_kc 3 none
assert_exit 1 agent policy fetch
assert_error 0x80090006
kc_refused 0x800B0100 "the key change has no signature"
untouched "unsigned key change"
echo "# ... and with require_signed_policy false: still refused"
CFG_STRICT=$CFG
CFG=$T/agent-compat.json
write_config --file "$CFG" management_point="\"$MP/policy.json\"" site='"CEN"' require_signed_policy=false
assert_exit 1 agent policy fetch
assert_error 0x80090006
assert_eq 2 "$(log_count "$POLLOG" "Key change $KC_URL for site CEN refused: the key change has no signature, error 0x800B0100")" \
    "PolicyAgent.log: the unsigned key change refused in compatibility mode"
untouched "unsigned key change, compatibility mode"
CFG=$CFG_STRICT

echo "# (4) a key change for site ABC, signed by ABC's key, published as CEN's"
publish_kc 4 "$PRIV/ABC.key" ABC
assert_exit 1 agent policy fetch
assert_error 0x80090006
line=$(log_find "$POLLOG" "^Key change ${KC_URL//./\\.} for site [A-Z0-9]{3} refused: the key change is for site ABC, it was published for site CEN, error 0xA0CA0002\$")
[[ -n $line ]] || _lib_log_fail "PolicyAgent.log: the key change for site ABC refused with 0xA0CA0002" "$POLLOG" "no such record"
assert_log_type "$POLLOG" "$line" 3
ok "PolicyAgent.log: $line"
untouched "site ABC's key change as CEN's"
assert_same_file "$T/before/keys/ABC.pem" "$KEYS/ABC.pem"

echo "# the attacker's policy by hand: refused with the key still trusted"
assert_exit 1 agent policy apply "$T/evil.json"
assert_error 0x80090006
assert_log_has "$POLLOG" "Policy $T/evil.json refused: the signature $T/evil.json.sig does not verify with the key trusted for site CEN (key id $ID1), error 0x80090006"
untouched "policy apply signed by the attacker's key"

echo "# no over-refusal: a genuine key change (signed by the trusted key), then the new key's policy"
ID2=$(key_id_of "$PRIV/CEN2.pem")
keychange_doc "$T/mp/CEN.keychange" 1 "$PRIV/CEN2.pem"
sign_policy "$PRIV/CEN.key" "$T/mp/CEN.keychange" "$T/mp/CEN.keychange.sig"
write_policy "$T/mp/policy.json" serial=6 adverts="$(good_ad)"
sign_policy "$PRIV/CEN2.key" "$T/mp/policy.json"
fresh_etag "$T/mp/policy.json"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 6, 1 advertisement(s)"
assert_log_has "$POLLOG" "Key change for site CEN accepted: serial 1, key $ID1 replaced by $ID2"
assert_same_file "$PRIV/CEN2.pem" "$KEYS/CEN.pem"
assert_exit 0 agent execute CEN2A001
assert_eq 2 "$(proof_runs CEN2A001)" "the new key's policy's program ran"
echo "# ... and the attacker's policy is still refused under the new key"
assert_exit 1 agent policy apply "$T/evil.json"
assert_error 0x80090006
assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's program never ran"

assert_cmtrace_logs
# Last, so that every other check has run: the refusal of (4) must name the site whose key was at
# stake (the document was fetched as CEN.keychange, for CEN), as docs/formats.md shows the record,
# not the site the attacker wrote into the document.
kc_refused 0xA0CA0002 "the key change is for site ABC, it was published for site CEN"
done_testing
