#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Locations are tried in order: a dead DP, a DP serving a tampered file, or a DP serving an altered
# listing before a good DP still ends in a verified download from the good one; the warning names
# the bad DP. With no usable location at all: 0x80190194 (404 everywhere) or 0x87D01107 (nothing
# reachable).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the server this test is about.
CONFIG_DEFAULTS=(cache_dedup=false)
echo "# t_failover"

write_config
make_site_key CEN
make_package "$T/src"
DEAD=$(dp_url_dead)

mkdir -p "$T/good" "$T/bad" "$T/badlist"
for c in CEN00004.1 CEN00005.1 CEN00006.1; do
    dp_publish "$T/src" "$T/good" "$c"
done
H=$PKG_HASH
dp_start "$T/good"
GOOD=$DP_URL

P=data/payload.bin
dp_publish "$T/src" "$T/bad" CEN00005.1
flip_byte "$T/bad/CEN00005.1/$P" 7
dp_start "$T/bad"
BAD=$DP_URL

dp_publish "$T/src" "$T/badlist" CEN00006.1
echo "0000000000000000000000000000000000000000000000000000000000000000  zz" >>"$T/badlist/CEN00006.1.sums"
dp_start "$T/badlist"
BADLIST=$DP_URL

# A DP folder without the content: every request is a 404.
mkdir -p "$T/empty"
dp_start "$T/empty"
EMPTY=$DP_URL
DEAD2=$(dp_url_dead)

write_policy "$T/policy.json" serial=1 adverts="$(
    advert_json id=CEN20007 package=CEN00007 version=1 hash="$H" locations="$EMPTY $EMPTY"
    echo ,
    advert_json id=CEN20008 package=CEN00008 version=1 hash="$H" locations="$DEAD $DEAD2"
    echo ,
    advert_json id=CEN20004 package=CEN00004 version=1 hash="$H" locations="$DEAD $GOOD"
    echo ,
    advert_json id=CEN20005 package=CEN00005 version=1 hash="$H" locations="$BAD $GOOD"
    echo ,
    advert_json id=CEN20006 package=CEN00006 version=1 hash="$H" locations="$BADLIST $GOOD"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

echo "# [dead DP, good DP]"
assert_exit 0 agent execute CEN20004
assert_eq 1 "$(proof_runs CEN20004)" "the program ran"
assert_download_succeeded CEN00004.1
assert_same_tree "$T/src" "$CACHE/CEN00004.1"
dp_requests "$GOOD" | grep -x "$DP_PREFIX/CEN00004.1/$P" >/dev/null ||
    fail "the good DP served the content" "$(dp_requests "$GOOD")"
ok "the good DP served the content"

echo "# [DP with a tampered file, good DP]"
X=$(upper "$(file_hash "$T/src/$P")")
Y=$(upper "$(file_hash "$T/bad/CEN00005.1/$P")")
assert_exit 0 agent execute CEN20005
assert_eq 1 "$(proof_runs CEN20005)" "the program ran"
WARN="Hash does not match for file $P of content CEN00005.1 served by $BAD: expected $X, actual $Y"
assert_log_has "$LOGS/CAS.log" "$WARN"
assert_log_type "$LOGS/CAS.log" "$WARN" 2
assert_log_lacks "$LOGS/CAS.log" \
    "Hash does not match for file $P of content CEN00005.1 served by $GOOD: expected $X, actual $Y"
assert_download_succeeded CEN00005.1
assert_same_tree "$T/src" "$CACHE/CEN00005.1"
assert_same_file "$T/good/CEN00005.1.sums" "$CACHE/CEN00005.1.sums"

echo "# [DP with an altered listing, good DP]"
E=$(upper "$H")
A=$(upper "$(file_hash "$T/badlist/CEN00006.1.sums")")
assert_exit 0 agent execute CEN20006
assert_eq 1 "$(proof_runs CEN20006)" "the program ran"
WARN="Hash does not match for the sums listing of content CEN00006.1 served by $BADLIST: expected $E, actual $A"
assert_log_has "$LOGS/CAS.log" "$WARN"
assert_log_type "$LOGS/CAS.log" "$WARN" 2
assert_download_succeeded CEN00006.1
assert_same_tree "$T/src" "$CACHE/CEN00006.1"

echo "# no location has the content: 404 everywhere"
assert_exit 1 agent execute CEN20007
assert_error 0x80190194
assert_eq 0 "$(proof_runs CEN20007)" "the program did not run"
assert_not_cached CEN00007.1

echo "# no location can be reached"
assert_exit 1 agent execute CEN20008
assert_error 0x87D01107
assert_eq 0 "$(proof_runs CEN20008)" "the program did not run"
assert_not_cached CEN00008.1

assert_no_partial
assert_cmtrace_logs
done_testing
