#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# A full disk: the cache on a small tmpfs (needs root to mount; skipped otherwise, exit 77).
# Content larger than the free space is refused before any transfer with 0x80070070; running out
# in the middle of a job (here: out of inodes) ends it with 0x80070070, leaves no entry in the
# cache, and the program does not run. The entry already in the cache and the index stay intact,
# and once the filesystem is grown the same job completes.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_disk_full"

if [[ $(id -u) -ne 0 ]]; then
    echo "# skipped: mounting a tmpfs needs root"
    exit 77
fi
mkdir -p "$T/small"
if ! mount -t tmpfs -o size=1m,nr_inodes=40 cas-itest "$T/small" 2>/dev/null; then
    echo "# skipped: cannot mount a tmpfs here"
    exit 77
fi
lib_on_exit "umount -l '$T/small' 2>/dev/null"
CACHE=$T/small/cache
write_config

make_site_key CEN
# Big: 2 MiB, more than the tmpfs holds. Many: 60 small files, more than its inodes.
mkdir -p "$T/big" "$T/many"
make_package "$T/big"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/big/data/big.bin"
make_package "$T/many"
for i in $(seq 1 60); do echo "file $i" >"$T/many/data/f$i.txt"; done
mkdir -p "$T/small-pkg"
make_package "$T/small-pkg"
mkdir -p "$T/dp"
dp_publish "$T/big" "$T/dp" CEN00031.1
HBIG=$PKG_HASH SBIG=$PKG_SIZE
dp_publish "$T/many" "$T/dp" CEN00032.1
HMANY=$PKG_HASH SMANY=$PKG_SIZE
dp_publish "$T/small-pkg" "$T/dp" CEN00033.1
HSMALL=$PKG_HASH SSMALL=$PKG_SIZE
dp_start "$T/dp"
write_policy "$T/policy.json" serial=1 adverts="$(
    PKG_SIZE=$SBIG advert_json id=CEN20031 package=CEN00031 version=1 hash="$HBIG"
    echo ,
    PKG_SIZE=$SMANY advert_json id=CEN20032 package=CEN00032 version=1 hash="$HMANY"
    echo ,
    PKG_SIZE=$SSMALL advert_json id=CEN20033 package=CEN00033 version=1 hash="$HSMALL"
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

echo "# a small entry fits and is committed first"
assert_exit 0 agent download CEN00033.1
assert_download_succeeded CEN00033.1
assert_file "$CACHE/.index.json"

echo "# more than the free space: refused before any transfer"
assert_exit 1 agent execute CEN20031
assert_error 0x80070070
assert_stderr_has "needs $SBIG bytes"
assert_eq 0 "$(proof_runs CEN20031)" "the program did not run"
assert_no_file "$CACHE/CEN00031.1"
assert_no_file "$CACHE/CEN00031.1.sums"
assert_eq "" "$(dp_requests "$DP_URL" | grep CEN00031 || true)" "nothing of it was requested"

echo "# the disk fills up in the middle of the job"
assert_exit 1 agent execute CEN20032
assert_error 0x80070070
assert_eq 0 "$(proof_runs CEN20032)" "the program did not run"
assert_no_file "$CACHE/CEN00032.1"
assert_no_file "$CACHE/CEN00032.1.sums"
assert_log_has "$LOGS/CAS.log" "Download failed for content CEN00032.1 under context System, error 0x80070070"

echo "# what was there is intact: the entry verifies, the index still lists it"
assert_exit 0 agent cache verify CEN00033.1
assert_stdout_has "CEN00033.1	verified	${HSMALL^^}"
grep -q '"content":	"CEN00033.1"' "$CACHE/.index.json" ||
    fail "the index still lists the committed entry" "$(cat "$CACHE/.index.json")"
ok "the index still lists the committed entry"
assert_exit 0 agent cache list
assert_stdout_has "CEN00033.1"
assert_eq 0 "$(grep -c 'is damaged; rebuilt' "$LOGS/CAS.log" || true)" "no index had to be rebuilt"

echo "# room again (the filesystem grown in place): the same job completes"
mount -o remount,size=8m,nr_inodes=1000 "$T/small"
assert_exit 0 agent execute CEN20032
assert_eq 1 "$(proof_runs CEN20032)" "the program ran"
assert_download_succeeded CEN00032.1
assert_same_tree "$T/many" "$CACHE/CEN00032.1"
assert_exit 0 agent cache verify
assert_cmtrace_logs
done_testing
