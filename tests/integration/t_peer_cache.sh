#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Peer cache: agent A's cache, served by nginx with the rules of packaging/nginx-peer-cache.conf
# (taken from that file, so the shipped snippet itself is checked), is a distribution point for
# agent B. Committed entries are served, the agent's private dot-names (.partial, .lock, .locks,
# .index.json) are refused by the snippet's rule under every spelling, nothing but GET/HEAD is
# allowed, no listings. B downloads, verifies and runs content from the peer alone. A file changed
# in A's cache: with [peer, DP] B gets the good copy from the DP and CAS.log names the peer; with
# only the peer B refuses with 0x80091007 and the program does not run.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_peer_cache"

umask 022

SNIPPET=$(dirname "${BASH_SOURCE[0]}")/../../packaging/nginx-peer-cache.conf
SNIPPET=$(realpath "$SNIPPET")
PEER_PREFIX=/ccmcache

# use_agent a|b -- point the harness ($CFG, $CACHE, $STATE, $LOGS) at agent A's or B's folders.
# Both trust the same site key ($KEYS).
use_agent()
{
    CFG=$T/$1/agent.json
    CACHE=$T/$1/cache
    STATE=$T/$1/state
    LOGS=$T/$1/log
}

# peer_start DOCROOT -- serve DOCROOT with the snippet's /ccmcache/ location block on a free
# loopback port (lib.sh's dp_start with --location); sets PEER_URL and PEER_DIR. As root the
# workers run as the unprivileged user of Debian's nginx (www-data) when it can reach DOCROOT, as
# the snippet recommends; otherwise as the test's user. Call it directly, never inside $( ).
peer_start()
{
    local docroot block dp_url=${DP_URL:-} dp_dir=${DP_DIR:-}
    docroot=$(realpath "$1")
    block=$(sed -n "/^    location ${PEER_PREFIX//\//\\/}\/ {/,/^    }/p" "$SNIPPET")
    [[ -n $block ]] || fail "the snippet has a 'location $PEER_PREFIX/ {' block" "$SNIPPET"
    grep -Fx "        alias /var/cache/cas-agent/;" <<<"$block" >/dev/null ||
        fail "the snippet serves /var/cache/cas-agent/" "$block"
    printf '%s\n' "${block//"        alias /var/cache/cas-agent/;"/"        alias $docroot/;"}" \
        >"$T/peer-location.conf"
    LIB_QUIET=1 dp_start ${PEER_USER:+--user "$PEER_USER"} \
        --location "$T/peer-location.conf" "$PEER_PREFIX" "$docroot"
    PEER_URL=$DP_URL
    PEER_DIR=$DP_DIR
    DP_URL=$dp_url
    DP_DIR=$dp_dir
    echo "# peer $PEER_URL serves $(_lib_show "$docroot") (workers as ${PEER_USER:-$(id -un)})"
}

# http_code [CURL ARGS...] URL -- the status code curl got ("000": no answer).
http_code()
{
    curl -s --max-time 5 -o "$T/body" -w '%{http_code}' "$@" || true
}

# assert_served PATH FILE -- GET PEER/PATH is 200 with FILE's bytes.
assert_served()
{
    local code
    code=$(http_code "$PEER_URL/$1")
    [[ $code == 200 ]] || fail "the peer serves $1" "HTTP $code" "$(_lib_tail "$PEER_DIR/error.log" 5)"
    cmp -s "$T/body" "$2" || fail "the peer serves $1 as stored" "$(cmp "$T/body" "$2" 2>&1 || true)"
    ok "the peer serves $1 (200, the bytes of $(_lib_show "$2"))"
}

# assert_refused_by_rule PATH [CURL ARGS...] -- PEER/PATH gets 403 or 404 without the secret, and
# nginx's error log says the snippet's rule refused it (not a file mode, not a missing file).
assert_refused_by_rule()
{
    local path=$1 code n
    shift
    n=$(grep -c "access forbidden by rule" "$PEER_DIR/error.log" || true)
    code=$(http_code "$@" "$PEER_URL/$path")
    [[ $code == 403 || $code == 404 ]] || fail "the peer refuses $path" "HTTP $code" "$(head -c 300 "$T/body")"
    if grep -Fq "$SECRET" "$T/body"; then
        fail "the peer does not reveal $path" "the body holds the private bytes"
    fi
    [[ $(grep -c "access forbidden by rule" "$PEER_DIR/error.log" || true) -gt $n ]] ||
        fail "the snippet's rule refuses $path" "no new 'access forbidden by rule' in nginx's error log" \
            "$(_lib_tail "$PEER_DIR/error.log" 5)"
    ok "the peer refuses $path${*:+ ($*)} by rule (HTTP $code)"
}

make_site_key CEN
make_package "$T/src"
# A package file whose name starts with a dot is content like any other: the peer serves it.
mkdir -p "$T/src/.config"
echo "colour=blue" >"$T/src/.config/settings.ini"
P=data/payload.bin

# Three versions of the same package on the real DP: B needs content ids that differ in what is
# wrong with A's copy.
C1=CEN00002.1
C2=CEN00002.2
C3=CEN00002.3
mkdir -p "$T/dp"
for c in "$C1" "$C2" "$C3"; do
    dp_publish "$T/src" "$T/dp" "$c"
done
H=$PKG_HASH

# The whole shipped file is a valid server block for nginx (as Debian includes it, inside http{}).
mkdir -p "$T/nginx-check"
{
    echo "pid $T/nginx-check/nginx.pid;"
    echo "error_log $T/nginx-check/error.log;"
    echo "events { worker_connections 16; }"
    echo "http {"
    echo "  access_log off;"
    _lib_nginx_temp_paths "$T/nginx-check" | sed 's/^/  /'
    echo "  include $SNIPPET;"
    echo "}"
} >"$T/nginx-check/nginx.conf"
assert_exit 0 "$NGINX" -t -p "$T/nginx-check" -e "$T/nginx-check/error.log" -c "$T/nginx-check/nginx.conf"

dp_start "$T/dp"
DP=$DP_URL

echo "# a. agent A downloads $C1, $C2 and $C3 from the DP"
use_agent a
mkdir -p "$T/a"
write_config --file "$CFG"
write_policy "$T/a/policy.json" serial=1 adverts="$(
    advert_json id=CEN20001 version=1 hash="$H" locations="$DP"
    echo ,
    advert_json id=CEN20002 version=2 hash="$H" locations="$DP"
    echo ,
    advert_json id=CEN20003 version=3 hash="$H" locations="$DP"
)"
sign_policy "$PRIV/CEN.key" "$T/a/policy.json"
assert_exit 0 agent policy apply "$T/a/policy.json"
# A runs under a closed umask: its committed entries must still be 0755/0444 (the agent sets
# them); only cache_dir itself is opened by hand, as the snippet says.
for c in "$C1" "$C2" "$C3"; do
    assert_exit 0 bash -c 'umask 077 && exec "$@"' umask077 "$CAS_AGENT" --config "$CFG" download "$c"
    assert_download_succeeded "$c"
    assert_same_tree "$T/src" "$CACHE/$c"
    assert_same_file "$T/dp/$c.sums" "$CACHE/$c.sums"
done
assert_no_partial
A_CACHE=$CACHE

echo "# b. nginx with the snippet's rules serves A's cache"
# The agent's private names, made present where the agent has not (yet) made them, and probes
# beside them holding a secret, so that a refusal is the rule's doing and not a missing file. A
# never runs again, and nothing the agent wrote is overwritten.
SECRET="private-$RANDOM-$RANDOM"
[[ -d $A_CACHE/.partial ]] || fail "A's cache has .partial/" "$(ls -la "$A_CACHE")"
[[ -f $A_CACHE/.lock ]] || fail "A's cache has .lock" "$(ls -la "$A_CACHE")"
[[ -e $A_CACHE/.index.json ]] || echo "{\"$SECRET\": 1}" >"$A_CACHE/.index.json"
[[ -e $A_CACHE/.locks ]] || mkdir -m 0700 "$A_CACHE/.locks"
[[ ! -e $A_CACHE/.partial/$C1 ]] || fail "A left nothing staged for $C1" "$(ls -la "$A_CACHE/.partial")"
mkdir -p "$A_CACHE/.partial/$C1/$C1"
echo "$SECRET" >"$A_CACHE/.partial/$C1/$C1/install.sh"
echo "$SECRET" >"$A_CACHE/.locks/peer-probe"
echo "$SECRET" >"$A_CACHE/.partial/secret"
echo "$SECRET" >"$A_CACHE/.peer-probe"
chmod 0644 "$A_CACHE/.partial/secret" "$A_CACHE/.peer-probe"

# As root, serve as Debian's nginx does: workers as www-data, which must reach the cache through
# $T (mktemp makes it 0700; the snippet's contract is search permission down to cache_dir).
PEER_USER=""
if [[ $(id -u) -eq 0 ]]; then
    PEER_USER=www-data
    getent passwd "$PEER_USER" >/dev/null || PEER_USER=nobody
    chmod 0711 "$T" "$T/a"
    chmod 0755 "$A_CACHE"
    if ! command -v runuser >/dev/null; then
        echo "# note: no runuser to check what $PEER_USER can reach; workers run as root"
        PEER_USER=root
    elif ! runuser -u "$PEER_USER" -- test -r "$A_CACHE/$C1.sums"; then
        echo "# note: $PEER_USER cannot reach $(_lib_show "$A_CACHE") (a parent of \$T is closed); workers run as root"
        PEER_USER=root
    fi
fi
if [[ -n $PEER_USER && $PEER_USER != root ]]; then
    # What the snippet's comments promise about the cache's modes, seen by that user.
    for f in "$C1.sums" "$C1/install.sh" "$C1/$P" "$C1/docs/read me.txt" "$C1/.config/settings.ini"; do
        runuser -u "$PEER_USER" -- test -r "$A_CACHE/$f" ||
            fail "$PEER_USER can read $f in A's cache" "$(ls -la "$A_CACHE/$f")"
    done
    ok "$PEER_USER can read committed entries ($C1.sums, the files, a dot-file inside $C1/)"
    for f in .lock .locks/peer-probe ".partial/$C1/$C1/install.sh"; do
        if runuser -u "$PEER_USER" -- cat "$A_CACHE/$f" >/dev/null 2>&1; then
            fail "$PEER_USER cannot read $f in A's cache" "$(ls -la "$A_CACHE/$f")"
        fi
    done
    ok "$PEER_USER cannot read .lock, .locks/ nor what is staged in .partial/"
fi

peer_start "$A_CACHE"
PEER=$PEER_URL
assert_served "$C1.sums" "$T/dp/$C1.sums"
assert_served "$C1/$P" "$T/src/$P"
assert_served "$C1/docs/read%20me.txt" "$T/src/docs/read me.txt"
assert_served "$C1/.config/settings.ini" "$T/src/.config/settings.ini"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -I "$PEER/$C1.sums" || true)
assert_eq 200 "$code" "HEAD $C1.sums is 200"
ctype=$(curl -s --max-time 5 -o /dev/null -w '%{content_type}' "$PEER/$C1.sums" || true)
assert_eq text/plain "$ctype" "$C1.sums is served as text/plain"
gz=$(curl -s --max-time 5 -D - -o /dev/null -H 'Accept-Encoding: gzip' "$PEER/$C1.sums" | tr -d '\r' |
    grep -ic '^content-encoding:' || true)
assert_eq 0 "$gz" "$C1.sums is served as stored even to a client that accepts gzip"

assert_refused_by_rule .lock
assert_refused_by_rule .lock -I
assert_refused_by_rule .index.json
assert_refused_by_rule .peer-probe
assert_refused_by_rule .locks/
assert_refused_by_rule .locks/peer-probe
assert_refused_by_rule .partial/
assert_refused_by_rule .partial/secret
assert_refused_by_rule ".partial/$C1/$C1/install.sh"
# Other spellings of the same names: nginx resolves them before matching locations.
assert_refused_by_rule "$C1/../.partial/secret" --path-as-is
assert_refused_by_rule "$C1/%2E%2E/.lock" --path-as-is
assert_refused_by_rule "%2Epartial/secret"
assert_refused_by_rule "%2elock"
assert_refused_by_rule "/.partial/secret" --path-as-is
assert_refused_by_rule "./.lock" --path-as-is

# A link planted in an entry (the agent never makes one) is not followed, even to a readable file.
echo "$SECRET" >"$T/outside.txt"
chmod 0644 "$T/outside.txt"
ln -s "$T/outside.txt" "$A_CACHE/$C1/docs/planted.txt"
code=$(http_code "$PEER/$C1/docs/planted.txt")
[[ $code == 403 || $code == 404 ]] || fail "the peer does not follow a planted link" "HTTP $code"
if grep -Fq "$SECRET" "$T/body"; then
    fail "the peer does not follow a planted link" "the body holds the linked file's bytes"
fi
ok "the peer does not follow a link planted in an entry (HTTP $code)"
rm "$A_CACHE/$C1/docs/planted.txt"

for path in "" "$C1/" "$C1/data/"; do
    code=$(http_code "$PEER/$path")
    [[ $code == 403 || $code == 404 ]] || fail "no listing of /$path" "HTTP $code" "$(head -c 300 "$T/body")"
    if grep -Fq -e "$C1" -e payload "$T/body"; then
        fail "no listing of /$path" "the body names the cache's files"
    fi
    ok "no listing of $PEER_PREFIX/$path (HTTP $code)"
done

for method in PUT DELETE POST; do
    code=$(http_code -X "$method" --data-binary @"$T/src/$P" "$PEER/$C1.sums")
    assert_eq 403 "$code" "$method $C1.sums is refused (403)"
done
assert_same_file "$T/dp/$C1.sums" "$A_CACHE/$C1.sums"

echo "# c. agent B downloads $C1 from the peer alone, verifies and runs it"
use_agent b
mkdir -p "$T/b"
write_config --file "$CFG"
write_policy "$T/b/policy.json" serial=1 adverts="$(
    advert_json id=CEN20011 version=1 hash="$H" locations="$PEER"
    echo ,
    advert_json id=CEN20012 version=2 hash="$H" locations="$PEER $DP"
    echo ,
    advert_json id=CEN20013 version=3 hash="$H" locations="$PEER"
)"
sign_policy "$PRIV/CEN.key" "$T/b/policy.json"
assert_exit 0 agent policy apply "$T/b/policy.json"
dp_before=$(dp_requests "$DP" | wc -l)
assert_exit 0 agent execute CEN20011
assert_eq 1 "$(proof_runs CEN20011)" "B's program ran"
assert_eq "ran CEN20011 cwd=$(realpath "$CACHE/$C1")" "$(cat "$PROOF/ran-CEN20011")" \
    "B's program ran in B's cache"
assert_download_succeeded "$C1"
assert_same_tree "$T/src" "$CACHE/$C1"
assert_same_file "$T/dp/$C1.sums" "$CACHE/$C1.sums"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $PEER chosen for the sums listing of content $C1"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $PEER chosen for file $P of content $C1"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $PEER chosen for file .config/settings.ini of content $C1"
dp_requests "$PEER" | grep -x "$PEER_PREFIX/$C1/$P" >/dev/null ||
    fail "the peer's access log shows $C1/$P" "$(dp_requests "$PEER")"
ok "the peer's access log shows $C1/$P"
assert_eq "$dp_before" "$(dp_requests "$DP" | wc -l)" "B asked nothing of the real DP"

echo "# d. a file changed in A's cache"
# B would otherwise copy the unchanged files from its own entry of the same package (dedup)
# instead of asking anyone: remove it, so the changed file really comes from the peer.
use_agent b
assert_exit 0 agent cache delete "$C1"
tamper()
{
    local f=$A_CACHE/$1/$P
    chmod u+w "$f"
    flip_byte "$f" 1000
    chmod 0444 "$f"
}
if [[ $(id -u) -ne 0 && ! -O $A_CACHE/$C2/$P ]]; then
    echo "# skipped: not root and not the owner of A's cache files, cannot change them"
else
    tamper "$C2"
    tamper "$C3"
    X=$(upper "$(file_hash "$T/src/$P")")
    Y=$(upper "$(file_hash "$A_CACHE/$C2/$P")")
    [[ $X != "$Y" ]] || fail "the tampering changed the file's hash"
    code=$(http_code "$PEER/$C2/$P")
    assert_eq 200 "$code" "the peer serves its changed copy of $C2/$P"

    echo "# [peer, DP]: the good copy comes from the DP"
    assert_exit 0 agent execute CEN20012
    assert_eq 1 "$(proof_runs CEN20012)" "B's program ran"
    WARN="Hash does not match for file $P of content $C2 served by $PEER: expected $X, actual $Y"
    assert_log_has "$LOGS/CAS.log" "$WARN"
    assert_log_type "$LOGS/CAS.log" "$WARN" 2
    assert_log_lacks "$LOGS/CAS.log" \
        "Hash does not match for file $P of content $C2 served by $DP: expected $X, actual $Y"
    assert_log_has "$LOGS/ContentTransferManager.log" "Location $PEER chosen for the sums listing of content $C2"
    assert_log_has "$LOGS/ContentTransferManager.log" "Location $DP chosen for file $P of content $C2"
    assert_log_lacks "$LOGS/ContentTransferManager.log" "Location $PEER chosen for file $P of content $C2"
    assert_download_succeeded "$C2"
    assert_same_tree "$T/src" "$CACHE/$C2"
    dp_requests "$DP" | grep -x "$DP_PREFIX/$C2/$P" >/dev/null ||
        fail "the DP served $C2/$P to B" "$(dp_requests "$DP")"
    ok "the DP served $C2/$P to B"

    echo "# [peer]: refused, the program does not run"
    E=$(upper "$H")
    A=$(upper "$(package_hash "$A_CACHE/$C3")")
    [[ $E != "$A" ]] || fail "the tampering changed the package hash"
    assert_exit 0 agent cache delete "$C2" # (dedup, as above)
    assert_exit 1 agent execute CEN20013
    assert_error 0x80091007
    assert_eq 0 "$(proof_runs CEN20013)" "B's program did not run"
    assert_log_has "$LOGS/CAS.log" \
        "Hash does not match for file $P of content $C3 served by $PEER: expected $X, actual $Y"
    assert_download_mismatch "$C3" "$E" "$A"
    assert_not_available "$C3" CEN20013
    assert_not_cached "$C3"
fi

assert_no_partial
assert_cmtrace_logs "$T/a/log"
assert_cmtrace_logs "$T/b/log"
done_testing
