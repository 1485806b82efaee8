#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Privilege separation: the agent's transfers run in a forked child that has given up root (the
# cas-agent account, or nobody), cannot gain privileges again, holds no file open, and — where the
# kernel has Landlock — cannot write to the file system at all; the agent writes what it receives
# into its partial area. While a throttled download runs, the child is inspected through /proc.
# Then the child is killed in the middle of a file: the job fails with 0xA0CA0105, nothing is
# committed or run, and the next run resumes from the partial file and succeeds.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_transfer_sandbox"

make_site_key CEN
make_package "$T/src"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/src/data/big.bin"
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" CEN00031.1
H=$PKG_HASH
dp_start "$T/dp"
write_policy "$T/policy.json" serial=1 adverts="$(advert_json id=CEN20031 package=CEN00031 version=1 hash="$H")"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
write_config max_download_kbps=2000 max_parallel_transfers=1
assert_exit 0 agent policy apply "$T/policy.json"

# The account the child must run as: as root, cas-agent when it exists, else nobody; otherwise
# the agent's own.
if [[ $(id -u) -eq 0 ]]; then
    if getent passwd cas-agent >/dev/null; then want_user=cas-agent; else want_user=nobody; fi
    dropped=", root dropped"
else
    want_user=$(id -un)
    dropped=""
fi
want_uid=$(id -u "$want_user")

# child_of PID -- the one child process of PID (the transfer process), waiting up to 5 s.
child_of()
{
    local i c
    for ((i = 0; i < 50; i++)); do
        c=$(ps -o pid= --ppid "$1" | tr -d ' ' | head -1)
        if [[ -n $c ]]; then
            echo "$c"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

echo "# a throttled download: the transfer process as seen from /proc"
"$CAS_AGENT" --config "$CFG" download CEN00031.1 >"$T/dl.out" 2>&1 &
pid=$!
child=$(child_of "$pid") || fail "the agent started a transfer process" "$(ps -ef --forest | tail -20)"
ok "the agent started a transfer process ($child)"
sleep 1
status=$(cat "/proc/$child/status")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' <<<"$status")
assert_eq "$want_uid $want_uid $want_uid $want_uid" "$uids" "real, effective, saved and fs uid are $want_user's"
if [[ $(id -u) -eq 0 ]]; then
    assert_eq "" "$(awk '/^Groups:/ { $1 = ""; print substr($0, 2) }' <<<"$status")" "no supplementary groups"
    assert_eq "0000000000000000" "$(awk '/^CapEff:/ { print $2 }' <<<"$status")" "no effective capabilities"
    assert_eq "0000000000000000" "$(awk '/^CapPrm:/ { print $2 }' <<<"$status")" "no permitted capabilities"
    # Only the socket to the agent and /dev/null: no log, cache, state or lock file stays open.
    fds=$(for f in /proc/"$child"/fd/*; do readlink "$f"; done | sed 's/:\[[0-9]*\]$//' | sort -u | tr '\n' ' ')
    case " $fds" in
    *" /"[!d]* | *" /d"[!e]*) fail "the transfer process holds no file open" "$fds" ;;
    esac
    ok "the transfer process holds no file open ($fds)"
fi
assert_eq "1" "$(awk '/^NoNewPrivs:/ { print $2 }' <<<"$status")" "no new privileges"
wait "$pid" && rc=0 || rc=$?
assert_eq 0 "$rc" "the download succeeded"
assert_same_tree "$T/src" "$CACHE/CEN00031.1"
line=$(log_texts "$LOGS/DataTransferService.log" | grep -F "Transfer process $child " || true)
case $line in
"Transfer process $child runs as $want_user (uid $want_uid)$dropped, no new privileges, Landlock ABI "[1-9]*": no writes to the file system" | \
    "Transfer process $child runs as $want_user (uid $want_uid)$dropped, no new privileges, no Landlock ("*")")
    ok "DataTransferService.log says how the transfer process is confined: $line"
    ;;
*) fail "DataTransferService.log says how the transfer process is confined" "found: '$line'" ;;
esac
[[ -e /sys/kernel/security/lsm ]] && grep -qw landlock /sys/kernel/security/lsm && {
    case $line in
    *"Landlock ABI"*) ok "Landlock is in force where the kernel has it" ;;
    *) fail "Landlock is in force where the kernel has it" "$line" ;;
    esac
}

echo "# the transfer process killed mid-file: 0xA0CA0105, nothing committed, then a resume"
assert_exit 0 agent cache delete CEN00031.1
"$CAS_AGENT" --config "$CFG" execute CEN20031 >"$T/kill.out" 2>&1 &
pid=$!
child=$(child_of "$pid") || fail "the agent started a transfer process" ""
sleep 2
kill -KILL "$child"
wait "$pid" && rc=0 || rc=$?
assert_eq 1 "$rc" "execute failed"
grep -q "error 0xA0CA0105" "$T/kill.out" || fail "stderr names 0xA0CA0105" "$(cat "$T/kill.out")"
ok "stderr names 0xA0CA0105"
assert_log_has "$LOGS/DataTransferService.log" "The transfer process $child failed: it ended"
assert_eq 0 "$(proof_runs CEN20031)" "the program did not run"
assert_no_file "$CACHE/CEN00031.1"
part=$(find "$CACHE/.partial/CEN00031.1/parts" -name '*.part' -size +100k 2>/dev/null | head -1)
[[ -n $part ]] || fail "the partial file was kept" "$(find "$CACHE" | head -20)"
kept=$(stat -c %s "$part")
ok "the partial file was kept ($kept bytes)"
write_config
assert_exit 0 agent download CEN00031.1
assert_same_tree "$T/src" "$CACHE/CEN00031.1"
assert_log_has "$LOGS/DataTransferService.log" "Resuming $DP_URL/CEN00031.1/data/big.bin at byte $kept"
assert_no_partial
done_testing
