#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: a malicious mirror among good ones. The policy is genuine and lists several locations;
# one of them is the attacker's (cas-faultd) and serves tampered files, a file that never ends,
# or a listing of its own, hoping its bytes are mixed into what the agent commits and runs.
# Defence: every file is checked against the signed listing as it arrives, a failing location is
# left for the next one (and dropped for the job after 3 soft errors or a wrong listing), and the
# entry is committed only when the package hash rebuilt from disk matches.
# Asserts, for [bad, good] (every file tampered, 200 bytes moved from one file to another, the
# total still the policy's size), [bad, good, good] (every file tampered; the payload endless; a
# listing of its own) and [good, bad]: the program runs once, from an entry equal to the source;
# the warnings name the bad mirror (file or listing, expected and actual hashes, the 0x800700DF
# of the endless file) and the first good one serves every file the bad one spoilt; no attacker
# byte anywhere in the cache (staging included); the bad mirror second is never asked; the
# previous policy (serial 2) in force byte for byte.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_malicious_mirror"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the mirrors.
CONFIG_DEFAULTS=(cache_dedup=false)
FAULTD=${CAS_FAULTD:-$(dirname "$CAS_AGENT")/tests/cas-faultd}
[[ -x $FAULTD ]] || fail "cas-faultd is built" "not found at $FAULTD (set CAS_FAULTD)"

write_config
make_site_key CEN
make_package "$T/src"
P=data/payload.bin
mkdir -p "$T/good" "$T/fd"
for c in CEN00002.1 CEN00041.1 CEN00042.1 CEN00043.1 CEN00044.1 CEN00045.1 CEN00046.1; do
    dp_publish "$T/src" "$T/good" "$c"
done
H=$PKG_HASH S=$PKG_SIZE
dp_start "$T/good"
GOOD1=$DP_URL
dp_start "$T/good"
GOOD2=$DP_URL

# The bad mirror: a copy of the DP where every file of CEN00041.1 and CEN00044.1 is replaced by
# one of the same size carrying the marker, CEN00043.1 has the attacker's own listing, and
# CEN00042.1's payload never ends (CEN00046.1 and CEN00045.1 below).
BADROOT=$T/fd/${DP_PREFIX#/}
cp -R "$T/good" "$BADROOT"
atk_evil_package "$T/attacker"
for c in CEN00041.1 CEN00044.1; do
    while IFS= read -r -d '' f; do
        rel=${f#"$BADROOT/$c/"}
        size=$(stat -c %s "$f")
        { printf '%s\n' "$ATK_MARK"; head -c 4000 /dev/urandom; } | head -c "$size" >"$f"
        grep -qF "$ATK_MARK" "$f" || fail "the tampered $rel carries the marker"
    done < <(find "$BADROOT/$c" -type f -print0)
done
# CEN00046.1: tampered too, but with 200 bytes moved from the payload to install.sh (the total
# still the policy's size).
f=$BADROOT/CEN00046.1
{ cat "$T/attacker/install.sh"; head -c $(($(stat -c %s "$T/src/install.sh") + 200)) /dev/zero; } |
    head -c $(($(stat -c %s "$T/src/install.sh") + 200)) >"$f/install.sh"
{ printf '%s\n' "$ATK_MARK"; head -c 4000 /dev/urandom; } | head -c $((3000 - 200)) >"$f/$P"
{ printf '%s\n' "$ATK_MARK"; head -c 100 /dev/zero; } | head -c "$(stat -c %s "$T/src/docs/read me.txt")" >"$f/docs/read me.txt"
assert_eq "$S" "$(find "$f" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')" \
    "the bad mirror's CEN00046.1 has the policy's size"
rm -rf "$BADROOT/CEN00043.1" "$BADROOT/CEN00043.1.sums"
dp_publish "$T/attacker" "$BADROOT" CEN00043.1
# CEN00045.1 (the bad mirror second): a listing of its own and a payload that never ends.
cp "$BADROOT/CEN00043.1.sums" "$BADROOT/CEN00045.1.sums"
printf '%s\n' "$DP_PREFIX/CEN00042.1/$P endless" "$DP_PREFIX/CEN00045.1/$P endless" >"$T/rules"
"$FAULTD" --root "$T/fd" --rules "$T/rules" --port-file "$T/faultd.port" --log "$T/faultd.log" \
    >/dev/null 2>"$T/faultd.err" &
FPID=$!
lib_on_exit "kill -TERM $FPID 2>/dev/null; wait $FPID 2>/dev/null"
for ((k = 0; k < 100; k++)); do [[ -s $T/faultd.port ]] && break; sleep 0.1; done
[[ -s $T/faultd.port ]] || fail "cas-faultd started" "$(cat "$T/faultd.err")"
BAD="http://127.0.0.1:$(cat "$T/faultd.port")$DP_PREFIX"
ok "the bad mirror (cas-faultd) listens at $BAD"

adverts=$(advert_json id=CEN20001 package=CEN00002 version=1 hash="$H" size="$S" locations="$GOOD1")
for n in 41 42 43; do
    adverts+=,$(advert_json id="CEN200$n" package="CEN000$n" version=1 hash="$H" size="$S" locations="$BAD $GOOD1 $GOOD2")
done
adverts+=,$(advert_json id=CEN20046 package=CEN00046 version=1 hash="$H" size="$S" locations="$BAD $GOOD1")
for n in 44 45; do
    adverts+=,$(advert_json id="CEN200$n" package="CEN000$n" version=1 hash="$H" size="$S" locations="$GOOD1 $BAD")
done
write_policy "$T/policy.json" serial=2 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 2 applied, CEN20001 ran from a good DP"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
atk_snapshot 2

# good_won N LISTING_URL [FILE...] -- advert CEN200N: the program ran once, from the genuine
# bytes; the listing served by LISTING_URL (the bad mirror's is taken when it is the genuine one:
# it hashes to the signed value), each FILE (default: all) by GOOD1 and not by the bad mirror.
good_won()
{
    local n=$1 lister=$2 c="CEN000$1.1" p
    shift 2
    [[ $# -gt 0 ]] || set -- install.sh "$P" "docs/read me.txt"
    assert_exit 0 agent execute "CEN200$n"
    assert_eq 1 "$(proof_runs "CEN200$n")" "the program ran once"
    assert_no_file "$PROOF/ATTACKER-RAN"
    assert_download_succeeded "$c"
    assert_same_tree "$T/src" "$CACHE/$c"
    assert_same_file "$T/good/$c.sums" "$CACHE/$c.sums"
    assert_log_has "$LOGS/ContentTransferManager.log" "Location $lister chosen for the sums listing of content $c"
    for p in "$@"; do
        assert_log_has "$LOGS/ContentTransferManager.log" "Location $GOOD1 chosen for file $p of content $c"
        assert_log_lacks "$LOGS/ContentTransferManager.log" "Location $BAD chosen for file $p of content $c"
    done
    assert_eq "" "$(dp_requests "$GOOD2" | grep -F "$c" || true)" "the second good mirror was not needed"
    atk_no_marker
    assert_no_partial
}

echo "# [bad, good]: every file tampered, 200 bytes moved from the payload to install.sh"
# The good mirror must still win: the bad copies it replaces do not count against the content's
# size.
good_won 46 "$BAD"
X=$(upper "$(file_hash "$T/src/$P")")
Y=$(upper "$(file_hash "$BADROOT/CEN00046.1/$P")")
assert_log_has "$LOGS/CAS.log" \
    "Hash does not match for file $P of content CEN00046.1 served by $BAD: expected $X, actual $Y"

echo "# [bad, good, good]: every file tampered at the bad mirror"
good_won 41 "$BAD"
for p in install.sh "$P" "docs/read me.txt"; do
    X=$(upper "$(file_hash "$T/src/$p")")
    Y=$(upper "$(file_hash "$BADROOT/CEN00041.1/$p")")
    WARN="Hash does not match for file $p of content CEN00041.1 served by $BAD: expected $X, actual $Y"
    assert_log_has "$LOGS/CAS.log" "$WARN"
    assert_log_type "$LOGS/CAS.log" "$WARN" 2
done
assert_log_has "$LOGS/ContentTransferManager.log" "Location $BAD is not used again in this job: 3 soft errors"

echo "# [bad, good, good]: the bad mirror's payload never ends"
good_won 42 "$BAD" "$P"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for $P of content CEN00042.1: error 0x800700DF ($BAD/CEN00042.1/$P: more than the $S bytes allowed)"
big=$(find "$CACHE" -type f -size +"${S}c" -printf '%P %s\n')
assert_eq "" "$big" "no file under the cache folder is larger than the $S bytes allowed"

echo "# [bad, good, good]: the bad mirror's listing is its own"
good_won 43 "$GOOD1"
E=$(upper "$H")
A=$(upper "$(file_hash "$BADROOT/CEN00043.1.sums")")
WARN="Hash does not match for the sums listing of content CEN00043.1 served by $BAD: expected $E, actual $A"
assert_log_has "$LOGS/CAS.log" "$WARN"
assert_log_type "$LOGS/CAS.log" "$WARN" 2
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD is not used again in this job: its sums listing of content CEN00043.1 does not match the signed hash"
assert_eq "GET $DP_PREFIX/CEN00043.1.sums" "$(grep -F CEN00043.1 "$T/faultd.log" | cut -d' ' -f1-2)" \
    "only the listing of CEN00043.1 was asked of the bad mirror"

echo "# [good, bad]: the good mirror serves, the bad one is never asked"
good_won 44 "$GOOD1"
good_won 45 "$GOOD1"
assert_eq "" "$(grep -e CEN00044.1 -e CEN00045.1 "$T/faultd.log" || true)" "the bad mirror second was never asked"

echo "# after the attacks"
ATK_NEW_ENTRIES=$(for n in 41 42 43 44 45 46; do echo "CEN000$n.1 3 $S"; done)
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"
assert_exit 0 agent cache verify
atk_no_marker
assert_no_partial

assert_cmtrace_logs
done_testing
