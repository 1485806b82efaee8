#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# A good package is downloaded, verified and run; the CAS.log / execmgr.log records are the ones the
# real client writes; the cache holds exactly the package; a second execute uses the cache.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_good_package"

write_config
make_site_key CEN
make_package "$T/src"
# Edge cases a package may hold: an empty file, a deep path with unreserved URL characters.
: >"$T/src/empty.txt"
mkdir -p "$T/src/deep/er/still"
echo deep >"$T/src/deep/er/still/file-~_.x"

C=CEN00002.3
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" "$C"
dp_start "$T/dp"
# The program gets its args directly (no shell): the 4th would create a file if a shell ran it.
write_policy "$T/policy.json" serial=1 adverts="$(advert_json id=CEN20001 package=CEN00002 version=3 \
    args="\"$PROOF\", \"good run\", \"0\", \"\$(touch $PROOF/shell-used)\"")"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_log_has "$LOGS/execmgr.log" "Program output: hello from the test package"
assert_eq 1 "$(proof_runs 'good run')" "the program ran once with the args from policy"
assert_eq "ran good run cwd=$(realpath "$CACHE/$C")" "$(cat "$PROOF/ran-good run")" \
    "the program ran in <cache_dir>/$C"
assert_no_file "$PROOF/shell-used"

# --- CAS.log: the download sequence
CASLOG=$LOGS/CAS.log
K=$(kb_of "$PKG_SIZE")
C_RE=${C//./\\.}
g1_line=$(log_find "$CASLOG" "^Submitted CTM job $GUID_RE to download Content $C_RE under context System\$")
g_line=$(log_find "$CASLOG" "^Successfully created download  request $GUID_RE for content $C_RE\$")
[[ -n $g1_line ]] || fail "CAS.log has 'Submitted CTM job {GUID} to download Content $C under context System'" \
    "GUID must match $GUID_RE" "$(log_texts "$CASLOG" | head -5)"
ok "CAS.log: Submitted CTM job with an upper-case v4 GUID"
[[ -n $g_line ]] || fail "CAS.log has 'Successfully created download  request {GUID} for content $C'" \
    "(two spaces after 'download'; GUID must match $GUID_RE)" "$(log_texts "$CASLOG" | head -5)"
ok "CAS.log: Successfully created download  request with an upper-case v4 GUID"
G1=$(grep -oE "$GUID_RE" <<<"$g1_line")
G=$(grep -oE "$GUID_RE" <<<"$g_line")

assert_log_order "$CASLOG" \
    "Requesting content $C, size(KB) $K, under context System" \
    "Submitted CTM job $G1 to download Content $C under context System" \
    "Successfully created download  request $G for content $C" \
    "Location update from CTM for content $C and request $G" \
    "Download started for content $C" \
    "Download completed for content $C under context System" \
    "Hash verification succeeded for content $C downloaded under context System" \
    "Download succeeded for download request $G"
assert_log_sequence "$CASLOG" \
    "Download completed for content $C under context System" \
    "Hash verification succeeded for content $C downloaded under context System" \
    "Download succeeded for download request $G"
for line in "Download completed for content $C under context System" \
    "Hash verification succeeded for content $C downloaded under context System" \
    "Download succeeded for download request $G"; do
    assert_log_type "$CASLOG" "$line" 1
done
# Verbose per-file lines (log_level 0), each between "Download started" and "Download completed".
while IFS= read -r p; do
    n=$(stat -c %s "$T/src/$p")
    assert_log_order "$CASLOG" "Download started for content $C" \
        "Hash matches for file $p of content $C ($n bytes) served by $DP_URL" \
        "Download completed for content $C under context System"
done < <(cd "$T/src" && find . -type f -printf '%P\n' | LC_ALL=C sort)
assert_eq 1 "$(log_count "$CASLOG" "Download started for content $C")" "one download started"

# --- execmgr.log
assert_log_order "$LOGS/execmgr.log" \
    "Execution Request for advert CEN20001 package CEN00002 program install.sh state change from NotExist to WaitingContent" \
    "Requesting content from CAS for package CEN00002 version 3" \
    "Content $C is available for program install.sh" \
    "Executing program install.sh under context System" \
    "Execution is complete for program install.sh. The exit code is 0, the execution status is Success"

# --- the cache holds exactly the package, nothing staged
assert_same_tree "$T/src" "$CACHE/$C"
assert_same_file "$T/dp/$C.sums" "$CACHE/$C.sums"
assert_no_partial
[[ -x $CACHE/$C/install.sh ]] || fail "the agent made the command executable in the cache" \
    "$(ls -l "$CACHE/$C/install.sh")"
ok "the agent made the command executable in the cache"

assert_exit 0 agent cache list
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
assert_eq "CONTENT        FILES          BYTES  LAST USED             VERIFIED              FLAGS" \
    "$(head -1 "$LAST_OUT")" "cache list: the header"
tail -n +2 "$LAST_OUT" | grep -Ex "$C +$PKG_FILES +$PKG_SIZE  $TS  $TS  -" >/dev/null ||
    fail "cache list shows the content, its file count, bytes, last use, verification, no flags" \
        "$(cat "$LAST_OUT")"
ok "cache list shows the content, its file count, bytes, last use, verification, no flags"
assert_exit 0 agent cache list --json
grep -Eqx "\[\{\"content\":\"$C\",\"files\":$PKG_FILES,\"size\":$PKG_SIZE,\"last_used\":\"$TS\",\"verified\":\"$TS\",\"persist\":false,\"in_use\":false\}\]" \
    "$LAST_OUT" || fail "cache list --json" "$(cat "$LAST_OUT")"
ok "cache list --json"

# --- a second execute uses the cache (in a time zone east of UTC, for the bias check below)
TZ_EAST=Asia/Kolkata # UTC+05:30 all year: Windows' bias -330
if [[ ! -e /usr/share/zoneinfo/$TZ_EAST ]]; then
    TZ_EAST=UTC
fi
assert_exit 0 env TZ=$TZ_EAST "$CAS_AGENT" --config "$CFG" execute CEN20001
assert_eq 2 "$(proof_runs 'good run')" "the program ran a second time"
assert_log_has "$CASLOG" "Content $C is already in the cache and verified"
assert_eq 1 "$(log_count "$CASLOG" "Download started for content $C")" \
    "the second execute started no download"
assert_eq 1 "$(grep -c "GET $DP_PREFIX/$C.sums " "$(dp_access_log "$DP_URL")")" \
    "the DP served the listing once"

# --- one job, one GUID: every record of the download carries its request GUID as context
G=$(request_guid "$C")
for f in ContentTransferManager DataTransferService; do
    other=$(grep -vcF "context=\"$G\"" "$LOGS/$f.log" || true)
    assert_eq 0 "$other" "every $f.log record of the job has context=\"$G\""
done
n_cas=$(grep -cF "context=\"$G\"" "$CASLOG" || true)
((n_cas >= 8)) || fail "CAS.log's job records carry the GUID" "$n_cas records"
ok "CAS.log: $n_cas records of the job carry context=\"$G\", from the request to its result"
grep -F "<![LOG[Download succeeded for download request $G]LOG]!>" "$CASLOG" | grep -F "context=\"$G\"" >/dev/null ||
    fail "the job's last CAS.log record carries the GUID"
ok "the job's last CAS.log record carries the GUID"

# --- every log line is CMTrace; the time-zone bias is Windows' (UTC = local time + bias)
assert_cmtrace_logs
# win_bias TZ|local -- the bias field for that zone now: +0530 -> -330, -0400 -> +240, +0000 -> +000.
win_bias()
{
    local z bias sign=+
    if [[ $1 == local ]]; then
        z=$(date +%z)
    else
        z=$(TZ=$1 date +%z)
    fi
    bias=$((10#${z:1:2} * 60 + 10#${z:3:2}))
    if [[ ${z:0:1} == + && $bias -ne 0 ]]; then
        sign=-
    fi
    printf '%s%03d' "$sign" "$bias"
}
bias_of() { sed -n 's/.*time="[0-9:.]\{12\}\([+-][0-9]\{3\}\)".*/\1/p'; }
assert_eq "$(win_bias local)" "$(head -1 "$CASLOG" | bias_of)" "CAS.log time bias for the local zone"
assert_eq "$(win_bias "$TZ_EAST")" \
    "$(grep -F "<![LOG[Content $C is already in the cache and verified]LOG]!>" "$CASLOG" | bias_of)" \
    "CAS.log time bias under TZ=$TZ_EAST"

done_testing
