#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# HTTPS distribution points with certificates made here by the openssl CLI: verified against
# ca_file, refused when the certificate is not trusted or names another host (0x80072F8F in
# ContentTransferManager.log, 0x87D01107 for the job), and require_https refuses http:// locations
# so that only the https one is used.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_https"

# A test CA, a DP certificate for localhost/127.0.0.1, and one for another host.
TLS=$T/tls
mkdir -p "$TLS"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" -days 2 \
    -subj "/CN=cas-agent test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null
make_cert()
{
    local name=$1 san=$2
    openssl req "${ec[@]}" -keyout "$TLS/$name.key" -out "$TLS/$name.csr" -subj "/CN=$name" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" >"$TLS/$name.ext"
    openssl x509 -req -in "$TLS/$name.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
        -out "$TLS/$name.pem" -days 2 -extfile "$TLS/$name.ext" 2>/dev/null
}
make_cert dp "DNS:localhost,IP:127.0.0.1"
make_cert other "DNS:other.example"
# A client certificate for mutual TLS, and one from a CA the DP does not trust.
make_client()
{
    local name=$1 ca=$2
    openssl req "${ec[@]}" -keyout "$TLS/$name.key" -out "$TLS/$name.csr" -subj "/CN=$name" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$TLS/$name.ext"
    openssl x509 -req -in "$TLS/$name.csr" -CA "$TLS/$ca.pem" -CAkey "$TLS/$ca.key" \
        -CAcreateserial -out "$TLS/$name.pem" -days 2 -extfile "$TLS/$name.ext" 2>/dev/null
}
openssl req -x509 "${ec[@]}" -keyout "$TLS/rogue-ca.key" -out "$TLS/rogue-ca.pem" -days 2 \
    -subj "/CN=rogue CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null
make_client agent ca
make_client rogue rogue-ca

make_site_key CEN
make_package "$T/src"
mkdir -p "$T/dp"
for c in CEN00011.1 CEN00012.1 CEN00013.1 CEN00014.1 CEN00015.1; do
    dp_publish "$T/src" "$T/dp" "$c"
done
H=$PKG_HASH
dp_start --tls "$TLS/dp.pem" "$TLS/dp.key" "$T/dp"
HTTPS=$DP_URL
dp_start --tls "$TLS/other.pem" "$TLS/other.key" "$T/dp"
WRONGHOST=$DP_URL
dp_start "$T/dp"
PLAIN=$DP_URL
dp_start --tls "$TLS/dp.pem" "$TLS/dp.key" --mtls "$TLS/ca.pem" "$T/dp"
MTLS=$DP_URL
case $HTTPS in https://localhost:*) ok "the DP is served over https ($HTTPS)" ;; *) fail "https DP" "$HTTPS" ;; esac

write_policy "$T/policy.json" serial=1 adverts="$(
    advert_json id=CEN20011 package=CEN00011 version=1 hash="$H" locations="$HTTPS"
    echo ,
    advert_json id=CEN20012 package=CEN00012 version=1 hash="$H" locations="$WRONGHOST"
    echo ,
    advert_json id=CEN20013 package=CEN00013 version=1 hash="$H" locations="$PLAIN $HTTPS"
    echo ,
    advert_json id=CEN20014 package=CEN00014 version=1 hash="$H" locations="$MTLS"
    echo ,
    advert_json id=CEN20015 package=CEN00015 version=1 hash="$H" locations="$HTTPS"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the test CA is not in the system store: the DP's certificate is refused"
write_config
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 1 agent execute CEN20011
assert_error 0x87D01107
assert_eq 0 "$(proof_runs CEN20011)" "the program did not run"
assert_not_cached CEN00011.1
grep -F "Location $HTTPS failed for the sums listing of content CEN00011.1: error 0x80072F8F" \
    "$LOGS/ContentTransferManager.log" >/dev/null ||
    fail "ContentTransferManager.log names the TLS failure (0x80072F8F)" \
        "$(_lib_tail "$LOGS/ContentTransferManager.log")"
ok "ContentTransferManager.log names the TLS failure (0x80072F8F)"

echo "# with ca_file the same DP verifies and the content runs"
write_config ca_file="\"$TLS/ca.pem\""
assert_exit 0 agent execute CEN20011
assert_eq 1 "$(proof_runs CEN20011)" "the program ran"
assert_download_succeeded CEN00011.1
assert_same_tree "$T/src" "$CACHE/CEN00011.1"

echo "# a certificate from the trusted CA for another host name is refused"
assert_exit 1 agent execute CEN20012
assert_error 0x87D01107
assert_eq 0 "$(proof_runs CEN20012)" "the program did not run"
assert_not_cached CEN00012.1
grep -F "Location $WRONGHOST failed for the sums listing of content CEN00012.1: error 0x80072F8F" \
    "$LOGS/ContentTransferManager.log" >/dev/null ||
    fail "the wrong host name is a TLS failure" "$(_lib_tail "$LOGS/ContentTransferManager.log")"
ok "the wrong host name is a TLS failure"

echo "# require_https: the http:// location is never asked, the https one serves"
write_config ca_file="\"$TLS/ca.pem\"" require_https=true
assert_exit 0 agent execute CEN20013
assert_eq 1 "$(proof_runs CEN20013)" "the program ran"
assert_download_succeeded CEN00013.1
assert_eq "" "$(dp_requests "$PLAIN")" "the plain-http DP received no request"
grep -F "Location $PLAIN is not used: require_https is set" "$LOGS/ContentTransferManager.log" \
    >/dev/null || fail "ContentTransferManager.log says why the http location is skipped" \
    "$(_lib_tail "$LOGS/ContentTransferManager.log")"
ok "ContentTransferManager.log says why the http location is skipped"
dp_requests "$HTTPS" | grep -x "$DP_PREFIX/CEN00013.1.sums" >/dev/null ||
    fail "the https DP served the listing" "$(dp_requests "$HTTPS")"
ok "the https DP served the listing"


echo "# mutual TLS: refused without a client certificate (403 ends the job), and with one from another CA"
write_config ca_file="\"$TLS/ca.pem\""
assert_exit 1 agent execute CEN20014
assert_error 0x80190193
assert_eq 0 "$(proof_runs CEN20014)" "the program did not run"
assert_not_cached CEN00014.1
write_config ca_file="\"$TLS/ca.pem\"" tls_client_cert="\"$TLS/rogue.pem\"" \
    tls_client_key="\"$TLS/rogue.key\""
assert_exit 1 agent execute CEN20014
assert_eq 0 "$(proof_runs CEN20014)" "the program did not run with a rogue client certificate"
assert_not_cached CEN00014.1
echo "# mutual TLS: accepted with the right client certificate"
write_config ca_file="\"$TLS/ca.pem\"" tls_client_cert="\"$TLS/agent.pem\"" \
    tls_client_key="\"$TLS/agent.key\""
assert_exit 0 agent execute CEN20014
assert_eq 1 "$(proof_runs CEN20014)" "the program ran"
assert_download_succeeded CEN00014.1

echo "# the proxy key is used: a proxy where nothing listens makes the DP unreachable"
write_config ca_file="\"$TLS/ca.pem\"" proxy="\"http://127.0.0.1:$(dp_url_dead | sed 's|.*:\([0-9]*\)/.*|\1|')\""
assert_exit 1 agent execute CEN20015
assert_error 0x87D01107
assert_not_cached CEN00015.1

echo "# tls_pinned_public_key: another key's pin is refused as a TLS failure, the DP's own accepted"
pin_of() { openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64; }
write_config ca_file="\"$TLS/ca.pem\"" tls_pinned_public_key="\"sha256//$(pin_of "$TLS/other.pem")\""
assert_exit 1 agent execute CEN20015
assert_error 0x87D01107
assert_eq 0 "$(proof_runs CEN20015)" "the program did not run with the wrong pin"
assert_not_cached CEN00015.1
grep -F "Location $HTTPS failed for the sums listing of content CEN00015.1: error 0x80072F8F" \
    "$LOGS/ContentTransferManager.log" >/dev/null ||
    fail "a pin mismatch is a TLS failure" "$(_lib_tail "$LOGS/ContentTransferManager.log")"
ok "a pin mismatch is a TLS failure"
write_config ca_file="\"$TLS/ca.pem\"" tls_pinned_public_key="\"sha256//$(pin_of "$TLS/dp.pem")\""
assert_exit 0 agent execute CEN20015
assert_eq 1 "$(proof_runs CEN20015)" "the program ran with the DP's pin"
assert_download_succeeded CEN00015.1

echo "# HTTP/2: nginx offers it over TLS and every request of the agent used it"
log=$(dp_access_log "$HTTPS")
n_all=$(grep -c '"GET ' "$log")
n_h2=$(grep -c '"GET [^ ]* HTTP/2.0"' "$log")
[[ $n_all -gt 0 && $n_all -eq $n_h2 ]] ||
    fail "every request to the https DP was HTTP/2" "$n_h2 of $n_all: $(tail -3 "$log")"
ok "every request to the https DP was HTTP/2 ($n_h2 of $n_all)"

assert_no_partial
assert_cmtrace_logs
done_testing
