#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# What DataTransferService.log and the terminal show of a job: the states in order
# (DownloadingManifest, RetrievedManifest, DownloadingData, RetrievedData, NotifiedComplete), a
# periodic progress line while a throttled job runs, the end line with the exact file and byte
# counts, elapsed time and rate; a progress bar on a terminal (made with script(1)) for `download`
# and `execute`, and none on a pipe.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_progress"

make_site_key CEN
make_package "$T/src"
head -c 409600 /dev/urandom >"$T/src/data/blob.bin"
mkdir -p "$T/dp"
for c in CEN00031.1 CEN00032.1 CEN00033.1; do
    dp_publish "$T/src" "$T/dp" "$c"
done
H=$PKG_HASH
SIZE=$PKG_SIZE
NFILES=$PKG_FILES
dp_start "$T/dp"
write_policy "$T/policy.json" serial=1 adverts="$(
    advert_json id=CEN20031 package=CEN00031 version=1 hash="$H"
    echo ,
    advert_json id=CEN20032 package=CEN00032 version=1 hash="$H"
    echo ,
    advert_json id=CEN20033 package=CEN00033 version=1 hash="$H"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
DTS=$LOGS/DataTransferService.log

echo "# a throttled download on a pipe: states, a progress line, the end line; no bar"
# 512 kbit/s = 64000 B/s: about 6.5 s, so one periodic line (every 5 s) falls inside the job.
write_config max_download_kbps=512
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent download CEN00031.1
assert_download_succeeded CEN00031.1
[[ $LAST_ERR != *%* && $LAST_ERR != *$'\r'* ]] ||
    fail "no progress bar on a pipe" "stderr: $(printf '%q' "$LAST_ERR")"
ok "no progress bar on a pipe"
line=$(log_find "$DTS" "^DTS job $GUID_RE created for content CEN00031\\.1 \\(CTM job $GUID_RE\\)\$")
[[ -n $line ]] || fail "DataTransferService.log has the job's creation" "$(log_texts "$DTS" | head)"
ok "DataTransferService.log: $line"
[[ $line =~ ^DTS\ job\ (\{[^}]*\}).*\(CTM\ job\ (.*)\)$ ]]
J=${BASH_REMATCH[1]}
CTM=${BASH_REMATCH[2]}
assert_log_order "$DTS" \
    "DTS job $J created for content CEN00031.1 (CTM job $CTM)" \
    "DTS job $J state DownloadingManifest for content CEN00031.1" \
    "DTS job $J state RetrievedManifest: $NFILES file(s)" \
    "DTS job $J state DownloadingData: $NFILES file(s), at most $SIZE bytes" \
    "DTS job $J state NotifiedComplete"
num='[0-9]+'
prog=$(log_find "$DTS" "^DTS job $J progress\\. Total Files: $NFILES, Transferred Files: $num, Total Bytes: $SIZE, Transferred Bytes: $num, elapsed [0-9]+\\.[0-9]{3} s, [0-9]+\\.[0-9] KiB/s\$")
[[ -n $prog ]] || fail "a periodic progress line while the job ran" "$(log_texts "$DTS" | grep -F "$J")"
[[ $prog =~ Transferred\ Bytes:\ ([0-9]+), ]]
got=${BASH_REMATCH[1]}
((got > 0 && got < SIZE)) || fail "the periodic line counts part of the bytes" "$prog"
ok "a periodic progress line: $prog"
end=$(log_find "$DTS" "^DTS job $J state RetrievedData\\. Total Files: $NFILES, Transferred Files: $NFILES, Total Bytes: $SIZE, Transferred Bytes: $SIZE, elapsed [0-9]+\\.[0-9]{3} s, [0-9]+\\.[0-9] KiB/s\$")
[[ -n $end ]] || fail "the end line counts every file and byte" "$(log_texts "$DTS" | grep -F "$J")"
ok "the end line: $end"
[[ $end =~ elapsed\ ([0-9]+)\.[0-9]+\ s,\ ([0-9]+)\.[0-9]\ KiB/s$ ]]
el=${BASH_REMATCH[1]}
rate=${BASH_REMATCH[2]}
((el >= 5 && el <= 9)) || fail "elapsed time of a ~6.5 s throttled job" "$end"
((rate >= 50 && rate <= 66)) || fail "rate of a job capped at 62.5 KiB/s" "$end"
ok "elapsed ${el} s and ${rate} KiB/s agree with the cap"

echo "# on a terminal: download and execute draw a bar"
write_config
command -v script >/dev/null || fail "script(1) is needed (Debian: bsdutils)" ""
script -qfec "$CAS_AGENT --config $CFG download CEN00032.1" "$T/tty-download.txt" >/dev/null 2>&1 ||
    fail "download on a terminal exits 0" "$(cat -v "$T/tty-download.txt")"
assert_download_succeeded CEN00032.1
grep -aq "CEN00032.1 100.0%  $SIZE/$SIZE bytes .* MiB/s  ETA 0 s  files $NFILES/$NFILES" \
    "$T/tty-download.txt" || fail "the bar of download: percent, bytes, rate, ETA, files" \
    "$(cat -v "$T/tty-download.txt")"
ok "download draws the bar: $(tr '\r' '\n' <"$T/tty-download.txt" | grep -a '100.0%' | head -1)"
script -qfec "$CAS_AGENT --config $CFG execute CEN20033" "$T/tty-execute.txt" >/dev/null 2>&1 ||
    fail "execute on a terminal exits 0" "$(cat -v "$T/tty-execute.txt")"
assert_eq 1 "$(proof_runs CEN20033)" "the program ran"
grep -aq "CEN00033.1 100.0%  $SIZE/$SIZE bytes .* files $NFILES/$NFILES" "$T/tty-execute.txt" ||
    fail "the bar of execute" "$(cat -v "$T/tty-execute.txt")"
ok "execute draws the bar"

assert_no_partial
assert_cmtrace_logs
done_testing
