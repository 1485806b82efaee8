#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Files a new version shares with content already in the cache are copied from the cache instead
# of downloaded. A 200-file package (196 small files, a 1 MiB file, make_package's three) is
# downloaded as CEN00061.1; version 2, where one small file changed, then costs the DP only its
# sums listing and that one file (measured in nginx's access log), and CAS.log says how many
# files and bytes came from the cache. A cache file changed after its commit is never copied:
# version 3 (the content of version 1 again) downloads the file whose only cached copy changed,
# and takes another entry's good copy of a second changed file. The copies are separate files
# (never hard links), and every new entry verifies. As root, a disk that runs out while copying
# ends the job with 0x80070070, and the next job finishes it.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_dedup"

CASLOG=$LOGS/CAS.log
DTS=$LOGS/DataTransferService.log
# One verbose record per file: a log big enough that every job's records stay in CAS.log.
write_config log_max_size=10000000
make_site_key CEN

# v1: 200 files
make_package "$T/v1"
mkdir -p "$T/v1/files"
for i in $(seq -w 1 196); do
    head -c $((1024 + RANDOM % 4096)) /dev/urandom >"$T/v1/files/f$i.bin"
done
head -c $((1024 * 1024)) /dev/urandom >"$T/v1/data/big.bin"
# v2: the same but one small file; v3: v1 again
cp -R "$T/v1" "$T/v2"
CHANGED=files/f100.bin
head -c 2345 /dev/urandom >"$T/v2/$CHANGED"
cp -R "$T/v1" "$T/v3"

mkdir -p "$T/dp"
dp_publish "$T/v1" "$T/dp" CEN00061.1
H1=$PKG_HASH S1=$PKG_SIZE
assert_eq 200 "$PKG_FILES" "version 1 has 200 files"
dp_publish "$T/v2" "$T/dp" CEN00061.2
H2=$PKG_HASH S2=$PKG_SIZE
dp_publish "$T/v3" "$T/dp" CEN00061.3
H3=$PKG_HASH S3=$PKG_SIZE
dp_start "$T/dp"
ACCESS=$(dp_access_log "$DP_URL")
write_policy "$T/policy.json" serial=1 adverts="$(
    advert_json id=CEN20061 package=CEN00061 version=1 hash="$H1" size="$S1"
    echo ,
    advert_json id=CEN20062 package=CEN00061 version=2 hash="$H2" size="$S2"
    echo ,
    advert_json id=CEN20063 package=CEN00061 version=3 hash="$H3" size="$S3"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

# served_since N C -- "PATH STATUS BYTES" of the requests for content C after the first N lines of
# the access log (path without the DP prefix), sorted.
served_since()
{
    tail -n +"$(($1 + 1))" "$ACCESS" |
        awk -v p="$DP_PREFIX/$2" -v n=${#DP_PREFIX} \
            '$7 == p ".sums" || index($7, p "/") == 1 { print substr($7, n + 2), $9, $10 }' |
        LC_ALL=C sort
}
# bytes_of LINES -- the sum of the third column
bytes_of()
{
    awk '{ s += $3 } END { print s + 0 }' <<<"$1"
}
log_lines()
{
    if [[ -f $ACCESS ]]; then wc -l <"$ACCESS"; else echo 0; fi
}
# dts_end C -- the RetrievedData record of the latest job for content C
dts_end()
{
    local g
    g=$(request_guid "$1")
    log_find "$DTS" "^DTS job $g state RetrievedData\. "
}

echo "# version 1, cold: everything comes from the DP"
mark=$(log_lines)
assert_exit 0 agent download CEN00061.1
assert_download_succeeded CEN00061.1
assert_same_tree "$T/v1" "$CACHE/CEN00061.1"
served1=$(served_since "$mark" CEN00061.1)
assert_eq 201 "$(wc -l <<<"$served1")" "version 1: the listing and 200 files were requested"
V1_BYTES=$(bytes_of "$served1")
assert_eq "$((S1 + $(stat -c %s "$T/dp/CEN00061.1.sums")))" "$V1_BYTES" \
    "version 1: the DP sent every byte of the content and its listing ($V1_BYTES bytes)"
assert_eq "" "$(log_find "$CASLOG" '^Content CEN00061\.1: .* copied from other content')" \
    "version 1: nothing was copied from the (empty) cache"

echo "# version 2: only the listing and the changed file are downloaded"
mark=$(log_lines)
assert_exit 0 agent download CEN00061.2
assert_download_succeeded CEN00061.2
assert_same_tree "$T/v2" "$CACHE/CEN00061.2"
served2=$(served_since "$mark" CEN00061.2)
SUMS2=$(stat -c %s "$T/dp/CEN00061.2.sums")
NEW=$(stat -c %s "$T/v2/$CHANGED")
assert_eq "CEN00061.2.sums 200 $SUMS2
CEN00061.2/$CHANGED 200 $NEW" "$served2" "version 2: the DP served only the listing and $CHANGED"
V2_BYTES=$(bytes_of "$served2")
assert_eq "$((SUMS2 + NEW))" "$V2_BYTES" "version 2: the DP sent $V2_BYTES bytes (version 1: $V1_BYTES)"
COPIED2=$((S2 - NEW))
assert_log_has "$CASLOG" "Content CEN00061.2: 199 of 200 file(s), $COPIED2 bytes, copied from other content in the cache instead of downloaded"
assert_log_type "$CASLOG" "Content CEN00061.2: 199 of 200 file(s), $COPIED2 bytes, copied from other content in the cache instead of downloaded" 1
assert_log_has "$CASLOG" "Copied file data/big.bin of content CEN00061.2 from cached content CEN00061.1 (1048576 bytes) instead of downloading it"
assert_eq 199 "$(log_texts "$CASLOG" | grep -c '^Copied file .* of content CEN00061\.2 from cached content CEN00061\.1 ' || true)" \
    "version 2: one 'Copied file' record per copied file"
assert_log_lacks "$CASLOG" "Copied file $CHANGED of content CEN00061.2 from cached content CEN00061.1 ($NEW bytes) instead of downloading it"
# DataTransferService counts the copies as transferred files.
end2=$(dts_end CEN00061.2)
[[ $end2 == *"Total Files: 200, Transferred Files: 200, Total Bytes: $S2, Transferred Bytes: $S2, "* ]] ||
    fail "DataTransferService.log: version 2 ends with 200 of 200 files, $S2 bytes" "found: $end2"
ok "DataTransferService.log: version 2 ends with 200 of 200 files, $S2 bytes"
assert_exit 0 agent cache verify CEN00061.2
assert_no_partial
# Copies, not links: an entry can be changed or removed without touching the other.
for f in data/big.bin files/f001.bin; do
    links=$(stat -c %h "$CACHE/CEN00061.2/$f")
    [[ $links == 1 && $(stat -c %i "$CACHE/CEN00061.2/$f") != "$(stat -c %i "$CACHE/CEN00061.1/$f")" ]] ||
        fail "CEN00061.2/$f is a file of its own" "links: $links"
    ok "CEN00061.2/$f is a file of its own, not a link to CEN00061.1's"
done

echo "# a changed cache file is never copied"
# files/f100.bin of version 1 is in CEN00061.1 only: it must be downloaded. data/payload.bin is
# also in CEN00061.2: that copy is used.
for f in "$CHANGED" data/payload.bin; do
    chmod u+w "$CACHE/CEN00061.1/$f"
    flip_byte "$CACHE/CEN00061.1/$f" 7
done
assert_exit 1 agent cache verify CEN00061.1
mark=$(log_lines)
assert_exit 0 agent download CEN00061.3
assert_download_succeeded CEN00061.3
assert_same_tree "$T/v3" "$CACHE/CEN00061.3"
served3=$(served_since "$mark" CEN00061.3)
OLD=$(stat -c %s "$T/v1/$CHANGED")
assert_eq "CEN00061.3.sums 200 $(stat -c %s "$T/dp/CEN00061.3.sums")
CEN00061.3/$CHANGED 200 $OLD" "$served3" "version 3: the DP served only the listing and $CHANGED"
for f in "$CHANGED" data/payload.bin; do
    e=$(upper "$(file_hash "$T/v1/$f")")
    a=$(upper "$(file_hash "$CACHE/CEN00061.1/$f")")
    line="File $f of content CEN00061.1 in the cache does not match its listing: expected $e, actual $a; it is not copied into other content"
    assert_log_has "$CASLOG" "$line"
    assert_log_type "$CASLOG" "$line" 2
done
assert_log_has "$CASLOG" "Copied file data/payload.bin of content CEN00061.3 from cached content CEN00061.2 (3000 bytes) instead of downloading it"
assert_log_has "$CASLOG" "Content CEN00061.3: 199 of 200 file(s), $((S3 - OLD)) bytes, copied from other content in the cache instead of downloaded"
assert_exit 0 agent cache verify CEN00061.3
assert_no_partial

echo "# the disk runs out while copying: 0x80070070, then the next job finishes"
if [[ $(id -u) -ne 0 ]]; then
    echo "# skipped: mounting a tmpfs needs root"
else
    mkdir -p "$T/small"
    if ! mount -t tmpfs -o size=16m cas-itest "$T/small" 2>/dev/null; then
        echo "# skipped: cannot mount a tmpfs here"
    else
        lib_on_exit "umount -l '$T/small' 2>/dev/null"
        CACHE=$T/small/cache
        write_config log_max_size=10000000
        assert_exit 0 agent download CEN00061.1
        # Room for a few more files only: the copies of version 2 run out of inodes.
        used=$(df --output=iused "$T/small" | tail -1 | tr -d ' ')
        mount -o remount,nr_inodes=$((used + 40)) "$T/small"
        assert_exit 1 agent download CEN00061.2
        assert_error 0x80070070
        assert_log_has "$CASLOG" "Download failed for content CEN00061.2 under context System, error 0x80070070"
        [[ -n $(log_find "$CASLOG" '^Cannot download content CEN00061\.2: .*: No space left on device$') ]] ||
            _lib_log_fail "CAS.log says the disk was full" "$CASLOG"
        ok "CAS.log says the disk was full"
        assert_no_file "$CACHE/CEN00061.2"
        assert_no_file "$CACHE/CEN00061.2.sums"
        mount -o remount,nr_inodes=$((used + 1000)) "$T/small"
        mark=$(log_lines)
        assert_exit 0 agent download CEN00061.2
        assert_download_succeeded CEN00061.2
        assert_same_tree "$T/v2" "$CACHE/CEN00061.2"
        assert_eq "CEN00061.2.sums 200 $SUMS2
CEN00061.2/$CHANGED 200 $NEW" "$(served_since "$mark" CEN00061.2)" \
            "after the full disk: again only the listing and $CHANGED were downloaded"
        assert_exit 0 agent cache verify CEN00061.2
    fi
fi

assert_cmtrace_logs
done_testing
