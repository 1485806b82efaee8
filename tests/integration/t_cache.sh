#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The bounded, shared cache with the real agent and nginx: room made least recently used first,
# persistent content kept, 0x87D01201 and 0x87D01202 refusals that remove nothing, an entry in use
# refused to `cache delete` (0x87D01203), a changed cache file found by `cache verify` and by
# `execute` (which downloads afresh and runs only verified content), a damaged index rebuilt
# with a warning, two processes sharing one download, `cache clean` and `status`.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_cache"

make_site_key CEN
make_package "$T/src"
head -c 400000 /dev/urandom >"$T/src/data/blob.bin"
# A program that runs for a while, to be "in use".
# shellcheck disable=SC2016 # the $1, $2 are the script's own
printf '#!/bin/sh\nprintf "ran %%s\\n" "$2" >>"$1/ran-$2"\nsleep 3\n' >"$T/src/slow.sh"
mkdir -p "$T/dp"
IDS=(CEN00071.1 CEN00072.1 CEN00073.1 CEN00074.1 CEN00075.1 CEN00076.1 CEN00077.1 CEN00078.1)
for c in "${IDS[@]}"; do
    dp_publish "$T/src" "$T/dp" "$c"
done
H=$PKG_HASH
SIZE=$PKG_SIZE
mkdir -p "$T/big/data"
head -c 1200000 /dev/urandom >"$T/big/data/big.bin"
dp_publish "$T/big" "$T/dp" CEN00079.1
BIG_H=$PKG_HASH
BIG_SIZE=$PKG_SIZE
dp_start "$T/dp"

adverts=""
for c in "${IDS[@]}"; do
    p=${c%.1}
    extra=()
    [[ $c == CEN00074.1 ]] && extra=(persist=true)
    [[ $c == CEN00075.1 ]] && extra=(command=slow.sh)
    adverts+="${adverts:+,}$(advert_json id="CEN2${p:4}" package="$p" version=1 hash="$H" size="$SIZE" "${extra[@]}")"
done
adverts+=",$(advert_json id=CEN20079 package=CEN00079 version=1 hash="$BIG_H" size="$BIG_SIZE")"
write_policy "$T/policy.json" serial=1 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
CASLOG=$LOGS/CAS.log

cached_ids() { find "$CACHE" -maxdepth 1 -name '*.sums' -printf '%f\n' | sed 's/\.sums$//' | sort | paste -sd' '; }

echo "# a 1 MiB cache holds two of these ($SIZE bytes each); the third makes room, least recently used first"
write_config cache_size_mb=1 cache_min_retention_minutes=0
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent download CEN00071.1
sleep 1.1
assert_exit 0 agent download CEN00072.1
sleep 1.1
assert_exit 0 agent execute CEN20071 # CEN00071.1 is now the more recently used
assert_eq 1 "$(proof_runs CEN20071)" "the program ran"
sleep 1.1
assert_exit 0 agent download CEN00073.1
assert_eq "CEN00071.1 CEN00073.1" "$(cached_ids)" "CEN00072.1, the least recently used, was removed"
line=$(log_find "$CASLOG" "^Removed content CEN00072\\.1 \\($SIZE bytes, last used [0-9T:-]+Z\\) from the cache: room for content CEN00073\\.1; not persistent, not in use, unused for at least 0 minutes\$")
[[ -n $line ]] || fail "CAS.log says what was removed and why" "$(log_texts "$CASLOG" | tail -5)"
ok "CAS.log: $line"
assert_log_has "$CASLOG" "Making room for content CEN00073.1: it needs $SIZE bytes, the cache holds $((2 * SIZE)) of 1048576; removing $((3 * SIZE - 1048576)) bytes of unused content, least recently used first"

echo "# persistent content stays even when it is the least recently used"
assert_exit 0 agent cache delete CEN00071.1
assert_exit 0 agent cache delete CEN00073.1
assert_exit 0 agent download CEN00074.1 # persist: true
sleep 1.1
assert_exit 0 agent download CEN00076.1
sleep 1.1
assert_exit 0 agent download CEN00077.1
assert_eq "CEN00074.1 CEN00077.1" "$(cached_ids)" "the persistent entry stayed, CEN00076.1 went"
assert_exit 0 agent cache list
grep -Eq '^CEN00074\.1 .* persist$' "$LAST_OUT" || fail "cache list flags the persistent entry" "$(cat "$LAST_OUT")"
ok "cache list flags the persistent entry"

echo "# not enough removable content: 0x87D01201, nothing removed, the program does not run"
write_config cache_size_mb=1 cache_min_retention_minutes=1440
assert_exit 1 agent execute CEN20078
assert_error 0x87D01201
assert_eq 0 "$(proof_runs CEN20078)" "the program did not run"
assert_eq "CEN00074.1 CEN00077.1" "$(cached_ids)" "nothing was removed"
assert_not_cached CEN00078.1
line=$(log_find "$CASLOG" "^Not enough cache space for content CEN00078\\.1: content CEN00078\\.1 needs $SIZE bytes: the cache holds $((2 * SIZE)) of 1048576, and only 0 can be removed \\(in use 0, persistent $SIZE, used within 1440 minutes $SIZE\\)\$")
[[ -n $line ]] || fail "CAS.log explains the refusal" "$(log_texts "$CASLOG" | tail -5)"
ok "CAS.log: $line"
assert_log_has "$CASLOG" "Download failed for content CEN00078.1 under context System, error 0x87D01201"

echo "# content larger than the whole cache: 0x87D01202 at once"
assert_exit 1 agent execute CEN20079
assert_error 0x87D01202
assert_eq 0 "$(proof_runs CEN20079)" "the program did not run"
assert_not_cached CEN00079.1
assert_eq "CEN00074.1 CEN00077.1" "$(cached_ids)" "nothing was removed"

echo "# in use: a delete while the program runs is refused"
write_config
"$CAS_AGENT" --config "$CFG" execute CEN20075 >"$T/slow.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
    [[ $(proof_runs CEN20075) -eq 1 ]] && break
    sleep 0.1
done
assert_eq 1 "$(proof_runs CEN20075)" "the slow program started"
assert_exit 1 agent cache delete CEN00075.1
assert_error 0x87D01203
assert_exit 0 agent cache list
grep -Eq '^CEN00075\.1 .* in-use$' "$LAST_OUT" || fail "cache list shows it in use" "$(cat "$LAST_OUT")"
ok "cache list shows it in use"
assert_exit 0 agent status
assert_stdout_has ", 1 in use, 1 persistent"
rc=0
wait "$pid" || rc=$?
assert_eq 0 "$rc" "the program's execute ended well"
assert_exit 0 agent cache delete CEN00075.1
assert_stdout_has "Deleted CEN00075.1"
assert_not_cached CEN00075.1
assert_exit 1 agent cache delete CEN00075.1
assert_error 0x87D00607

echo "# a cache file changed after commit: cache verify reports it and changes nothing"
F="$CACHE/CEN00077.1/data/blob.bin"
good=$(file_hash "$T/src/data/blob.bin")
chmod u+w "$F"
printf 'X' | dd of="$F" bs=1 seek=100 conv=notrunc status=none
bad=$(file_hash "$F")
assert_exit 1 agent cache verify CEN00077.1
assert_error 0x80091007
assert_stdout_has "file data/blob.bin changed: expected ${good^^}, actual ${bad^^}"
line=$(log_find "$CASLOG" "^Content CEN00077\\.1 in the cache does not match its hash, error 0x80091007: expected ${H^^}, actual [0-9A-F]{64}; file data/blob\\.bin changed: expected ${good^^}, actual ${bad^^}\$")
[[ -n $line ]] || fail "CAS.log names the changed file" "$(log_texts "$CASLOG" | tail -5)"
ok "CAS.log names the changed file"
assert_file "$CACHE/CEN00077.1.sums"
assert_exit 1 agent cache verify # all entries: the one changed one makes it fail
assert_error 0x80091007
assert_stdout_has "CEN00074.1	verified	${H^^}"

echo "# execute finds it too, downloads afresh, and runs only the verified copy"
assert_exit 0 agent execute CEN20077
assert_eq 1 "$(proof_runs CEN20077)" "the program ran once, from verified content"
assert_log_has "$CASLOG" "Removing content CEN00077.1 from the cache and downloading it again"
assert_download_succeeded CEN00077.1
assert_same_tree "$T/src" "$CACHE/CEN00077.1"
assert_exit 0 agent cache verify CEN00077.1
assert_stdout_has "CEN00077.1	verified	${H^^}"

echo "# a damaged index is rebuilt from the folders, with a warning"
printf '{"version":1,"entries":[' >"$CACHE/.index.json"
assert_exit 0 agent cache list
grep -q '^CEN00077\.1 ' "$LAST_OUT" || fail "cache list still lists the entries" "$(cat "$LAST_OUT")"
ok "cache list still lists the entries"
line=$(log_find "$CASLOG" "^The cache index .*/\\.index\\.json is damaged; rebuilt from the cache folders \\(2 entries\\)")
[[ -n $line ]] || fail "CAS.log warns that the index was rebuilt" "$(log_texts "$CASLOG" | tail -3)"
ok "CAS.log warns that the index was rebuilt"
grep -q '"version":	1' "$CACHE/.index.json" || fail "the index was written back" "$(cat "$CACHE/.index.json")"
ok "the index was written back"

echo "# two processes ask for the same content at once: one transfer, both succeed"
# (no dedup: the files would be copied from CEN00077.1 instead of transferred)
write_config max_download_kbps=800 cache_dedup=false # 100000 B/s: about 4 s, so the two overlap
before=$(dp_requests "$DP_URL" | grep -cx "$DP_PREFIX/CEN00072.1/data/blob.bin" || true)
"$CAS_AGENT" --config "$CFG" download CEN00072.1 >"$T/c1.out" 2>&1 &
p1=$!
"$CAS_AGENT" --config "$CFG" download CEN00072.1 >"$T/c2.out" 2>&1 &
p2=$!
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
assert_eq "0 0" "$rc1 $rc2" "both downloads succeeded"
n=$(dp_requests "$DP_URL" | grep -cx "$DP_PREFIX/CEN00072.1/data/blob.bin")
assert_eq 1 "$((n - before))" "the big file was transferred once for the two requests"
assert_log_has "$CASLOG" "Content CEN00072.1 was downloaded by another request meanwhile"

echo "# cache clean removes what may be removed; status shows use against the limit"
write_config cache_min_retention_minutes=0
assert_exit 0 agent cache clean
assert_stdout_has "Removed 2 entries, $((2 * SIZE)) bytes"
assert_eq "CEN00074.1" "$(cached_ids)" "only the persistent entry is left"
assert_exit 0 agent status --json
grep -q "\"entries\":1,\"used_bytes\":$SIZE,\"limit_bytes\":5368709120,\"in_use\":0,\"persistent\":1" "$LAST_OUT" ||
    fail "status --json shows cache use against the limit" "$(cat "$LAST_OUT")"
ok "status --json shows cache use against the limit"

assert_cmtrace_logs
done_testing
