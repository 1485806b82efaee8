#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Legacy SMS-style packages: hash algorithm sha1 (listing from sha1sum, 40-digit package hash).
# A good one runs; a tampered one is refused with 0x80091007 and 40-digit hashes in CAS.log.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the server this test is about.
CONFIG_DEFAULTS=(cache_dedup=false)
echo "# t_sha1_legacy"

write_config
make_site_key CEN
make_package "$T/src"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN0005E.2 sha1
HGOOD=$PKG_HASH
[[ $HGOOD =~ ^[0-9a-f]{40}$ ]] || fail "sha1 package hash has 40 digits" "$HGOOD"
dp_publish "$T/src" "$T/dp" CEN0005F.1 sha1
HBAD=$PKG_HASH
P=data/payload.bin
flip_byte "$T/dp/CEN0005F.1/$P" 0
dp_start "$T/dp"

write_policy "$T/policy.json" serial=3 adverts="$(
    advert_json id=CEN2005E package=CEN0005E version=2 alg=sha1 hash="$HGOOD"
    echo ,
    advert_json id=CEN2005F package=CEN0005F version=1 alg=sha1 hash="$HBAD"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

assert_exit 0 agent policy show --json
assert_stdout_has "\"id\":\"CEN2005E\",\"content\":\"CEN0005E.2\",\"hash\":\"$(upper "$HGOOD")\",\"alg\":\"sha1\""

echo "# good sha1 package"
assert_exit 0 agent execute CEN2005E
assert_eq 1 "$(proof_runs CEN2005E)" "the program ran"
assert_download_succeeded CEN0005E.2
assert_same_tree "$T/src" "$CACHE/CEN0005E.2"
assert_same_file "$T/dp/CEN0005E.2.sums" "$CACHE/CEN0005E.2.sums"
grep -Eq '^[0-9a-f]{40}  install\.sh$' "$CACHE/CEN0005E.2.sums" ||
    fail "the cached listing is a sha1sum listing" "$(cat "$CACHE/CEN0005E.2.sums")"
ok "the cached listing is a sha1sum listing"

echo "# tampered sha1 package"
E=$(upper "$HBAD")
A=$(upper "$(package_hash "$T/dp/CEN0005F.1" sha1)")
X=$(upper "$(grep "  $P\$" "$T/dp/CEN0005F.1.sums" | cut -d' ' -f1)")
Y=$(upper "$(file_hash "$T/dp/CEN0005F.1/$P" sha1)")
for h in "$E" "$A" "$X" "$Y"; do
    [[ $h =~ ^[0-9A-F]{40}$ ]] || fail "40-digit upper-case sha1" "$h"
done
assert_exit 1 agent execute CEN2005F
assert_error 0x80091007
assert_eq 0 "$(proof_runs CEN2005F)" "the program did not run"
assert_log_has "$LOGS/CAS.log" \
    "Hash does not match for file $P of content CEN0005F.1 served by $DP_URL: expected $X, actual $Y"
assert_download_mismatch CEN0005F.1 "$E" "$A"
assert_not_available CEN0005F.1 CEN2005F
assert_not_cached CEN0005F.1

assert_cmtrace_logs
done_testing
