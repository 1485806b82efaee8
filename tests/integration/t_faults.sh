#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The transfer layer against a hostile distribution point (tests/tools/cas-faultd), one fault per
# content: the exact error code and log lines when the hostile DP is the only location, the
# program never run and nothing in the cache; and a verified download from the good nginx DP when
# it is the second location. Faults a retry or a Range resume can get past must be got past.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the server this test is about.
CONFIG_DEFAULTS=(cache_dedup=false)
echo "# t_faults"

FAULTD=${CAS_FAULTD:-$(dirname "$CAS_AGENT")/tests/cas-faultd}
[[ -x $FAULTD ]] || fail "cas-faultd is built" "not found at $FAULTD (set CAS_FAULTD)"

make_site_key CEN
make_package "$T/src"
P=data/payload.bin # 3000 bytes
mkdir -p "$T/dp"
# Content ids: CEN0004X.1, one per scenario; every one is on both DPs.
SCEN=(flip cut overlong endless bigheader drip stall reset r404 r403 r500 r503 r429 norange
    etagchg loop)
declare -A CID
i=0
for s in "${SCEN[@]}"; do
    CID[$s]=$(printf 'CEN%05X.1' $((0x40 + i)))
    dp_publish "$T/src" "$T/dp" "${CID[$s]}"
    i=$((i + 1))
done
H=$PKG_HASH
dp_start "$T/dp"
GOOD=$DP_URL
path_of() { echo "$DP_PREFIX/${CID[$1]}/$P"; }

cat >"$T/rules" <<EOF
$(path_of flip) flip 100
$(path_of cut) cut 1000
$(path_of overlong) overlong 500
$(path_of endless) endless
$(path_of bigheader) bigheader
$(path_of drip) drip 100
$(path_of stall) stall 100
$(path_of reset) reset 0
$(path_of r404) status 404
$(path_of r403) status 403
$(path_of r500) status 500 times=2
$(path_of r503) status 503 retry-after=2 times=1
$(path_of r429) status 429 retry-after=1
$(path_of norange) cut 1000 times=1
$(path_of norange) norange
$(path_of etagchg) cut 1000 times=1
$(path_of etagchg) etag-change
$(path_of loop) redirect-loop
EOF
"$FAULTD" --root "$T" --rules "$T/rules" --port-file "$T/faultd.port" --log "$T/faultd.log" \
    >/dev/null 2>"$T/faultd.err" &
FPID=$!
lib_on_exit "kill -TERM $FPID 2>/dev/null; wait $FPID 2>/dev/null"
for ((k = 0; k < 100; k++)); do [[ -s $T/faultd.port ]] && break; sleep 0.1; done
[[ -s $T/faultd.port ]] || fail "cas-faultd started" "$(cat "$T/faultd.err")"
ln -s dp "$T/${DP_PREFIX#/}" # faultd serves $T: the same URL paths as nginx
BAD="http://127.0.0.1:$(cat "$T/faultd.port")$DP_PREFIX"
ok "cas-faultd listens at $BAD"

adverts=""
n=0
for s in "${SCEN[@]}"; do
    pkg=${CID[$s]%.1}
    [[ -n $adverts ]] && adverts+=","
    adverts+=$(advert_json id="A1$(printf '%03d' $n)" package="$pkg" version=1 hash="$H" locations="$BAD")
    adverts+=","
    adverts+=$(advert_json id="A2$(printf '%03d' $n)" package="$pkg" version=1 hash="$H" locations="$BAD $GOOD")
    n=$((n + 1))
done
write_policy "$T/policy.json" serial=1 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
# Slow transfers are cut after 2 s below 1000 B/s, so drip and stall fail fast.
write_config low_speed_bytes_per_second=1000 low_speed_seconds=2 connect_timeout_seconds=5
assert_exit 0 agent policy apply "$T/policy.json"

idx() {
    local k
    for k in "${!SCEN[@]}"; do
        if [[ ${SCEN[$k]} == "$1" ]]; then
            printf '%03d' "$k"
            return 0
        fi
    done
    fail "scenario $1 exists" "no such scenario"
}
# only_bad SCENARIO CODE -- the hostile DP alone: refused with CODE, nothing ran, nothing cached
only_bad()
{
    local s=$1 code=$2 a
    a="A1$(idx "$s")"
    echo "# $s: the hostile DP alone"
    assert_exit 1 agent execute "$a"
    assert_error "$code"
    assert_eq 0 "$(proof_runs "$a")" "$s: the program did not run"
    # No entry; a transient failure may leave partial state in .partial/ for resume.
    assert_no_file "$CACHE/${CID[$s]}"
    assert_no_file "$CACHE/${CID[$s]}.sums"
    assert_log_has "$LOGS/CAS.log" "Download failed for content ${CID[$s]} under context System, error $code"
}
# only_bad_ok SCENARIO -- the hostile DP alone, but the fault is one a retry or resume gets past
only_bad_ok()
{
    local s=$1 a
    a="A1$(idx "$s")"
    echo "# $s: the hostile DP alone, got past"
    assert_exit 0 agent execute "$a"
    assert_eq 1 "$(proof_runs "$a")" "$s: the program ran"
    assert_download_succeeded "${CID[$s]}"
    assert_same_tree "$T/src" "$CACHE/${CID[$s]}"
}
# with_good SCENARIO -- hostile DP first, nginx second: verified from nginx
with_good()
{
    local s=$1 a
    a="A2$(idx "$s")"
    echo "# $s: the hostile DP, then a good one"
    assert_exit 0 agent execute "$a"
    assert_eq 1 "$(proof_runs "$a")" "$s: the program ran"
    assert_download_succeeded "${CID[$s]}"
    assert_same_tree "$T/src" "$CACHE/${CID[$s]}"
    chmod -R u+w "${CACHE:?}/${CID[$s]}" && rm -rf "${CACHE:?}/${CID[$s]}" "$CACHE/${CID[$s]}.sums"
}

X=$(upper "$(file_hash "$T/src/$P")")
cp "$T/src/$P" "$T/flipped"
flip_byte "$T/flipped" 100
Y=$(upper "$(file_hash "$T/flipped")")

only_bad flip 0x80091007
assert_log_has "$LOGS/CAS.log" "Hash does not match for file $P of content ${CID[flip]} served by $BAD: expected $X, actual $Y"
with_good flip

only_bad_ok cut
assert_log_has "$LOGS/DataTransferService.log" "Resuming $BAD/${CID[cut]}/$P at byte 1000"
grep -q "GET $(path_of cut) range=bytes=1000- " "$T/faultd.log" ||
    fail "cut: the retry asked for the rest with Range" "$(grep "$(path_of cut)" "$T/faultd.log")"
ok "cut: the retry asked for the rest with Range"

# More bytes than Content-Length promised: curl stops at Content-Length; the file verifies.
only_bad_ok overlong

only_bad endless 0x800700DF
with_good endless
only_bad bigheader 0x800700DF
with_good bigheader

only_bad drip 0x80072EE2
with_good drip
only_bad stall 0x80072EE2

only_bad reset 0x80072EFF
with_good reset

only_bad r404 0x80190194
with_good r404
# 403 is permanent: the job ends at once, the good DP is never asked for the file.
echo "# r403: a 403 ends the job even with a good DP second"
assert_exit 1 agent execute "A2$(idx r403)"
assert_error 0x80190193
assert_no_file "$CACHE/${CID[r403]}"
assert_no_file "$CACHE/${CID[r403]}.sums"
assert_eq "" "$(dp_requests "$GOOD" | grep -F "${CID[r403]}/" || true)" "r403: the good DP was not asked for the file"

only_bad_ok r500
assert_eq 3 "$(grep -c "GET $(path_of r500) " "$T/faultd.log")" "r500: two 500s, then success: 3 requests"

echo "# r503: Retry-After is honoured"
start=$(date +%s.%N)
only_bad_ok r503
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
awk -v e="$elapsed" 'BEGIN { exit !(e >= 2) }' || fail "r503: waited at least the 2 s of Retry-After" "elapsed $elapsed s"
ok "r503: waited at least the 2 s of Retry-After ($elapsed s)"

only_bad r429 0x801901AD
assert_eq 3 "$(grep -c "GET $(path_of r429) " "$T/faultd.log")" "r429: three attempts, then the location is given up"

only_bad_ok norange
assert_log_has "$LOGS/DataTransferService.log" "Resuming $BAD/${CID[norange]}/$P at byte 1000 was refused (HTTP 200); starting it again"
only_bad_ok etagchg
assert_log_has "$LOGS/DataTransferService.log" "Resuming $BAD/${CID[etagchg]}/$P at byte 1000 was refused (HTTP 200); starting it again"

only_bad loop 0x80072F7C
with_good loop

assert_cmtrace_logs
done_testing
