#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: unsigned or falsely signed policy (TUF's unsigned metadata, and the signed -> unsigned
# downgrade). The attacker writes policy files and serves the management point, but holds no
# private key: it sends its policy (a higher serial, a mandatory advertisement of its package)
# with no signature at all, an empty signature, the first half of a real one, 70 KB of noise,
# and the site's genuine signature of another document (the applied policy's).
# Defence: a policy applies only with a signature that verifies over its exact bytes with the
# site's trusted key; no signature is 0x800B0100 while require_signed_policy is true (the
# default); a signature that is present is always checked (0x80090006), even in compatibility
# mode; a signature over 64 KiB is refused unread (0x80090006 from a file, 0x800700DF from the MP).
# Asserts for each, by `policy apply` and at the MP (`policy fetch`, `run --once`): the code and
# its detail; the attacker's program never runs and its content is never requested; nothing from
# the attacker in the cache or state folder, cache listing unchanged; serial 5 byte for byte and
# in `policy show`; PolicyAgent.log's type-3 refusal. Then the same document, properly signed,
# applies (no over-refusal).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_unsigned"

MARK="attacker-marker-unsigned-$RANDOM$RANDOM"
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
MPLOG=$(dp_access_log "$MP")
POLLOG=$LOGS/PolicyAgent.log
INCOMING=$STATE/policy/incoming.json
write_config management_point="\"$MP/policy.json\"" site='"CEN"'

CEN_ID=$(key_id_of "$KEYS/CEN.pem")
evil_ad() { advert_json id=CEN2E666 package=CEN000E6 hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }

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
    assert_no_file "$INCOMING.sig"
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: serial $PREV in force ($what)"
}

# refused_line POLICY DETAIL CODE -- 4. PolicyAgent.log's type-3 refusal.
refused_line()
{
    local line="Policy $1 refused: $2, error $3"
    assert_log_has "$POLLOG" "$line"
    assert_log_type "$POLLOG" "$line" 3
}
badsig() { echo "the signature $1 does not verify with the key trusted for site CEN (key id $CEN_ID)"; }

echo "# the previous policy: serial 5, its program ran"
write_policy "$T/p5.json" serial=5 adverts="$(good_ad)"
sign_policy "$PRIV/CEN.key" "$T/p5.json"
assert_exit 0 agent policy apply "$T/p5.json"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

# The attacker's policy; the site's genuine signature of it exists only for the final check.
write_policy "$T/evil.json" serial=6 adverts="$(good_ad), $(evil_ad)" note="$MARK"
sign_policy "$PRIV/CEN.key" "$T/evil.json" "$T/evil.genuine.sig"
# attempt NAME -- $T/NAME.json is the attacker's policy, with $T/NAME.json.sig as prepared.
attempt() { cp "$T/evil.json" "$T/$1.json"; }

echo "# no signature file"
attempt nosig
assert_exit 1 agent policy apply "$T/nosig.json"
assert_error 0x800B0100
untouched "no signature"
refused_line "$T/nosig.json" "no signature file $T/nosig.json.sig (unsigned policy is refused while require_signed_policy is true)" 0x800B0100

echo "# an empty signature file"
attempt empty
: >"$T/empty.json.sig"
assert_exit 1 agent policy apply "$T/empty.json"
assert_error 0x80090006
untouched "empty signature"
refused_line "$T/empty.json" "$(badsig "$T/empty.json.sig")" 0x80090006

echo "# a truncated signature: the first half of the genuine one"
attempt trunc
head -c 32 "$T/evil.genuine.sig" >"$T/trunc.json.sig"
assert_exit 1 agent policy apply "$T/trunc.json"
assert_error 0x80090006
untouched "truncated signature"
refused_line "$T/trunc.json" "$(badsig "$T/trunc.json.sig")" 0x80090006

echo "# the genuine signature with one byte more"
attempt longer
{ cat "$T/evil.genuine.sig" && printf 'x'; } >"$T/longer.json.sig"
assert_exit 1 agent policy apply "$T/longer.json"
assert_error 0x80090006
untouched "signature with a byte appended"

echo "# the site's genuine signature over other bytes (the applied serial 5)"
attempt other
cp "$T/p5.json.sig" "$T/other.json.sig"
assert_exit 1 agent policy apply "$T/other.json"
assert_error 0x80090006
untouched "signature over different bytes"
refused_line "$T/other.json" "$(badsig "$T/other.json.sig")" 0x80090006

echo "# 70 KB of noise as the signature: refused unread"
attempt huge
head -c 70000 /dev/urandom >"$T/huge.json.sig"
assert_exit 1 agent policy apply "$T/huge.json"
assert_error 0x80090006
untouched "a 70 KB signature"
refused_line "$T/huge.json" "signature file $T/huge.json.sig is larger than 65536 bytes" 0x80090006

echo "# compatibility mode (require_signed_policy false): a present signature is still checked"
CFG_STRICT=$CFG
CFG=$T/agent-compat.json
write_config --file "$CFG" management_point="\"$MP/policy.json\"" site='"CEN"' require_signed_policy=false
for name in empty trunc other; do
    assert_exit 1 agent policy apply "$T/$name.json"
    assert_error 0x80090006
    untouched "compatibility mode, $name signature"
done
assert_eq "" "$(log_find "$POLLOG" '^Accepting UNSIGNED policy ')" "no fallback to 'unsigned' for a bad signature"
CFG=$CFG_STRICT

echo "# at the management point"
# mp_sig NAME -- the MP serves the attacker's policy with $T/NAME.json.sig (none if absent).
mp_sig()
{
    cp "$T/evil.json" "$T/mp/policy.json"
    fresh_etag "$T/mp/policy.json"
    rm -f "$T/mp/policy.json.sig"
    [[ ! -f $T/$1.json.sig ]] || cp "$T/$1.json.sig" "$T/mp/policy.json.sig"
}
mp_sig nosig
assert_exit 1 agent policy fetch
assert_error 0x800B0100
assert_eq 404 "$(status_of policy.json.sig | cut -d' ' -f1)" "nginx answered 404 for the signature"
untouched "fetch without signature"
refused_line "$INCOMING" "no signature file $INCOMING.sig (unsigned policy is refused while require_signed_policy is true)" 0x800B0100
assert_exit 1 agent run --once
assert_error 0x800B0100
untouched "run --once without signature"
for name in empty trunc other; do
    mp_sig "$name"
    assert_exit 1 agent policy fetch
    assert_error 0x80090006
    assert_eq "200 $(stat -c %s "$T/$name.json.sig")" "$(status_of policy.json.sig)" "nginx served the $name signature whole"
    untouched "fetch, $name signature"
done
assert_eq 3 "$(log_count "$POLLOG" "Policy $INCOMING refused: $(badsig "$INCOMING.sig"), error 0x80090006")" \
    "PolicyAgent.log has the three refusals at the MP"
assert_exit 1 agent run --once
assert_error 0x80090006
untouched "run --once, other signature"
mp_sig huge
assert_exit 1 agent policy fetch
assert_error 0x800700DF
untouched "fetch, 70 KB signature"
line="Policy request to $MP/policy.json failed, error 0x800700DF: $MP/policy.json.sig: the server announced more than the 65536 bytes allowed; the applied policy stays"
assert_log_has "$POLLOG" "$line"
assert_log_type "$POLLOG" "$line" 3

echo "# no over-refusal: the same policy with the site's genuine signature applies from the MP"
cp "$T/evil.json" "$T/mp/policy.json"
cp "$T/evil.genuine.sig" "$T/mp/policy.json.sig"
fresh_etag "$T/mp/policy.json"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 6, 2 advertisement(s)"
assert_log_has "$POLLOG" "Signature of policy for site CEN, serial 6 verified with key $CEN_ID"
assert_same_file "$T/evil.json" "$STATE/policy/CEN.json"
assert_same_file "$T/evil.genuine.sig" "$STATE/policy/CEN.json.sig"

assert_cmtrace_logs
done_testing
