#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: a policy document built to exhaust the agent's parser (TUF's endless data, applied to
# metadata). The attacker obtained the site's signature on hostile documents (or is the site's
# compromised build step), so only the size and depth limits can stop them: a policy one byte over
# 4 MiB, one nested 17 deep, one nested 100000 deep, and 100000 '[' with nothing else; from files
# (`policy apply`) and from the management point (nginx; and cas-faultd sending a policy that never
# ends or announces 10^12 bytes, and a signature that never ends).
# Defence (docs/formats.md "Policy"): at most 4 MiB (0x800700DF; from the MP, a Content-Length
# over it is refused before reading and a body is read to at most the limit) and nesting at most
# 16 levels (0x8007000D, found by a scan before the JSON parser runs); a signature is at most
# 64 KiB.
# Asserts for each: exit status exactly 1 (never a signal) with the code and the limit in the
# detail; the mandatory advertisement inside never runs and its content is never requested;
# nothing from the attacker in the cache or state folder (no incoming file left), cache listing
# unchanged; serial 5 byte for byte and in `policy show`; the PolicyAgent.log line (type 3). Then
# a policy of exactly 4 MiB and one nested exactly 16 deep apply (the limits are exact).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_oversized_policy"

FAULTD=${CAS_FAULTD:-$(dirname "$CAS_AGENT")/tests/cas-faultd}
[[ -x $FAULTD ]] || fail "cas-faultd is built" "not found at $FAULTD (set CAS_FAULTD)"
MAX=$((4 * 1024 * 1024)) # docs/formats.md: "at most 4 MiB"; common/policy.h CAS_POLICY_MAX_BYTES
DEPTH=16                 # docs/formats.md: "nesting at most 16 levels"; CAS_POLICY_MAX_DEPTH
export LC_ALL=C          # ${#s} counts bytes

MARK="attacker-marker-oversized-$RANDOM$RANDOM"
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

evil_ad() { advert_json id=CEN2E666 package=CEN000E6 hash="$EVIL_HASH" size="$EVIL_SIZE" locations="$DP" mandatory=true; }

# nested_policy FILE SERIAL N [ADVERTS] -- a signed policy whose "note" is N nested arrays around
# the marker, so the document is nested N + 1 deep (the top object is level 1).
nested_policy()
{
    local f=$1 s=$2 n=$3 ads=${4:-$(good_ad), $(evil_ad)} tmpl
    write_policy "$f.tmpl" serial="$s" adverts="$ads" note="@@NOTE@@"
    tmpl=$(<"$f.tmpl")
    rm "$f.tmpl"
    {
        printf '%s' "${tmpl%%\"@@NOTE@@\"*}"
        printf '%*s' "$n" '' | tr ' ' '['
        printf '"%s"' "$MARK"
        printf '%*s' "$n" '' | tr ' ' ']'
        printf '%s\n' "${tmpl#*\"@@NOTE@@\"}"
    } >"$f"
    sign_policy "$PRIV/CEN.key" "$f"
}
# sized_policy FILE SERIAL BYTES [ADVERTS] -- a signed policy of exactly BYTES bytes (the note
# padded with the marker and then 'x').
sized_policy()
{
    local f=$1 s=$2 size=$3 ads=${4:-$(good_ad), $(evil_ad)} tmpl pre post pad
    write_policy "$f.tmpl" serial="$s" adverts="$ads" note="@@NOTE@@"
    tmpl=$(<"$f.tmpl")
    rm "$f.tmpl"
    pre=${tmpl%%@@NOTE@@*}
    post=${tmpl#*@@NOTE@@}
    pad=$((size - ${#pre} - ${#post} - 1 - ${#MARK}))
    { printf '%s%s' "$pre" "$MARK" && head -c "$pad" /dev/zero | tr '\0' x && printf '%s\n' "$post"; } >"$f"
    assert_eq "$size" "$(stat -c %s "$f")" "$(basename "$f") is $size bytes"
    sign_policy "$PRIV/CEN.key" "$f"
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

# untouched WHAT -- checks 1-3: nothing ran, nothing from the attacker kept, policy in force.
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

# refused_line TEXT -- 4. PolicyAgent.log has the record, type 3.
refused_line()
{
    assert_log_has "$POLLOG" "$1"
    assert_log_type "$POLLOG" "$1" 3
}
# depth_line POLICY -- the record of a nesting refusal: the scan names the limit and the byte
# where the 17th level opens (the note's 16th '[' here).
depth_line()
{
    local at
    at=$(($(grep -bo '"note": ' "$2" | head -1 | cut -d: -f1) + 8 + DEPTH - 1))
    echo "Policy $1 refused: policy: nesting deeper than $DEPTH levels at byte $at, error 0x8007000D"
}

echo "# the previous policy: serial 5 from the MP, its program ran"
write_policy "$T/mp/policy.json" serial=5 adverts="$(good_ad)"
sign_policy "$PRIV/CEN.key" "$T/mp/policy.json"
assert_exit 0 agent policy fetch
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

echo "# the hostile documents, each signed with the site's key"
sized_policy "$T/big.json" 6 $((MAX + 1))
nested_policy "$T/deep17.json" 6 $((DEPTH))
nested_policy "$T/deep100k.json" 6 100000
printf '%*s' 100000 '' | tr ' ' '[' >"$T/brackets.json"
sign_policy "$PRIV/CEN.key" "$T/brackets.json"
for f in big deep17 deep100k brackets; do
    openssl pkeyutl -verify -pubin -inkey "$KEYS/CEN.pem" -rawin -in "$T/$f.json" -sigfile "$T/$f.json.sig" >/dev/null
done
ok "openssl verifies all four with the site's key"

echo "# policy apply: one byte over 4 MiB"
assert_exit 1 agent policy apply "$T/big.json"
assert_error 0x800700DF
assert_stderr_has "$MAX"
untouched "apply 4 MiB + 1"
line=$(log_find "$POLLOG" "^Policy ${T//./\\.}/big\\.json refused: .*$MAX.*, error 0x800700DF\$")
[[ -n $line ]] || _lib_log_fail "PolicyAgent.log: big.json refused with 0x800700DF naming $MAX" "$POLLOG" "no such record"
refused_line "$line"

echo "# policy apply: nested 17 deep, 100000 deep, 100000 '['"
for f in deep17 deep100k brackets; do
    assert_exit 1 agent policy apply "$T/$f.json"
    assert_error 0x8007000D
    assert_stderr_has "nesting deeper than $DEPTH levels"
    untouched "apply $f"
done
refused_line "$(depth_line "$T/deep17.json" "$T/deep17.json")"
refused_line "$(depth_line "$T/deep100k.json" "$T/deep100k.json")"
refused_line "Policy $T/brackets.json refused: policy: nesting deeper than $DEPTH levels at byte $DEPTH, error 0x8007000D"

# at_mp NAME -- the MP (nginx) serves $T/NAME.json and its signature (with a new ETag).
at_mp()
{
    cp "$T/$1.json" "$T/mp/policy.json"
    cp "$T/$1.json.sig" "$T/mp/policy.json.sig"
    fresh_etag "$T/mp/policy.json"
}

echo "# the MP serves the 4 MiB + 1 policy: the announced length is refused"
at_mp big
assert_exit 1 agent policy fetch
assert_error 0x800700DF
untouched "fetch 4 MiB + 1"
refused_line "Policy request to $MP/policy.json failed, error 0x800700DF: $MP/policy.json: the server announced more than the $MAX bytes allowed; the applied policy stays"
assert_exit 1 agent run --once
assert_error 0x800700DF
untouched "run --once, 4 MiB + 1"

echo "# the MP serves the deep ones"
n=0
for f in deep17 deep100k brackets; do
    at_mp "$f"
    assert_exit 1 agent policy fetch
    assert_error 0x8007000D
    assert_eq "200 $(stat -c %s "$T/$f.json")" "$(status_of policy.json)" "nginx served $f whole"
    untouched "fetch $f"
    n=$((n + 1))
done
refused_line "Policy $INCOMING refused: policy: nesting deeper than $DEPTH levels at byte $DEPTH, error 0x8007000D"
refused_line "$(depth_line "$INCOMING" "$T/deep17.json")"
assert_exit 1 agent run --once
assert_error 0x8007000D
untouched "run --once, 100000 '['"

echo "# cas-faultd as the MP: a policy that never ends, one announced as 10^12 bytes, a signature that never ends"
mkdir -p "$T/fd/${DP_PREFIX#/}/sig"
cp "$T/deep17.json" "$T/fd/${DP_PREFIX#/}/sig/policy.json" # never verified: its signature never ends
cat >"$T/rules" <<RULES
$DP_PREFIX/endless/policy.json endless
$DP_PREFIX/huge/policy.json bigheader
$DP_PREFIX/sig/policy.json.sig endless
RULES
"$FAULTD" --root "$T/fd" --rules "$T/rules" --port-file "$T/faultd.port" --log "$T/faultd.log" \
    >/dev/null 2>"$T/faultd.err" &
FPID=$!
lib_on_exit "kill -TERM $FPID 2>/dev/null; wait $FPID 2>/dev/null"
for ((k = 0; k < 100; k++)); do [[ -s $T/faultd.port ]] && break; sleep 0.1; done
[[ -s $T/faultd.port ]] || fail "cas-faultd started" "$(cat "$T/faultd.err")"
FD="http://127.0.0.1:$(cat "$T/faultd.port")$DP_PREFIX"
# faultd_sent PATH -- body bytes cas-faultd sent for the last request of PATH (logged when the
# client has gone).
faultd_sent()
{
    local line="" k
    for ((k = 0; k < 100; k++)); do
        line=$(grep "^GET $1 " "$T/faultd.log" | tail -n 1 || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ -n $line ]] || fail "cas-faultd logged a request for $1" "$(tail -5 "$T/faultd.log")"
    sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$line"
}
CFG_NGINX=$CFG
for what in endless huge sig; do
    CFG=$T/agent-$what.json
    write_config --file "$CFG" management_point="\"$FD/$what/policy.json\"" site='"CEN"'
    start=$(date +%s)
    assert_exit 1 agent policy fetch
    assert_error 0x800700DF
    ((($(date +%s) - start) < 20)) || fail "the agent gave up at the limit, not at a timeout" "took $(($(date +%s) - start)) s"
    ok "the agent gave up within seconds ($what)"
    untouched "cas-faultd, $what"
done
CFG=$CFG_NGINX
refused_line "Policy request to $FD/endless/policy.json failed, error 0x800700DF: $FD/endless/policy.json: more than the $MAX bytes allowed; the applied policy stays"
sent=$(faultd_sent "$DP_PREFIX/endless/policy.json")
# At most the limit is read; what the kernel accepted beyond it is socket buffers, a few MiB.
((sent >= MAX && sent <= MAX + 16 * 1048576)) || fail "the agent stopped reading the policy at 4 MiB" "cas-faultd sent $sent bytes"
ok "the agent stopped reading the policy at 4 MiB (cas-faultd sent $sent bytes)"
refused_line "Policy request to $FD/huge/policy.json failed, error 0x800700DF: $FD/huge/policy.json: the server announced more than the $MAX bytes allowed; the applied policy stays"
sent=$(faultd_sent "$DP_PREFIX/huge/policy.json")
((sent <= 16 * 1048576)) || fail "the announced length was refused before reading" "cas-faultd sent $sent bytes"
ok "the announced length was refused before reading (cas-faultd sent $sent bytes)"
refused_line "Policy request to $FD/sig/policy.json failed, error 0x800700DF: $FD/sig/policy.json.sig: more than the 65536 bytes allowed; the applied policy stays"
sent=$(faultd_sent "$DP_PREFIX/sig/policy.json.sig")
((sent <= 16 * 1048576)) || fail "the agent stopped reading the signature at 64 KiB" "cas-faultd sent $sent bytes"
ok "the agent stopped reading the signature at 64 KiB (cas-faultd sent $sent bytes)"

echo "# no over-refusal: the limits are exact -- 16 levels deep, then exactly 4 MiB, both apply"
nested_policy "$T/deep16.json" 6 $((DEPTH - 1)) "$(good_ad)"
assert_exit 0 agent policy apply "$T/deep16.json"
assert_same_file "$T/deep16.json" "$STATE/policy/CEN.json"
sized_policy "$T/max.json" 7 "$MAX" "$(good_ad)"
at_mp max
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 7, 1 advertisement(s)"
assert_same_file "$T/max.json" "$STATE/policy/CEN.json"
assert_exit 0 agent execute CEN2A001
assert_eq 2 "$(proof_runs CEN2A001)" "serial 7's program ran"
assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's program never ran"

assert_cmtrace_logs
done_testing
