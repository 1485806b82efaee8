#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: path traversal and special names in a listing. The policy and the listing's hash are
# genuine (the site signed a hostile listing, or the attacker found a collision), so only the
# name rules stand between the listing and the disk: ../x, /abs, a//b, ".", "..", a trailing
# slash, a newline (raw, and as sha256sum escapes it), a carriage return, a backslash, a NUL byte,
# a 4097-byte path and a 256-byte segment, /dev/null, duplicate names, a file that is also a
# folder. Defence: common/sums.c + common/path.c refuse the whole listing before any file is asked
# for (docs/formats.md "Package paths"), and files are created one folder at a time with
# O_NOFOLLOW.
# Asserts, for each: the documented code (0x8007007B for path rules and duplicates, 0x8007000D for
# a line that is not a sums line: CR, a raw or escaped newline) on stderr with the reason, the
# CAS.log / execmgr.log lines, nothing run, no entry, nothing in staging, only the listing
# requested (nginx access log), nothing new anywhere outside the cache, the previous policy
# (serial 8) in force byte for byte. Not over-refused: names that are odd but allowed (differing
# only in case, "%00", "..%2f", "dev/null", "CON", spaces, a tab, UTF-8) download, verify and run,
# as regular files inside the entry.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_path_traversal"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

# The cache sits one level down so that "nothing new next to the cache" is checkable.
CACHE=$T/root/cache
mkdir -p "$T/root"
write_config
make_site_key CEN
make_package "$T/src"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN00002.1
H2=$PKG_HASH S2=$PKG_SIZE

# The allowed-but-odd package.
ODD=$T/odd
make_package "$ODD" "odd names"
mkdir -p "$ODD/dev" "$ODD/a b"
for f in README readme "100%00.txt" "..%2fescape" dev/null CON "tab	name" "a b/ü.txt"; do
    printf '%s %s\n' "$ATK_MARK" "$f" >"$ODD/$f"
done
dp_publish "$ODD" "$T/dp" CEN000C0.1
HODD=$PKG_HASH SODD=$PKG_SIZE
dp_start "$T/dp"

EVIL_H=$(printf 'evil\n' | sha256sum | cut -d' ' -f1)
INSTALL_H=$(file_hash "$T/src/install.sh")
# listing C FORMAT... -- write the DP's listing of content C: one line per FORMAT, each a printf
# %b string for the path (so \n, \r, \\ and \0 give those bytes), hashed as "evil\n"; install.sh
# is listed as it is. Also serves each path where a sloppy URL join would land, so a careless
# agent would really receive it. Sets LH (the listing's hash) for the policy.
listing()
{
    local c=$1 spec
    shift
    mkdir -p "$T/dp/$c"
    cp "$T/src/install.sh" "$T/dp/$c/install.sh"
    : >"$T/dp/$c.sums"
    for spec in "$@"; do
        if [[ $spec == install.sh ]]; then
            printf '%s  install.sh\n' "$INSTALL_H" >>"$T/dp/$c.sums"
        else
            printf '%s  %b\n' "$EVIL_H" "$spec" >>"$T/dp/$c.sums"
        fi
    done
    LH=$(file_hash "$T/dp/$c.sums")
}

LONG_SEG=$(printf 'x%.0s' {1..256})
LONG_PATH=""
for ((k = 0; k < 20; k++)); do
    LONG_PATH+=$(printf 'y%.0s' {1..200})/
done
LONG_PATH+=$(printf 'w%.0s' {1..77}) # 20 * 201 + 77 = 4097 bytes
[[ ${#LONG_PATH} -eq 4097 ]] || fail "the long path has 4097 bytes" "${#LONG_PATH}"

# id | listing lines | code | reason in the error detail
CASES=(
    "CEN000B1.1|../x;install.sh|0x8007007B|'.' or '..' segment in path '../x'"
    "CEN000B2.1|$T/abs-escape;install.sh|0x8007007B|absolute path '$T/abs-escape'"
    "CEN000B3.1|a//b;install.sh|0x8007007B|empty segment in path 'a//b'"
    "CEN000B4.1|.;install.sh|0x8007007B|'.' or '..' segment in path '.'"
    "CEN000B5.1|..;install.sh|0x8007007B|'.' or '..' segment in path '..'"
    "CEN000B6.1|docs/./x;install.sh|0x8007007B|'.' or '..' segment in path 'docs/./x'"
    "CEN000B7.1|docs/;install.sh|0x8007007B|empty segment in path 'docs/'"
    "CEN000B8.1|install.sh|0x8007000D|sums line 2: expected a hash of 64 hex digits at the start, found 0"
    "CEN000B9.1|install.sh;x\\nline|0x8007000D|sums line 3: expected a hash of 64 hex digits at the start, found 0"
    "CEN000BA.1|a\\rb;install.sh|0x8007000D|sums line 1: carriage return"
    "CEN000BB.1|a\\\\b;install.sh|0x8007007B|backslash in path after 'a'"
    "CEN000BC.1|a\\0b;install.sh|0x8007007B|NUL byte in path after 'a'"
    "CEN000BD.1|$LONG_PATH;install.sh|0x8007007B|path longer than 4096 bytes"
    "CEN000BE.1|$LONG_SEG;install.sh|0x8007007B|segment longer than 255 bytes"
    "CEN000BF.1|/dev/null;install.sh|0x8007007B|absolute path '/dev/null'"
    "CEN000C1.1|dup;dup;install.sh|0x8007007B|sums line 2: duplicate path 'dup'"
    "CEN000C2.1|a;a/b;install.sh|0x8007007B|sums line 2: 'a' is listed as a file and as a folder"
)
# The escaped newline: what sha256sum itself prints for a file named "new<LF>line" (a leading
# backslash, the name with \n): not a sums line the contract allows.
(
    cd "$T" && printf 'evil\n' >"new
line" && sha256sum "new
line" && rm -f "new
line"
) >"$T/escaped.line"
grep -q '^\\[0-9a-f]\{64\}  new\\nline$' "$T/escaped.line" ||
    fail "sha256sum escapes a newline in a name" "$(cat "$T/escaped.line")"

adverts=$(advert_json id=CEN20001 package=CEN00002 version=1 hash="$H2" size="$S2")
declare -A CODE_OF WHY_OF
for k in "${!CASES[@]}"; do
    IFS='|' read -r c lines code why <<<"${CASES[$k]}"
    IFS=';' read -r -a specs <<<"$lines"
    listing "$c" "${specs[@]}"
    if [[ $c == CEN000B8.1 ]]; then
        # A newline in a name as sha256sum prints it: the escaped line after install.sh's.
        cat "$T/escaped.line" >>"$T/dp/$c.sums"
        LH=$(file_hash "$T/dp/$c.sums")
    fi
    CODE_OF[$c]=$code WHY_OF[$c]=$why
    adverts+=,$(advert_json id="AD${c%.1}" package="${c%.1}" version=1 hash="$LH" size=100000)
done
# Where a sloppy join of "../x" would land, the attacker's bytes wait (if the DP is ever asked).
printf '%s\n' "$ATK_MARK" >"$T/dp/x"
adverts+=,$(advert_json id=ADCEN000C0 package=CEN000C0 version=1 hash="$HODD" size="$SODD")
write_policy "$T/policy.json" serial=8 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 8 applied, CEN20001 ran"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
atk_snapshot 8

abs_existed=0
[[ -e $T/abs-escape ]] && abs_existed=1
before=$(cd "$T" && find . -path ./log -prune -o -path ./state -prune -o -path ./root/cache -prune -o \
    -path './nginx-*' -prune -o -print | LC_ALL=C sort)
null_before=$(stat -c '%F %t:%T' /dev/null)

for k in "${!CASES[@]}"; do
    IFS='|' read -r c _ _ _ <<<"${CASES[$k]}"
    pkg=${c%.1}
    code=${CODE_OF[$c]}
    echo "# $c: $code, ${WHY_OF[$c]:0:100}"
    assert_exit 1 agent execute "AD$pkg"
    assert_error "$code"
    grep -E "^cas-agent: error $code: " "$LAST_ERR" | grep -F -- "${WHY_OF[$c]}" >/dev/null ||
        fail "the error names the reason: ${WHY_OF[$c]}" "stderr: $(head -c 600 "$LAST_ERR")"
    ok "the error names the reason: ${WHY_OF[$c]}"
    atk_nothing_ran "AD$pkg"
    assert_log_type "$LOGS/CAS.log" "Download failed for content $c under context System, error $code" 3
    log_texts "$LOGS/CAS.log" | grep -F "Cannot get the sums listing of content $c: the signed sums listing of content $c is not acceptable: " |
        grep -F -- "${WHY_OF[$c]}" >/dev/null ||
        fail "CAS.log says why the listing of $c is not acceptable" "$(_lib_tail "$LOGS/CAS.log" 5)"
    ok "CAS.log says why the listing of $c is not acceptable"
    assert_log_has "$LOGS/execmgr.log" "Content $c is not available for program install.sh, error $code"
    assert_not_cached "$c"
    reqs=$(dp_requests "$DP_URL" | grep -F "/$c" | sort -u | tr '\n' ' ')
    assert_eq "$DP_PREFIX/$c.sums " "$reqs" "only the listing of $c was requested"
done

echo "# nothing escaped"
after=$(cd "$T" && find . -path ./log -prune -o -path ./state -prune -o -path ./root/cache -prune -o \
    -path './nginx-*' -prune -o -print | LC_ALL=C sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v -x -e ./last.out -e ./last.err || true)
assert_eq "" "$new" "no new file in the test folder outside the cache"
assert_eq "cache" "$(ls -A "$T/root")" "only the cache folder next to the cache"
[[ $abs_existed -eq 1 ]] || assert_no_file "$T/abs-escape"
assert_eq "$null_before" "$(stat -c '%F %t:%T' /dev/null)" "/dev/null is still the character device"
leftover=$(find "$CACHE" -mindepth 1 -name 'CEN000B*' 2>/dev/null || true)
assert_eq "" "$leftover" "nothing of the refused contents in the cache"
atk_no_marker

echo "# after the attacks"
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"

echo "# not over-refused: odd but allowed names"
assert_exit 0 agent execute ADCEN000C0
assert_eq 1 "$(proof_runs ADCEN000C0)" "the program ran"
assert_download_succeeded CEN000C0.1
assert_same_tree "$ODD" "$CACHE/CEN000C0.1"
odd=$(find "$CACHE/CEN000C0.1" -mindepth 1 ! -type f ! -type d)
assert_eq "" "$odd" "every name in the entry is a regular file or a folder"
for f in "100%00.txt" "..%2fescape" "dev/null" "a b/ü.txt"; do
    dp_requests "$DP_URL" | grep -qxF "$DP_PREFIX/CEN000C0.1/$(printf '%s' "$f" | sed 's/%/%25/g; s/ /%20/g; s/ü/%C3%BC/g')" ||
        fail "$f was asked for percent-encoded" "$(dp_requests "$DP_URL" | grep CEN000C0.1)"
    ok "$f was asked for percent-encoded"
done
assert_eq "$null_before" "$(stat -c '%F %t:%T' /dev/null)" "/dev/null is still the character device"

assert_cmtrace_logs
done_testing
