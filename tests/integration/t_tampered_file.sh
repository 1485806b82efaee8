#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# One byte of one file changed on the DP: the recomputed package hash differs, the download fails
# with 0x80091007, the program does not run and nothing reaches the cache.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_tampered_file"

write_config
make_site_key CEN
make_package "$T/src"
C=CEN00002.1
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" "$C"
dp_start "$T/dp"
write_policy "$T/policy.json" serial=1
sign_policy "$PRIV/CEN.key" "$T/policy.json"

P=data/payload.bin
flip_byte "$T/dp/$C/$P" 1000
# Expected and actual, computed with coreutils: E is the signed hash, A the contract's one-liner
# over what the DP serves; X the file's hash in the listing, Y the hash of the DP's copy.
E=$(upper "$PKG_HASH")
A=$(upper "$(package_hash "$T/dp/$C")")
X=$(upper "$(grep "  $P\$" "$T/dp/$C.sums" | cut -d' ' -f1)")
Y=$(upper "$(file_hash "$T/dp/$C/$P")")
[[ $E != "$A" && $X != "$Y" ]] || fail "the tampering changed the hashes"

assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 1 agent execute CEN20001
assert_error 0x80091007
assert_eq 0 "$(proof_runs CEN20001)" "the program did not run"

WARN="Hash does not match for file $P of content $C served by $DP_URL: expected $X, actual $Y"
assert_log_has "$LOGS/CAS.log" "$WARN"
assert_log_type "$LOGS/CAS.log" "$WARN" 2
assert_log_order "$LOGS/CAS.log" "$WARN" "Download completed for content $C under context System"
assert_download_mismatch "$C" "$E" "$A"
assert_log_order "$LOGS/execmgr.log" \
    "Execution Request for advert CEN20001 package CEN00002 program install.sh state change from NotExist to WaitingContent" \
    "Requesting content from CAS for package CEN00002 version 1" \
    "Content $C is not available for program install.sh, error 0x80091007" \
    "Program install.sh of advert CEN20001 will not be run"
assert_not_available "$C" CEN20001
assert_log_lacks "$LOGS/execmgr.log" "Executing program install.sh under context System"
assert_not_cached "$C"

# The same through `download`: refused again, from scratch.
assert_exit 1 agent download "$C"
assert_error 0x80091007
assert_eq 2 "$(log_count "$LOGS/CAS.log" "Hash does not match expected $E, actual $A")" \
    "the second attempt verified again and failed again"
assert_download_mismatch "$C" "$E" "$A"
assert_not_cached "$C"
assert_eq 0 "$(proof_runs CEN20001)" "the program never ran"

assert_cmtrace_logs
done_testing
