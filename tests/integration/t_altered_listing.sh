#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The DP's sums listing itself is altered (a hash changed; an extra line): it no longer hashes to
# the signed value, so the download stops at the listing -- no file of the content is fetched.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_altered_listing"

write_config
make_site_key CEN

# Two contents, each on its own DP so each access log shows only that content's requests.
C1=CEN00002.1
make_package "$T/src1" "package one"
mkdir -p "$T/dp1"
dp_publish "$T/src1" "$T/dp1" "$C1"
H1=$PKG_HASH S1=$PKG_SIZE
dp_start "$T/dp1"
U1=$DP_URL
# (a) one hash digit changed in the listing.
old=$(grep '  install.sh$' "$T/dp1/$C1.sums" | cut -c1)
new=$([[ $old == 0 ]] && echo 1 || echo 0)
sed -i "/  install.sh\$/s/^$old/$new/" "$T/dp1/$C1.sums"

C2=CEN00003.1
make_package "$T/src2" "package two"
mkdir -p "$T/dp2"
dp_publish "$T/src2" "$T/dp2" "$C2"
H2=$PKG_HASH S2=$PKG_SIZE
dp_start "$T/dp2"
U2=$DP_URL
# (b) an extra line for a file that the DP really serves.
echo extra >"$T/dp2/$C2/zz-extra.txt"
sha256sum <"$T/dp2/$C2/zz-extra.txt" | sed 's/ .*/  zz-extra.txt/' >>"$T/dp2/$C2.sums"

write_policy "$T/policy.json" serial=1 adverts="$(
    advert_json id=CEN20001 package=CEN00002 version=1 hash="$H1" size="$S1" locations="$U1"
    echo ,
    advert_json id=CEN20002 package=CEN00003 version=1 hash="$H2" size="$S2" locations="$U2"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

check_refused()
{
    local c=$1 ad=$2 h=$3 url=$4 dp=$5
    local e a reqs
    e=$(upper "$h")
    a=$(upper "$(file_hash "$dp/$c.sums")")
    [[ $e != "$a" ]] || fail "the listing was altered"
    assert_exit 1 agent execute "$ad"
    assert_error 0x80091007
    assert_eq 0 "$(proof_runs "$ad")" "the program of $ad did not run"
    local warn="Hash does not match for the sums listing of content $c served by $url: expected $e, actual $a"
    assert_log_has "$LOGS/CAS.log" "$warn"
    assert_log_type "$LOGS/CAS.log" "$warn" 2
    assert_download_mismatch "$c" "$e" "$a"
    assert_not_available "$c" "$ad"
    assert_not_cached "$c"
    reqs=$(dp_requests "$url" | sort -u | tr '\n' ' ')
    assert_eq "$DP_PREFIX/$c.sums " "$reqs" "the DP served only the listing of $c"
}

check_refused "$C1" CEN20001 "$H1" "$U1" "$T/dp1"
check_refused "$C2" CEN20002 "$H2" "$U2" "$T/dp2"

assert_exit 0 agent cache list
assert_eq "" "$(cat "$LAST_OUT")" "cache list shows nothing"
assert_cmtrace_logs
done_testing
