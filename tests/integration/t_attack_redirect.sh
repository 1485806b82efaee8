#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: a hostile redirect. The policy is genuine; the distribution point answers with 302s:
# from https to http (a downgrade where the administrator set require_https), to file:// (to make
# the agent read a local file) or ftp://, in a chain longer than 5 or a loop, and to another host
# or port. Defence: libcurl follows at most 5 redirects, only to http/https, only to https with
# require_https (agent/transfer_curl.c); whatever a redirect leads to is still checked against the
# signed hashes.
# Asserts: 0x80072F7C for the downgrade (listing and file) with require_https, for file:// and
# ftp:// always, for 6 redirects and a loop; CAS.log / ContentTransferManager.log name the location
# and the code; nothing run, no entry, nothing of the attacker (the file:// target carries the
# marker) in the cache, the previous policy (serial 9) in force byte for byte. Not over-refused:
# the same downgrade is followed without require_https, exactly 5 redirects are followed, and a
# redirect to another host (127.0.0.2) or another port is followed (by design: the bytes are
# verified by hash; a tampered file there is refused with 0x80091007).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_redirect"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the redirecting server.
CONFIG_DEFAULTS=(cache_dedup=false)
FAULTD=${CAS_FAULTD:-$(dirname "$CAS_AGENT")/tests/cas-faultd}
[[ -x $FAULTD ]] || fail "cas-faultd is built" "not found at $FAULTD (set CAS_FAULTD)"

# A test CA and a certificate for localhost/127.0.0.1 (as t_https.sh makes them).
TLS=$T/tls
mkdir -p "$TLS"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" -days 2 \
    -subj "/CN=cas-agent test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req "${ec[@]}" -keyout "$TLS/dp.key" -out "$TLS/dp.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS/dp.ext"
openssl x509 -req -in "$TLS/dp.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
    -out "$TLS/dp.pem" -days 2 -extfile "$TLS/dp.ext" 2>/dev/null
CA="\"$TLS/ca.pem\""

write_config ca_file="$CA"
make_site_key CEN
make_package "$T/src"
P=data/payload.bin
IDS=(CEN00002.1 CEN00071.1 CEN00072.1 CEN00073.1 CEN00074.1 CEN00075.1 CEN00076.1 CEN00077.1
    CEN00078.1 CEN00079.1 CEN0007A.1 CEN0007B.1)
mkdir -p "$T/good"
for c in "${IDS[@]}"; do
    dp_publish "$T/src" "$T/good" "$c"
done
H=$PKG_HASH S=$PKG_SIZE
dp_start "$T/good"
GOOD=$DP_URL
GOOD_HOSTPORT=${GOOD#http://}
GOOD_HOSTPORT=${GOOD_HOSTPORT%%/*}

# The https DP: CEN00071.1 (listing and files) and CEN00072.1's files answer 302 to the same path
# on the plain-http DP; everything else is served.
cat >"$T/https-locations" <<NGINX
    location $DP_PREFIX/CEN00071.1 { return 302 http://$GOOD_HOSTPORT\$request_uri; }
    location $DP_PREFIX/CEN00072.1/ { return 302 http://$GOOD_HOSTPORT\$request_uri; }
    location $DP_PREFIX/ { alias $T/good/; }
NGINX
dp_start --tls "$TLS/dp.pem" "$TLS/dp.key" --location "$T/https-locations" "$DP_PREFIX" "$T/good"
HTTPS=$DP_URL

# start_faultd NAME BIND ROOT RULES -- a cas-faultd; sets FD_URL.
start_faultd()
{
    local name=$1 bind=$2 root=$3 rules=$4 k pid
    "$FAULTD" --bind "$bind" --root "$root" --rules "$rules" --port-file "$T/$name.port" \
        --log "$T/$name.log" >/dev/null 2>"$T/$name.err" &
    pid=$!
    lib_on_exit "kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null"
    for ((k = 0; k < 100; k++)); do [[ -s $T/$name.port ]] && break; sleep 0.1; done
    [[ -s $T/$name.port ]] || fail "cas-faultd $name started on $bind" "$(cat "$T/$name.err")"
    FD_URL="http://$bind:$(cat "$T/$name.port")$DP_PREFIX"
    ok "cas-faultd $name listens at $FD_URL"
}

# Another host: 127.0.0.2 serves the genuine files, but CEN0007A.1's payload is the attacker's.
mkdir -p "$T/other"
cp -R "$T/good" "$T/other/${DP_PREFIX#/}"
{ printf '%s\n' "$ATK_MARK"; head -c 3000 /dev/urandom; } | head -c 3000 >"$T/other/${DP_PREFIX#/}/CEN0007A.1/$P"
: >"$T/other.rules"
start_faultd other 127.0.0.2 "$T/other" "$T/other.rules"
OTHER=$FD_URL

# The redirecting DP (plain http). /hN/... are hops of a chain; /real/... serves the file itself.
printf '%s\n' "$ATK_MARK" >"$T/secret"
mkdir -p "$T/fd"
cp -R "$T/good" "$T/fd/${DP_PREFIX#/}"
mkdir -p "$T/fd/real/CEN00075.1/data"
cp "$T/src/$P" "$T/fd/real/CEN00075.1/$P"
chain()
{
    local c=$1 n=$2 k from=$DP_PREFIX/$1/$P
    for ((k = 1; k < n; k++)); do
        echo "$from redirect /h$k/$c/$P"
        from=/h$k/$c/$P
    done
    echo "$from redirect /real/CEN00075.1/$P"
}
{
    echo "$DP_PREFIX/CEN00073.1.sums redirect file://$T/secret"
    echo "$DP_PREFIX/CEN00074.1/$P redirect ftp://127.0.0.1:21/$P"
    echo "$DP_PREFIX/CEN0007B.1/$P redirect file://$T/secret"
    chain CEN00075.1 5
    chain CEN00076.1 6
    echo "$DP_PREFIX/CEN00077.1/$P redirect-loop"
    echo "$DP_PREFIX/CEN00078.1.sums redirect $OTHER/CEN00078.1.sums"
    echo "$DP_PREFIX/CEN00078.1/$P redirect $OTHER/CEN00078.1/$P"
    echo "$DP_PREFIX/CEN00079.1/$P redirect $GOOD/CEN00079.1/$P"
    echo "$DP_PREFIX/CEN0007A.1/$P redirect $OTHER/CEN0007A.1/$P"
} >"$T/fd.rules"
start_faultd fd 127.0.0.1 "$T/fd" "$T/fd.rules"
REDIR=$FD_URL

adverts=$(advert_json id=CEN20001 package=CEN00002 version=1 hash="$H" size="$S" locations="$GOOD")
for c in CEN00071.1 CEN00072.1; do
    adverts+=,$(advert_json id="AD${c%.1}" package="${c%.1}" version=1 hash="$H" size="$S" locations="$HTTPS")
done
for c in "${IDS[@]:3}"; do
    adverts+=,$(advert_json id="AD${c%.1}" package="${c%.1}" version=1 hash="$H" size="$S" locations="$REDIR")
done
write_policy "$T/policy.json" serial=9 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 9 applied, CEN20001 ran"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
atk_snapshot 9

# atk_partial_genuine -- whatever a refused job keeps in staging for resume is genuine: files
# placed in the staging content folder equal the source, part files are prefixes of a source file.
atk_partial_genuine()
{
    local f rel n=0 g size good
    while IFS= read -r -d '' f; do
        rel=${f#"$CACHE/.partial/"}
        case $rel in
        *.json | *.lock) continue ;;
        CEN000??.1/CEN000??.1/*)
            n=$((n + 1))
            cmp -s "$f" "$T/src/${rel#*/*/}" ||
                fail "a file kept in staging is the genuine one" "$(_lib_show "$f")"
            ;;
        *)
            n=$((n + 1))
            size=$(stat -c %s "$f")
            good=0
            while IFS= read -r -d '' g; do
                if [[ $size -le $(stat -c %s "$g") ]] && cmp -s -n "$size" "$f" "$g"; then
                    good=1
                fi
            done < <(find "$T/src" -type f -print0)
            [[ $good -eq 1 ]] || fail "a part file kept in staging is a prefix of a genuine file" \
                "$(_lib_show "$f"): $size bytes"
            ;;
        esac
    done < <(find "$CACHE/.partial" -type f -print0 2>/dev/null)
    ok "the $n file(s) kept in staging for resume hold only genuine bytes"
}

# refused C CODE WHAT LOC -- advert ADC refused with CODE; ContentTransferManager.log names
# location LOC failing for WHAT ("the sums listing", or "a file": whichever file of the package
# the parallel transfers reach first, since the first redirect refused drops the location) with
# 0x80072F7C.
refused()
{
    local c=$1 code=$2 what=$3 loc=$4 ad="AD${1%.1}" f found=""
    local -a whats=("$what")
    if [[ $what == "a file" ]]; then
        whats=()
        while IFS= read -r -d '' f; do whats+=("${f#"$T/src/"}"); done < <(find "$T/src" -type f -print0)
    fi
    assert_exit 1 agent execute "$ad"
    assert_error "$code"
    atk_nothing_ran "$ad"
    assert_log_has "$LOGS/CAS.log" "Download failed for content $c under context System, error $code"
    assert_log_has "$LOGS/execmgr.log" "Content $c is not available for program install.sh, error $code"
    for f in "${whats[@]}"; do
        if log_texts "$LOGS/ContentTransferManager.log" |
            grep -F "Location $loc failed for $f of content $c: error 0x80072F7C (" >/dev/null; then
            found=$f
        fi
    done
    [[ -n $found ]] ||
        fail "ContentTransferManager.log: location $loc failed for $what of $c with 0x80072F7C" \
            "$(_lib_tail "$LOGS/ContentTransferManager.log" 6)"
    ok "ContentTransferManager.log: location $loc failed for $found of $c with 0x80072F7C"
    assert_no_file "$CACHE/$c"
    assert_no_file "$CACHE/$c.sums"
    atk_partial_genuine
    atk_no_marker
}

echo "# require_https: an https DP redirecting a file to http"
write_config ca_file="$CA" require_https=true
refused CEN00072.1 0x80072F7C "a file" "$HTTPS"
assert_eq "" "$(dp_requests "$GOOD" | grep -F CEN00072.1 || true)" \
    "the http DP the redirect pointed at was never asked"
write_config ca_file="$CA"

echo "# a file redirected to ftp:// or file:// (refused without require_https too)"
refused CEN00074.1 0x80072F7C "a file" "$REDIR"
refused CEN0007B.1 0x80072F7C "a file" "$REDIR"

echo "# more than 5 redirects: a chain of 6, and a loop"
refused CEN00076.1 0x80072F7C "a file" "$REDIR"
assert_eq 6 "$(grep -c -e "^GET $DP_PREFIX/CEN00076.1/$P " -e "^GET /h[0-9]/CEN00076.1/$P " "$T/fd.log")" \
    "the agent asked for the path and 5 of its redirects, not the 6th"
refused CEN00077.1 0x80072F7C "a file" "$REDIR"
n=$(grep -c "^GET $DP_PREFIX/CEN00077.1/$P" "$T/fd.log")
((n <= 3 * 6)) || fail "the loop was given up after 5 redirects per attempt" "$n requests"
ok "the loop was given up after 5 redirects per attempt ($n requests)"

echo "# not over-refused"
echo "# without require_https the https -> http redirect is followed (the bytes are verified anyway)"
good()
{
    local c=$1 ad="AD${1%.1}"
    assert_exit 0 agent execute "$ad"
    assert_eq 1 "$(proof_runs "$ad")" "the program of $ad ran"
    assert_download_succeeded "$c"
    assert_same_tree "$T/src" "$CACHE/$c"
    atk_no_marker
}
good CEN00072.1
dp_requests "$GOOD" | grep -qxF "$DP_PREFIX/CEN00072.1/$P" ||
    fail "the redirect led to the http DP" "$(dp_requests "$GOOD" | grep CEN00072.1)"
ok "the redirect led to the http DP"
echo "# exactly 5 redirects are followed"
good CEN00075.1
grep -q "^GET /real/CEN00075.1/$P .*status=200" "$T/fd.log" ||
    fail "the 5th redirect's target served the file" "$(grep CEN00075.1 "$T/fd.log")"
ok "the 5th redirect's target served the file"
echo "# a redirect to another host (127.0.0.2) and to another port is followed, by design"
good CEN00078.1
grep -q "^GET $DP_PREFIX/CEN00078.1/$P .*status=200" "$T/other.log" ||
    fail "127.0.0.2 served the file" "$(cat "$T/other.log")"
ok "127.0.0.2 served the file"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $REDIR chosen for file $P of content CEN00078.1"
good CEN00079.1
dp_requests "$GOOD" | grep -qxF "$DP_PREFIX/CEN00079.1/$P" ||
    fail "the other port served the file" "$(dp_requests "$GOOD" | grep CEN00079.1)"
ok "the other port served the file"
echo "# ... and what another host serves is still checked: a tampered file there is refused"
assert_exit 1 agent execute ADCEN0007A
assert_error 0x80091007
atk_nothing_ran ADCEN0007A
X=$(upper "$(file_hash "$T/src/$P")")
Y=$(upper "$(file_hash "$T/other/${DP_PREFIX#/}/CEN0007A.1/$P")")
# The warning names the location from the policy, not the host the redirect led to.
assert_log_has "$LOGS/CAS.log" \
    "Hash does not match for file $P of content CEN0007A.1 served by $REDIR: expected $X, actual $Y"
assert_no_file "$CACHE/CEN0007A.1"
assert_no_file "$CACHE/CEN0007A.1.sums"
assert_no_file "$CACHE/.partial/CEN0007A.1"
atk_no_marker

echo "# after the attacks"
ATK_NEW_ENTRIES=$(for c in CEN00072.1 CEN00075.1 CEN00078.1 CEN00079.1; do echo "$c 3 $S"; done)
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"

echo "# the sums listing redirected: https -> http with require_https, and to file://"
write_config ca_file="$CA" require_https=true
refused CEN00071.1 0x80072F7C "the sums listing" "$HTTPS"
assert_eq "" "$(dp_requests "$GOOD" | grep -F CEN00071.1 || true)" \
    "the http DP the redirect pointed at was never asked"
write_config ca_file="$CA"
refused CEN00073.1 0x80072F7C "the sums listing" "$REDIR"
echo "# without require_https the listing's downgrade is followed"
good CEN00071.1

ATK_NEW_ENTRIES+=$'\n'"CEN00071.1 3 $S"
atk_previous_in_force CEN00002.1
assert_cmtrace_logs
done_testing
