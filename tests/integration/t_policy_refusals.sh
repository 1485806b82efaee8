#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# `policy apply` refuses every policy it must not trust -- bad signature, unknown site, no
# signature, replayed or rolled-back serial, expired, malformed, another site -- each with its own
# code, leaving the applied policy (serial 5) untouched; then serial 6 applies. For Ed25519, RSA and
# ECDSA P-256 site keys made with the openssl CLI.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_policy_refusals"

make_package "$T/src"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN00002.1
dp_start "$T/dp"

# still_at N POLICY -- the applied policy is serial N, stored byte for byte with its signature.
still_at()
{
    local n=$1 pol=$2
    assert_exit 0 agent policy show --json
    grep -Eq "^\{\"site\":\"CEN\",\"serial\":${n}[,}]" "$LAST_OUT" ||
        fail "policy show --json shows CEN serial $n" "stdout: $(head -c 600 "$LAST_OUT")"
    ok "policy show --json shows CEN serial $n"
    assert_same_file "$pol" "$STATE/policy/CEN.json"
    assert_same_file "$pol.sig" "$STATE/policy/CEN.json.sig"
}

# refused CODE WHAT POLICY [DETAIL] -- apply fails with CODE (and DETAIL in the error line),
# PolicyAgent.log names the code, and serial 5 stays in force.
refused()
{
    local code=$1 what=$2 pol=$3 detail=${4:-}
    echo "# refused: $what"
    local before=0
    [[ -f $LOGS/PolicyAgent.log ]] && before=$(wc -l <"$LOGS/PolicyAgent.log")
    assert_exit 1 agent policy apply "$pol"
    assert_error "$code"
    if [[ -n $detail ]]; then
        grep -E "^cas-agent: error $code: " "$LAST_ERR" | grep -F -- "$detail" >/dev/null ||
            fail "the error detail names '$detail'" "stderr: $(cat "$LAST_ERR")"
        ok "the error detail names '$detail'"
    fi
    tail -n +$((before + 1)) "$LOGS/PolicyAgent.log" 2>/dev/null | grep -F "$code" >/dev/null ||
        fail "PolicyAgent.log names the refusal ($code, $what)" \
            "$(_lib_tail "$LOGS/PolicyAgent.log" 5)"
    ok "PolicyAgent.log names the refusal ($code, $what)"
    still_at 5 "$T/$KT/p5.json"
}

# Byte offsets to flip: one inside the unknown "note" field keeps the JSON valid and the site
# readable, so only the signature can catch it; in the signature, the last byte (for ECDSA that is
# inside the DER-encoded s, so the DER stays well-formed).
flip_policy() { flip_byte "$1" "$(grep -bo 'signed by the' "$1" | head -1 | cut -d: -f1)" 32; }
flip_sig() { flip_byte "$1" $(($(stat -c %s "$1") - 1)) 1; }

for KT in ed25519 rsa ecdsa; do
    echo "# --- site key type $KT"
    D=$T/$KT
    mkdir -p "$D"
    # shellcheck disable=SC2034 # read by the lib functions
    CACHE=$D/cache STATE=$D/state LOGS=$D/log KEYS=$D/keys PRIV=$D/private CFG=$D/agent.json
    mkdir -p "$KEYS" "$PRIV"
    write_config
    make_site_key CEN "$KT"
    make_key "$PRIV/OTHER" "$KT"

    write_policy "$D/p5.json" serial=5
    sign_policy "$PRIV/CEN.key" "$D/p5.json"
    write_policy "$D/p6.json" serial=6
    sign_policy "$PRIV/CEN.key" "$D/p6.json"

    assert_exit 1 agent policy show --json
    assert_error 0x87D00607
    assert_exit 0 agent policy apply "$D/p5.json"
    still_at 5 "$D/p5.json"

    cp "$D/p6.json" "$D/flip-policy.json"
    cp "$D/p6.json.sig" "$D/flip-policy.json.sig"
    flip_policy "$D/flip-policy.json"
    [[ $( (cmp -l "$D/p6.json" "$D/flip-policy.json" || true) | wc -l) -eq 1 ]] || fail "one byte flipped"
    refused 0x80090006 "one byte of the policy flipped" "$D/flip-policy.json"

    cp "$D/p6.json" "$D/flip-sig.json"
    cp "$D/p6.json.sig" "$D/flip-sig.json.sig"
    flip_sig "$D/flip-sig.json.sig"
    refused 0x80090006 "one byte of the signature flipped" "$D/flip-sig.json"

    cp "$D/p6.json" "$D/other-key.json"
    sign_policy "$PRIV/OTHER.key" "$D/other-key.json"
    refused 0x80090006 "signed by another key" "$D/other-key.json"

    if [[ $KT == ed25519 ]]; then
        cp "$D/p6.json" "$D/trunc.json"
        head -c 32 "$D/p6.json.sig" >"$D/trunc.json.sig"
        refused 0x80090006 "truncated signature" "$D/trunc.json"

        make_key "$PRIV/XYZ" ed25519 # a key, but not trusted: no $KEYS/XYZ.pem
        write_policy "$D/xyz.json" serial=6 site=XYZ
        sign_policy "$PRIV/XYZ.key" "$D/xyz.json"
        refused 0x800B0109 "unknown site XYZ" "$D/xyz.json"

        cp "$D/p6.json" "$D/nosig.json"
        refused 0x800B0100 "no signature file" "$D/nosig.json"

        cp "$D/p5.json" "$D/replay.json"
        cp "$D/p5.json.sig" "$D/replay.json.sig"
        refused 0xA0CA0001 "replayed serial 5" "$D/replay.json"

        write_policy "$D/p4.json" serial=4
        sign_policy "$PRIV/CEN.key" "$D/p4.json"
        refused 0xA0CA0001 "rolled back to serial 4" "$D/p4.json"

        write_policy "$D/expired.json" serial=7 issued="$(utc_time '-2 days')" expires="$(utc_time '-1 day')"
        sign_policy "$PRIV/CEN.key" "$D/expired.json"
        refused 0x800B0101 "expired" "$D/expired.json"

        write_policy "$D/noserial.json" serial=none
        sign_policy "$PRIV/CEN.key" "$D/noserial.json"
        refused 0x8007000D "missing serial" "$D/noserial.json" serial

        write_policy "$D/strserial.json" serial='"6"'
        sign_policy "$PRIV/CEN.key" "$D/strserial.json"
        refused 0x8007000D "serial of the wrong type" "$D/strserial.json" serial

        # A trusted key for ABC, but this agent is configured for site CEN.
        make_site_key ABC ed25519
        write_policy "$D/abc.json" serial=6 site=ABC
        sign_policy "$PRIV/ABC.key" "$D/abc.json"
        main_cfg=$CFG
        CFG=$D/agent-site.json
        write_config --file "$CFG" site='"CEN"'
        refused 0xA0CA0002 "policy for site ABC, agent of site CEN" "$D/abc.json"
        CFG=$main_cfg

        # --signature names the signature file; serial 6 applies.
        mkdir -p "$D/elsewhere"
        mv "$D/p6.json.sig" "$D/elsewhere/p6.sig"
        assert_exit 0 agent policy apply "$D/p6.json" --signature "$D/elsewhere/p6.sig"
        cp "$D/elsewhere/p6.sig" "$D/p6.json.sig"
    else
        assert_exit 0 agent policy apply "$D/p6.json"
    fi
    still_at 6 "$D/p6.json"
    assert_cmtrace_logs "$LOGS"
done

done_testing
