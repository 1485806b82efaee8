#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Site key change through `policy fetch`, with nginx as the management point: a key change signed
# by an unknown key is refused and the trusted key stays byte for byte; one made by `cas-site key
# rotate` and signed by the trusted key is accepted (PolicyAgent.log names both key ids, the
# trusted <SITE>.pem becomes the new key), after which a policy signed by the old key is refused
# and one signed by the new key applied; a replayed serial is refused; a key change made with the
# openssl CLI alone is accepted; an agent with no trusted key installs nothing (no trust on first
# use). The policy's conditional request is unaffected by the key-change requests.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_keychange"

make_site_key CEN
K1=$PRIV/CEN
make_package "$T/src"
mkdir -p "$T/mp"
dp_publish "$T/src" "$T/dp" CEN00091.1
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
MPLOG=$(dp_access_log "$MP")
POLLOG=$LOGS/PolicyAgent.log
KC_URL=$MP/CEN.keychange
write_config management_point="\"$MP/policy.json\""

# key_id_of PEM -- the key id as docs/formats.md defines it, computed with openssl and coreutils.
key_id_of()
{
    openssl pkey -pubin -in "$1" -outform DER | sha256sum | cut -c1-16 | tr 'a-f' 'A-F'
}

# publish_policy SERIAL KEY -- the policy at the MP, signed by KEY (private key file). nginx's ETag
# is made of the modification second and the size: wait for a new second first.
publish_policy()
{
    sleep 1.1
    write_policy "$T/mp/policy.json" serial="$1" adverts="$(advert_json id=CEN20091 package=CEN00091 version=1 locations="$DP")"
    sign_policy "$2" "$T/mp/policy.json"
}

# keychange_doc FILE SERIAL NEW_PEM [SITE] -- a key-change document made with printf and awk only.
keychange_doc()
{
    local file=$1 serial=$2 pem=$3 site=${4:-CEN} key
    key=$(awk '{ printf "%s\\n", $0 }' "$pem")
    printf '{\n  "schema": 1,\n  "type": "keychange",\n  "site": "%s",\n  "serial": %s,\n  "issued": "%s",\n  "key": "%s",\n  "key_id": "%s"\n}\n' \
        "$site" "$serial" "$(utc_time now)" "$key" "$(key_id_of "$pem")" >"$file"
}

# publish_keychange SERIAL NEW_PEM SIGNER_KEY -- at the MP: CEN.keychange, and its signature made
# with the openssl CLI exactly as for a policy.
publish_keychange()
{
    keychange_doc "$T/mp/CEN.keychange" "$1" "$2"
    sign_policy "$3" "$T/mp/CEN.keychange"
}

# kc_refused CODE [DETAIL_ERE] -- PolicyAgent.log has a record (type 3) of the key change at the
# MP refused with this code: "Key change <url> for site CEN refused: <detail>, error CODE".
kc_refused()
{
    local line
    line=$(log_find "$POLLOG" "^Key change ${KC_URL//./\\.} for site CEN refused: ${2:-.+}, error $1\$")
    [[ -n $line ]] || _lib_log_fail "PolicyAgent.log: key change refused with $1" "$POLLOG" "no such record"
    assert_log_type "$POLLOG" "$line" 3
    ok "PolicyAgent.log: $line"
}

# assert_log_match ERE -- some PolicyAgent.log record matches ERE; prints it.
assert_log_match()
{
    local line
    line=$(log_find "$POLLOG" "$1")
    [[ -n $line ]] || _lib_log_fail "PolicyAgent.log has a record matching $1" "$POLLOG" "no such record"
    ok "PolicyAgent.log: $line"
}

status_of() { awk -v p="$DP_PREFIX/$1" '$7 == p { s = $9 " " $10 } END { print s }' "$MPLOG"; }
n_requests() { dp_requests "$MP" | grep -cFx "$DP_PREFIX/$1" || true; }

ID1=$(key_id_of "$KEYS/CEN.pem")
make_key "$T/unknown"
make_key "$T/k3"
make_key "$T/k4" ecdsa

echo "# nothing published: no key change, the policy applies"
publish_policy 1 "$K1.key"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 1, 1 advertisement(s)"
assert_log_has "$POLLOG" "No key change published for site CEN at $KC_URL"
assert_eq "404" "$(status_of CEN.keychange | cut -d' ' -f1)" "nginx answered 404 for CEN.keychange"
assert_eq 0 "$(n_requests CEN.keychange.sig)" "no signature asked for a key change that is not there"

echo "# (b) a key change signed by an unknown key: refused, the trusted key unchanged"
cp "$KEYS/CEN.pem" "$T/trusted-1.pem"
publish_keychange 1 "$T/k3.pem" "$T/unknown.key"
publish_policy 2 "$K1.key"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 2"
kc_refused 0x80090006 "the signature does not verify with the key trusted for site CEN \(key id $ID1\)"
assert_same_file "$T/trusted-1.pem" "$KEYS/CEN.pem"
assert_no_file "$STATE/policy/CEN.keychange.state.json"
assert_eq "CEN.pem" "$(ls -A "$KEYS")" "nothing else in the trusted-keys folder"

echo "# (a) cas-site key rotate, published: accepted before the policy request"
rm "$T/mp/CEN.keychange" "$T/mp/CEN.keychange.sig"
assert_exit 0 "$CAS_SITE" key rotate --site CEN --key "$K1.key" --out "$T/k2"
ID2=$(key_id_of "$T/k2/CEN.pem")
assert_stdout_has "old key id:  $ID1"
assert_stdout_has "new key id:  $ID2"
assert_stdout_has "serial:      1"
K2=$T/k2/CEN
cp "$K2.keychange" "$K2.keychange.sig" "$T/mp/"
cp "$STATE/policy/CEN.json" "$T/applied-2.json"
publish_policy 3 "$K1.key" # signed by the old key
assert_exit 1 agent policy fetch
assert_error 0x80090006
assert_log_has "$POLLOG" "Key change for site CEN accepted: serial 1, key $ID1 replaced by $ID2"
assert_log_type "$POLLOG" "Key change for site CEN accepted: serial 1, key $ID1 replaced by $ID2" 1
assert_same_file "$K2.pem" "$KEYS/CEN.pem"
assert_eq 644 "$(stat -c %a "$KEYS/CEN.pem")" "the trusted key is mode 0644"
assert_eq "CEN.pem" "$(ls -A "$KEYS")" "no temporary file left in the trusted-keys folder"
log_texts "$POLLOG" | awk -v a="Key change for site CEN accepted: serial 1, key $ID1 replaced by $ID2" \
    '$0 == a { seen = 1 } seen && index($0, "Requesting policy from ") == 1 { found = 1 } END { exit !found }' ||
    _lib_log_fail "the key change came before the policy request" "$POLLOG" "no policy request after it"
ok "PolicyAgent.log: the key change came before the policy request"
assert_log_match "^Policy .* refused: the signature .* does not verify with the key trusted for site CEN \(key id $ID2\), error 0x80090006\$"
assert_same_file "$T/applied-2.json" "$STATE/policy/CEN.json"
assert_file "$STATE/policy/CEN.keychange.state.json"

echo "# a policy signed by the new key is applied"
publish_policy 3 "$K2.key"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 3"
assert_same_file "$T/mp/policy.json" "$STATE/policy/CEN.json"
assert_exit 0 agent execute CEN20091
assert_eq 1 "$(proof_runs CEN20091)" "the program of the policy signed by the new key ran"

echo "# the key change stays published: in effect, no refusal; the policy poll is still a 304"
n_refused=$(log_texts "$POLLOG" | grep -c "^Key change .* refused: " || true)
assert_exit 0 agent policy fetch
assert_stdout_has "Policy unchanged"
assert_eq "304 0" "$(status_of policy.json)" "nginx answered the policy request with 304"
assert_eq "200" "$(status_of CEN.keychange | cut -d' ' -f1)" "the key change was fetched whole"
assert_eq "$n_refused" "$(log_texts "$POLLOG" | grep -c "^Key change .* refused: " || true)" \
    "no key change refused"
assert_log_has "$POLLOG" "Key change $KC_URL for site CEN, serial 1: key $ID2 is already the trusted key"
assert_same_file "$K2.pem" "$KEYS/CEN.pem"
assert_eq 1 "$(log_count "$POLLOG" "Key change for site CEN accepted: serial 1, key $ID1 replaced by $ID2")" \
    "the key change was accepted once"

echo "# cas-site key rotate's output, checked with openssl; the next rotate follows on"
openssl pkeyutl -verify -pubin -inkey "$K1.pem" -rawin -in "$K2.keychange" -sigfile "$K2.keychange.sig" >/dev/null
ok "openssl verifies CEN.keychange with the old public key"
assert_eq "$(awk '{ printf "%s\\n", $0 }' "$K2.pem")" \
    "$(sed -n 's/^  "key": "\(.*\)",$/\1/p' "$K2.keychange")" "the document's key is the new CEN.pem"
assert_eq "$ID2" "$(sed -n 's/^  "key_id": "\(.*\)"$/\1/p' "$K2.keychange")" "key_id is the new key's id"
assert_eq 600 "$(stat -c %a "$K2.key")" "the new private key is mode 0600"
assert_exit 1 "$CAS_SITE" key rotate --site CEN --key "$K1.key" --out "$T/k2"
assert_stderr_has "already exists"
assert_same_file "$K2.pem" "$KEYS/CEN.pem"
assert_exit 0 "$CAS_SITE" key rotate --site CEN --key "$K2.key" --out "$T/k5" --type rsa
assert_stdout_has "serial:      2"
openssl pkeyutl -verify -pubin -inkey "$K2.pem" -rawin -in "$T/k5/CEN.keychange" \
    -sigfile "$T/k5/CEN.keychange.sig" >/dev/null
ok "the second rotate's document (serial 2, to RSA) verifies with the key it replaces"
assert_exit 2 "$CAS_SITE" key rotate --site CEN --out "$T/k6"
assert_no_file "$T/k6"

echo "# (c) the same serial again, signed by the trusted key, with another key: a replay"
publish_keychange 1 "$T/k3.pem" "$K2.key"
assert_exit 0 agent policy fetch
assert_stdout_has "Policy unchanged"
kc_refused 0xA0CA0003 "serial 1 is not higher than key-change serial 1 already accepted for site CEN .*"
assert_same_file "$K2.pem" "$KEYS/CEN.pem"

echo "# (e) a key change made with printf and the openssl CLI alone (to ECDSA P-256): accepted"
ID4=$(key_id_of "$T/k4.pem")
publish_keychange 2 "$T/k4.pem" "$K2.key"
openssl pkeyutl -verify -pubin -inkey "$K2.pem" -rawin -in "$T/mp/CEN.keychange" \
    -sigfile "$T/mp/CEN.keychange.sig" >/dev/null
ok "openssl verifies the key change with the trusted key"
publish_policy 4 "$T/k4.key"
assert_exit 0 agent policy fetch
assert_stdout_has "Applied policy for site CEN, serial 4"
assert_log_has "$POLLOG" "Key change for site CEN accepted: serial 2, key $ID2 replaced by $ID4"
assert_same_file "$T/k4.pem" "$KEYS/CEN.pem"
assert_eq 2 "$(sed -n 's/.*"serial":\([0-9]*\).*/\1/p' "$STATE/policy/CEN.keychange.state.json")" \
    "the key-change state holds serial 2"

echo "# (d) no trusted key for the site: nothing installed (no trust on first use)"
mkdir -p "$T/keys-empty"
write_config --file "$T/agent-d.json" management_point="\"$MP/policy.json\"" site='"CEN"' \
    trusted_keys_dir="\"$T/keys-empty\"" state_dir="\"$T/state-d\"" log_dir="\"$T/log-d\""
assert_exit 1 "$CAS_AGENT" --config "$T/agent-d.json" policy fetch
assert_error 0x800B0109
POLLOG=$T/log-d/PolicyAgent.log
kc_refused 0x800B0109 "no trusted key for site CEN .*"
assert_eq "" "$(ls -A "$T/keys-empty")" "nothing installed in the empty trusted-keys folder"
assert_no_file "$T/state-d/policy/CEN.keychange.state.json"
assert_no_file "$T/state-d/policy/CEN.json"
echo "# ... and with no site configured, no key change is even asked for"
n_kc=$(n_requests CEN.keychange)
write_config --file "$T/agent-d.json" management_point="\"$MP/policy.json\"" \
    trusted_keys_dir="\"$T/keys-empty\"" state_dir="\"$T/state-d\"" log_dir="\"$T/log-d\""
assert_exit 1 "$CAS_AGENT" --config "$T/agent-d.json" policy fetch
assert_error 0x800B0109
assert_eq "$n_kc" "$(n_requests CEN.keychange)" "no request for CEN.keychange"
assert_eq "" "$(ls -A "$T/keys-empty")" "still nothing in the empty trusted-keys folder"
POLLOG=$LOGS/PolicyAgent.log

assert_no_file "$STATE/policy/incoming.json"
assert_cmtrace_logs
assert_cmtrace_logs "$T/log-d"
done_testing
