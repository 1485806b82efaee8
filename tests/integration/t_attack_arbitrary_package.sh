#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: arbitrary package (TUF). The policy is genuine; the distribution point is the
# attacker's. It serves (a) the genuine listing with the program replaced by its own, (b) a whole
# package of its own with a listing consistent with its files, hoping the agent runs what it
# serves. Defence: the signed package hash pins the listing, the listing pins every file, and the
# entry is committed only when the package hash rebuilt from disk matches.
# Asserts: 0x80091007 for `execute` and `download`, the per-file / per-listing warnings naming the
# DP with expected and actual hashes, the seed mismatch lines (actual = the coreutils one-liner on
# the attacker's copy), nothing run, no entry, no staging left and no attacker byte anywhere in the
# cache, only the listing of (b) requested, the previous policy (serial 7) in force byte for byte.
# Not over-refused: extra, unlisted files on the DP are never requested and the content runs; once
# the DP serves the genuine files, (a) and (b) download and run.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_arbitrary_package"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

write_config
make_site_key CEN

# The genuine packages: the previous one (CEN00002.1) and the three the attacker's DP stands for.
make_package "$T/src2" "package two"
make_package "$T/src3" "package three"
make_package "$T/src4" "package four"
make_package "$T/src5" "package five"
mkdir -p "$T/good" "$T/genuine" "$T/evil"
dp_publish "$T/src2" "$T/good" CEN00002.1
H2=$PKG_HASH S2=$PKG_SIZE
dp_start "$T/good"
GOOD=$DP_URL
dp_publish "$T/src3" "$T/genuine" CEN00003.1
H3=$PKG_HASH S3=$PKG_SIZE
dp_publish "$T/src4" "$T/genuine" CEN00004.1
H4=$PKG_HASH S4=$PKG_SIZE
dp_publish "$T/src5" "$T/genuine" CEN00005.1
H5=$PKG_HASH S5=$PKG_SIZE

# The attacker's DP.
atk_evil_package "$T/attacker"
cp -R "$T/genuine/." "$T/evil/"
# (a) the genuine listing, the program replaced (same size, so only the hash can tell).
head -c "$(stat -c %s "$T/src3/install.sh")" <(cat "$T/attacker/install.sh" - </dev/zero | tr '\0' '#') \
    >"$T/evil/CEN00003.1/install.sh"
grep -qF "$ATK_MARK" "$T/evil/CEN00003.1/install.sh" || fail "the replaced program carries the marker"
# (b) a package of the attacker's own, with a consistent listing of its own.
rm -rf "$T/evil/CEN00004.1" "$T/evil/CEN00004.1.sums"
dp_publish "$T/attacker" "$T/evil" CEN00004.1
# (c) the genuine content with unlisted extras beside it.
cp "$T/attacker/install.sh" "$T/evil/CEN00005.1/evil.sh"
cp "$T/attacker/data/payload.bin" "$T/evil/CEN00005.1/data/extra.bin"
dp_start "$T/evil"
EVIL=$DP_URL

write_policy "$T/policy.json" serial=7 adverts="$(
    advert_json id=CEN20001 package=CEN00002 version=1 hash="$H2" size="$S2" locations="$GOOD"
    echo ,
    advert_json id=CEN20003 package=CEN00003 version=1 hash="$H3" size="$S3" locations="$EVIL"
    echo ,
    advert_json id=CEN20004 package=CEN00004 version=1 hash="$H4" size="$S4" locations="$EVIL"
    echo ,
    advert_json id=CEN20005 package=CEN00005 version=1 hash="$H5" size="$S5" locations="$EVIL"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 7 applied, CEN20001 ran from the good DP"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
assert_same_tree "$T/src2" "$CACHE/CEN00002.1"
atk_snapshot 7

echo "# (a) the genuine listing, the program replaced by the attacker's"
P=install.sh
E=$(upper "$H3")
A=$(upper "$(package_hash "$T/evil/CEN00003.1")")
X=$(upper "$(file_hash "$T/src3/$P")")
Y=$(upper "$(file_hash "$T/evil/CEN00003.1/$P")")
[[ $E != "$A" && $X != "$Y" ]] || fail "the replaced program changes the hashes"
for cmd in "execute CEN20003" "download CEN00003.1"; do
    # shellcheck disable=SC2086 # two words on purpose
    assert_exit 1 agent $cmd
    assert_error 0x80091007
    WARN="Hash does not match for file $P of content CEN00003.1 served by $EVIL: expected $X, actual $Y"
    assert_log_has "$LOGS/CAS.log" "$WARN"
    assert_log_type "$LOGS/CAS.log" "$WARN" 2
    assert_log_has "$LOGS/CAS.log" "File $P of content CEN00003.1 did not match at any location"
    assert_download_mismatch CEN00003.1 "$E" "$A"
    atk_nothing_ran CEN20003
    assert_not_cached CEN00003.1
    atk_no_marker
done
assert_not_available CEN00003.1 CEN20003
assert_eq 1 "$(log_count "$LOGS/execmgr.log" "Executing program install.sh under context System")" \
    "execmgr.log: only the previous advert's program was started"
assert_eq 2 "$(log_count "$LOGS/CAS.log" "$WARN")" "each attempt checked the file again"

echo "# (b) a whole package of the attacker's, with its own consistent listing"
E=$(upper "$H4")
A=$(upper "$(file_hash "$T/evil/CEN00004.1.sums")")
assert_eq "$(package_hash "$T/attacker")" "$(file_hash "$T/evil/CEN00004.1.sums")" \
    "the attacker's listing is consistent with its files"
for cmd in "execute CEN20004" "download CEN00004.1"; do
    # shellcheck disable=SC2086 # two words on purpose
    assert_exit 1 agent $cmd
    assert_error 0x80091007
    WARN="Hash does not match for the sums listing of content CEN00004.1 served by $EVIL: expected $E, actual $A"
    assert_log_has "$LOGS/CAS.log" "$WARN"
    assert_log_type "$LOGS/CAS.log" "$WARN" 2
    assert_log_has "$LOGS/ContentTransferManager.log" \
        "Location $EVIL is not used again in this job: its sums listing of content CEN00004.1 does not match the signed hash"
    assert_download_mismatch CEN00004.1 "$E" "$A"
    atk_nothing_ran CEN20004
    assert_not_cached CEN00004.1
    atk_no_marker
done
assert_not_available CEN00004.1 CEN20004
reqs=$(dp_requests "$EVIL" | grep -F CEN00004.1 | sort -u | tr '\n' ' ')
assert_eq "$DP_PREFIX/CEN00004.1.sums " "$reqs" "only the listing of CEN00004.1 was asked of the attacker"

echo "# after the attacks"
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"
assert_no_partial

echo "# not over-refused: unlisted extras on the DP are never requested"
assert_exit 0 agent execute CEN20005
assert_eq 1 "$(proof_runs CEN20005)" "the program ran"
assert_no_file "$PROOF/ATTACKER-RAN"
assert_download_succeeded CEN00005.1
assert_same_tree "$T/src5" "$CACHE/CEN00005.1"
atk_no_marker
extra=$(dp_requests "$EVIL" | grep -e '/evil\.sh$' -e '/extra\.bin$' || true)
assert_eq "" "$extra" "the unlisted files were never requested"

echo "# not over-refused: the DP serves the genuine content again"
rm -rf "$T/evil/CEN00003.1" "$T/evil/CEN00004.1" "$T/evil/CEN00004.1.sums"
cp -R "$T/genuine/CEN00003.1" "$T/genuine/CEN00004.1" "$T/genuine/CEN00004.1.sums" "$T/evil/"
assert_exit 0 agent execute CEN20003
assert_eq 1 "$(proof_runs CEN20003)" "CEN20003 ran"
assert_download_succeeded CEN00003.1
assert_same_tree "$T/src3" "$CACHE/CEN00003.1"
assert_exit 0 agent execute CEN20004
assert_eq 1 "$(proof_runs CEN20004)" "CEN20004 ran"
assert_download_succeeded CEN00004.1
assert_same_tree "$T/src4" "$CACHE/CEN00004.1"
assert_no_file "$PROOF/ATTACKER-RAN"
atk_no_marker
assert_no_partial

assert_cmtrace_logs
done_testing
