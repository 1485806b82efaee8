#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# A listing whose paths would leave the content folder ("../escape", an absolute path, an empty
# segment) is refused with 0x8007007B even when its hash is the signed one (the site signed a
# malicious listing, or an attacker found a collision): the path rules hold on their own. Nothing
# is fetched for the unsafe path, nothing is written outside the cache, nothing stays in it.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_path_traversal"

# The cache sits one level down so that "nothing new next to the cache" is checkable.
CACHE=$T/root/cache
mkdir -p "$T/root"
write_config
make_site_key CEN
mkdir -p "$T/dp"
dp_start "$T/dp"

etc_x_existed=0
[[ -e /etc/x ]] && etc_x_existed=1

# evil_content C PATH... -- content C on the DP whose listing holds install.sh and the PATHs.
# Each unsafe file is also served where a sloppy URL join would land, so a careless agent would
# really receive it. Sets EV_HASH and EV_SIZE.
evil_content()
{
    local c=$1 p h lines=""
    shift
    mkdir -p "$T/dp/$c"
    # shellcheck disable=SC2016 # the script's own $1/$2
    printf '#!/bin/sh\necho "$2" >"$1/ran-$2"\n' >"$T/dp/$c/install.sh"
    lines+="install.sh	$(file_hash "$T/dp/$c/install.sh")"$'\n'
    EV_SIZE=$(stat -c %s "$T/dp/$c/install.sh")
    for p in "$@"; do
        h=$(printf 'evil\n' | sha256sum | cut -d' ' -f1)
        lines+="$p	$h"$'\n'
        EV_SIZE=$((EV_SIZE + 5))
        # Where "$DP_URL/$c/$p" would be served after the server normalised it.
        local served
        served=$(realpath -m "$T/dp/$c/${p#/}")
        case $served in
        "$T/dp"/*)
            mkdir -p "$(dirname "$served")"
            printf 'evil\n' >"$served"
            ;;
        esac
    done
    printf '%s' "$lines" | LC_ALL=C sort | awk -F '\t' '{ print $2 "  " $1 }' >"$T/dp/$c.sums"
    EV_HASH=$(file_hash "$T/dp/$c.sums")
}

declare -A EVIL=(
    [CEN000A1.1]="../escape"
    [CEN000A2.1]="../../escape"
    [CEN000A3.1]="sub/../../../escape"
    [CEN000A4.1]="/etc/x"
    [CEN000A5.1]="$T/abs-escape"
    [CEN000A6.1]="a//b"
)
adverts=""
for c in "${!EVIL[@]}"; do
    evil_content "$c" "${EVIL[$c]}"
    pkg=${c%.*}
    adverts+="${adverts:+,}$(advert_json id="AD${pkg}" package="$pkg" version=1 hash="$EV_HASH" size="$EV_SIZE")"
done
write_policy "$T/policy.json" serial=1 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

before=$(cd "$T" && find . -path ./log -prune -o -path ./state -prune -o -print | LC_ALL=C sort)

for c in $(printf '%s\n' "${!EVIL[@]}" | sort); do
    p=${EVIL[$c]}
    pkg=${c%.*}
    echo "# listing path: $(_lib_show "$p")"
    assert_exit 1 agent execute "AD$pkg"
    assert_error 0x8007007B
    assert_eq 0 "$(proof_runs "AD$pkg")" "the program did not run"
    assert_log_has "$LOGS/CAS.log" "Download failed for content $c under context System, error 0x8007007B"
    assert_not_available "$c" "AD$pkg" 0x8007007B
    assert_not_cached "$c"
    assert_exit 1 agent download "$c"
    assert_error 0x8007007B
    assert_not_cached "$c"
    # The unsafe file was never requested (requests other than the listing may name only safe
    # paths of the content).
    bad=$(dp_requests "$DP_URL" | grep -v -x -e "$DP_PREFIX/$c.sums" -e "$DP_PREFIX/$c/install.sh" |
        grep -F "$c" || true)
    [[ -z $bad ]] || fail "only safe paths of $c were requested" "requests: $bad"
    ok "only safe paths of $c were requested"
done

echo "# nothing escaped"
after=$(cd "$T" && find . -path ./log -prune -o -path ./state -prune -o -print | LC_ALL=C sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v -e '^\./root/cache$' -e '^\./root/cache/' || true)
assert_eq "" "$new" "no new file in the test folder outside the cache (last.out/err aside)"
assert_eq "cache" "$(ls -A "$T/root")" "only the cache folder next to the cache"
assert_no_file "$T/escape"
assert_no_file "$T/root/escape"
assert_no_file "$T/abs-escape"
assert_no_file "$CACHE/escape"
if [[ $etc_x_existed -eq 0 ]]; then
    if [[ -e /etc/x ]]; then
        rm -f /etc/x
        fail "nothing at /etc/x" "the agent wrote /etc/x (removed now)"
    fi
    ok "nothing at /etc/x"
fi
leftover=$(find "$CACHE" -mindepth 1 \( -name 'CEN000A*' -o -name escape -o -name x -o -name b \) 2>/dev/null || true)
assert_eq "" "$leftover" "nothing of the refused contents in the cache"

assert_cmtrace_logs
done_testing
