#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: mix-and-match (TUF). The policy is genuine; the distribution point is the attacker's,
# and it holds only genuine, once-signed material: in place of the requested CEN00002.2 it serves
# the listing and files of the older CEN00002.1, or the genuine 2.2 listing with 2.1's files; in
# place of CEN00006.1 it serves another genuine content, CEN00005.1. Each piece was valid once,
# somewhere. Defence: the policy pins the package hash of exactly the content it names, the
# listing pins every file, and a signed policy may not name one content with two hashes.
# Asserts: 0x80091007 with the listing / per-file warnings naming the DP and "actual" equal to the
# hash of what was really served (the older version's own signed hash), nothing run, nothing of
# the other content committed under the requested id nor left in staging, the previous policy
# (serial 5) in force byte for byte; a signed serial 6 naming CEN00002.2 with two hashes is refused
# (0x8007000D, PolicyAgent.log) and serial 5 stays. Not over-refused: the genuine 2.2 from a good DP
# runs, next to the untouched 2.1.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_mix_and_match"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

write_config
make_site_key CEN

# Genuine contents, each file marked with what it belongs to: version 1 and version 2 of
# CEN00002 (version 2 changes the payload and the version note), CEN00005.1 and CEN00006.1.
# (The same length for both versions: the older files must fit the newer size, so that only the
# hashes can tell them apart.)
V1_MARK="MIX-VERSION-1-$$-$(printf '%05d' "$RANDOM")"
V2_MARK="MIX-VERSION-2-$$-$(printf '%05d' "$RANDOM")"
OTHER_MARK="MIX-OTHER-CONTENT-$$-$RANDOM"
make_package "$T/v1" "version one"
printf '%s\n' "$V1_MARK" >"$T/v1/docs/version.txt"
cp -R "$T/v1" "$T/v2"
printf '%s\n' "$V2_MARK" >"$T/v2/docs/version.txt"
head -c 3000 /dev/urandom >"$T/v2/data/payload.bin"
make_package "$T/other" "another package"
printf '%s\n' "$OTHER_MARK" >"$T/other/docs/version.txt"
make_package "$T/six" "package six"

mkdir -p "$T/good" "$T/evil" "$T/evil2"
dp_publish "$T/v1" "$T/good" CEN00002.1
H1=$PKG_HASH S1=$PKG_SIZE
dp_publish "$T/v2" "$T/good" CEN00002.2
H2=$PKG_HASH S2=$PKG_SIZE
dp_publish "$T/other" "$T/good" CEN00005.1
H5=$PKG_HASH
dp_publish "$T/six" "$T/good" CEN00006.1
H6=$PKG_HASH S6=$PKG_SIZE
dp_start "$T/good"
GOOD=$DP_URL

# EVIL: version 1's listing and files under version 2's name; CEN00005.1 under CEN00006.1's.
mkdir -p "$T/evil/CEN00002.2" "$T/evil/CEN00006.1"
cp -R "$T/good/CEN00002.1/." "$T/evil/CEN00002.2/"
cp "$T/good/CEN00002.1.sums" "$T/evil/CEN00002.2.sums"
cp -R "$T/good/CEN00005.1/." "$T/evil/CEN00006.1/"
cp "$T/good/CEN00005.1.sums" "$T/evil/CEN00006.1.sums"
dp_start "$T/evil"
EVIL=$DP_URL
# EVIL2: version 2's genuine listing, version 1's files.
mkdir -p "$T/evil2/CEN00002.2"
cp -R "$T/good/CEN00002.1/." "$T/evil2/CEN00002.2/"
cp "$T/good/CEN00002.2.sums" "$T/evil2/CEN00002.2.sums"
dp_start "$T/evil2"
EVIL2=$DP_URL

write_policy "$T/policy.json" serial=5 adverts="$(
    advert_json id=CEN20001 package=CEN00002 version=1 hash="$H1" size="$S1" locations="$GOOD"
    echo ,
    advert_json id=CEN20002 package=CEN00002 version=2 hash="$H2" size="$S2" locations="$EVIL"
    echo ,
    advert_json id=CEN20012 package=CEN00002 version=2 hash="$H2" size="$S2" locations="$EVIL2"
    echo ,
    advert_json id=CEN20006 package=CEN00006 version=1 hash="$H6" size="$S6" locations="$EVIL"
    echo ,
    advert_json id=CEN20022 package=CEN00002 version=2 hash="$H2" size="$S2" locations="$GOOD"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 5 applied, CEN20001 (CEN00002.1) ran from the good DP"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
assert_same_tree "$T/v1" "$CACHE/CEN00002.1"
atk_snapshot 5
cp -a "$CACHE/CEN00002.1" "$T/v1-entry"

# no_foreign -- nothing of version 1 outside its own entry, nothing of the other content anywhere.
no_foreign()
{
    local hits
    hits=$(grep -rlaF -- "$V1_MARK" "$CACHE" | grep -v -e "^$CACHE/CEN00002\.1/" || true)
    assert_eq "" "$hits" "version 1's bytes are nowhere in the cache but in its own entry"
    atk_no_marker "$OTHER_MARK"
    assert_same_tree "$T/v1-entry" "$CACHE/CEN00002.1"
}

# listing_refused ADVERT C DP E A -- the DP's listing of C (another content's) is refused.
listing_refused()
{
    local ad=$1 c=$2 dp=$3 e a warn
    e=$(upper "$4")
    a=$(upper "$5")
    assert_exit 1 agent execute "$ad"
    assert_error 0x80091007
    atk_nothing_ran "$ad"
    warn="Hash does not match for the sums listing of content $c served by $dp: expected $e, actual $a"
    assert_log_has "$LOGS/CAS.log" "$warn"
    assert_log_type "$LOGS/CAS.log" "$warn" 2
    assert_download_mismatch "$c" "$e" "$a"
    assert_not_available "$c" "$ad"
    assert_not_cached "$c"
    no_foreign
}

echo "# (a) the older version's listing and files in place of CEN00002.2"
listing_refused CEN20002 CEN00002.2 "$EVIL" "$H2" "$H1"
reqs=$(dp_requests "$EVIL" | grep -F CEN00002.2 | sort -u | tr '\n' ' ')
assert_eq "$DP_PREFIX/CEN00002.2.sums " "$reqs" "only the listing of CEN00002.2 was asked of the DP"

echo "# (b) another genuine content (CEN00005.1) in place of CEN00006.1"
listing_refused CEN20006 CEN00006.1 "$EVIL" "$H6" "$H5"
reqs=$(dp_requests "$EVIL" | grep -F CEN00006.1 | sort -u | tr '\n' ' ')
assert_eq "$DP_PREFIX/CEN00006.1.sums " "$reqs" "only the listing of CEN00006.1 was asked of the DP"

echo "# (c) CEN00002.2's genuine listing, the older version's files"
assert_exit 1 agent execute CEN20012
assert_error 0x80091007
atk_nothing_ran CEN20012
for p in data/payload.bin docs/version.txt; do
    X=$(upper "$(file_hash "$T/v2/$p")")
    Y=$(upper "$(file_hash "$T/v1/$p")")
    WARN="Hash does not match for file $p of content CEN00002.2 served by $EVIL2: expected $X, actual $Y"
    assert_log_has "$LOGS/CAS.log" "$WARN"
    assert_log_type "$LOGS/CAS.log" "$WARN" 2
done
# The content as received is version 1 exactly: its package hash is version 1's signed hash.
assert_download_mismatch CEN00002.2 "$(upper "$H2")" "$(upper "$H1")"
assert_not_available CEN00002.2 CEN20012
assert_not_cached CEN00002.2
no_foreign

echo "# a signed policy naming CEN00002.2 with two hashes is refused"
write_policy "$T/p6.json" serial=6 adverts="$(
    advert_json id=CEN20001 package=CEN00002 version=1 hash="$H1" size="$S1" locations="$GOOD"
    echo ,
    advert_json id=CEN20002 package=CEN00002 version=2 hash="$H2" size="$S2" locations="$GOOD"
    echo ,
    advert_json id=CEN20032 package=CEN00002 version=2 hash="$H1" size="$S1" locations="$EVIL"
)"
sign_policy "$PRIV/CEN.key" "$T/p6.json"
assert_exit 1 agent policy apply "$T/p6.json"
assert_error 0x8007000D
assert_stderr_has "content CEN00002.2 is advertised with a different hash in advertisements[1]"
assert_log_has "$LOGS/PolicyAgent.log" \
    "Policy $T/p6.json refused: advertisements[2].hash: content CEN00002.2 is advertised with a different hash in advertisements[1], error 0x8007000D"
assert_log_type "$LOGS/PolicyAgent.log" \
    "Policy $T/p6.json refused: advertisements[2].hash: content CEN00002.2 is advertised with a different hash in advertisements[1], error 0x8007000D" 3

echo "# after the attacks"
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"
no_foreign
assert_no_partial

echo "# not over-refused: the genuine CEN00002.2 from the good DP"
assert_exit 0 agent execute CEN20022
assert_eq 1 "$(proof_runs CEN20022)" "the program ran"
assert_download_succeeded CEN00002.2
assert_same_tree "$T/v2" "$CACHE/CEN00002.2"
assert_same_tree "$T/v1-entry" "$CACHE/CEN00002.1"
assert_exit 0 agent cache verify
atk_no_marker "$OTHER_MARK"
assert_no_partial

assert_cmtrace_logs
done_testing
