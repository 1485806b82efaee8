#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: endless data (TUF). The policy is genuine; the distribution point is the attacker's
# (cas-faultd). It sends a sums listing that never ends or claims 10^12 bytes, a file that never
# ends or claims 10^12 bytes, and a real file far larger than the package, to fill the agent's
# memory or disk. Defence: the listing is read to at most 64 MiB, the content to at most the
# policy's `size` (a Content-Length over it is refused before any byte is read), and a refused
# content keeps no partial file.
# Asserts, for each: 0x800700DF, the CAS.log / ContentTransferManager.log lines naming the DP and
# the limit, nothing run, no entry, nothing kept in staging and no file in the cache folder larger
# than the content's size, the attacker stopped at the limit (cas-faultd's byte count), the
# previous policy (serial 4) in force byte for byte. The limit is exact (the genuine content with
# a size one byte short is refused); the endless DP followed by a good one succeeds.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_endless_data"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never reach the attacker's server.
CONFIG_DEFAULTS=(cache_dedup=false)
FAULTD=${CAS_FAULTD:-$(dirname "$CAS_AGENT")/tests/cas-faultd}
[[ -x $FAULTD ]] || fail "cas-faultd is built" "not found at $FAULTD (set CAS_FAULTD)"

write_config
make_site_key CEN
make_package "$T/src"
P=data/payload.bin
mkdir -p "$T/good" "$T/fd"
for c in CEN00002.1 CEN00011.1 CEN00012.1 CEN00013.1 CEN00014.1 CEN00015.1 CEN00016.1 CEN00017.1; do
    dp_publish "$T/src" "$T/good" "$c"
done
H=$PKG_HASH S=$PKG_SIZE
dp_start "$T/good"
GOOD=$DP_URL

# The attacker's DP: cas-faultd over a copy of the genuine DP, with its faults.
cp -R "$T/good" "$T/fd/${DP_PREFIX#/}"
# CEN00015.1: a real file of 1 MiB (with a correct Content-Length) where the package has 3000 bytes.
{ printf '%s\n' "$ATK_MARK"; head -c 1048576 /dev/zero; } >"$T/fd/${DP_PREFIX#/}/CEN00015.1/$P"
cat >"$T/rules" <<RULES
$DP_PREFIX/CEN00011.1.sums endless
$DP_PREFIX/CEN00012.1.sums bigheader
$DP_PREFIX/CEN00013.1/$P endless
$DP_PREFIX/CEN00014.1/$P bigheader
$DP_PREFIX/CEN00017.1/$P endless
RULES
"$FAULTD" --root "$T/fd" --rules "$T/rules" --port-file "$T/faultd.port" --log "$T/faultd.log" \
    >/dev/null 2>"$T/faultd.err" &
FPID=$!
lib_on_exit "kill -TERM $FPID 2>/dev/null; wait $FPID 2>/dev/null"
for ((k = 0; k < 100; k++)); do [[ -s $T/faultd.port ]] && break; sleep 0.1; done
[[ -s $T/faultd.port ]] || fail "cas-faultd started" "$(cat "$T/faultd.err")"
BAD="http://127.0.0.1:$(cat "$T/faultd.port")$DP_PREFIX"
ok "the attacker's DP (cas-faultd) listens at $BAD"

adverts=$(advert_json id=CEN20001 package=CEN00002 version=1 hash="$H" size="$S" locations="$GOOD")
for n in 11 12 13 14 15; do
    adverts+=,$(advert_json id="CEN200$n" package="CEN000$n" version=1 hash="$H" size="$S" locations="$BAD")
done
# CEN00016.1: the genuine content from the good DP, but the policy allows one byte less.
adverts+=,$(advert_json id=CEN20016 package=CEN00016 version=1 hash="$H" size=$((S - 1)) locations="$GOOD")
adverts+=,$(advert_json id=CEN20017 package=CEN00017 version=1 hash="$H" size="$S" locations="$BAD $GOOD")
write_policy "$T/policy.json" serial=4 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 4 applied, CEN20001 ran from the good DP"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert ran"
atk_snapshot 4

# faultd_sent PATH -- the body bytes cas-faultd sent for the last request of PATH (its log line is
# written when the client has gone, so wait for it).
faultd_sent()
{
    local line="" k
    for ((k = 0; k < 100; k++)); do
        line=$(grep "^GET $1 " "$T/faultd.log" | tail -n 1 || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ -n $line ]] || fail "cas-faultd logged a request for $1" "$(tail -5 "$T/faultd.log")"
    sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$line"
}

# refused N WHAT URLPATH -- advert CEN200N refused with 0x800700DF; nothing ran, nothing kept.
refused()
{
    local n=$1 what=$2 c="CEN000$1.1" big
    echo "# $what"
    assert_exit 1 agent execute "CEN200$n"
    assert_error 0x800700DF
    atk_nothing_ran "CEN200$n"
    assert_log_has "$LOGS/CAS.log" "Download failed for content $c under context System, error 0x800700DF"
    assert_log_type "$LOGS/CAS.log" "Download failed for content $c under context System, error 0x800700DF" 3
    assert_not_available "$c" "CEN200$n" 0x800700DF
    assert_not_cached "$c"
    # Nothing larger than the content may be anywhere in the cache folder: no partial file was
    # kept beyond the policy's size.
    big=$(find "$CACHE" -type f -size +"${S}c" -printf '%P %s\n')
    assert_eq "" "$big" "no file under the cache folder is larger than the $S bytes allowed"
    atk_no_marker
}

refused 11 "a sums listing that never ends (no Content-Length)"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for the sums listing of content CEN00011.1: error 0x800700DF ($BAD/CEN00011.1.sums: more than the 67108864 bytes allowed)"
assert_log_has "$LOGS/CAS.log" \
    "Cannot get the sums listing of content CEN00011.1: $BAD/CEN00011.1.sums: more than the 67108864 bytes allowed"
sent=$(faultd_sent "$DP_PREFIX/CEN00011.1.sums")
# The agent reads at most 64 MiB and hangs up: what the kernel accepted beyond that is its
# socket buffers, a few MiB.
((sent >= 67108864 && sent <= 67108864 + 32 * 1048576)) ||
    fail "the agent stopped reading the listing at 64 MiB" "cas-faultd sent $sent bytes"
ok "the agent stopped reading the listing at 64 MiB (cas-faultd sent $sent bytes)"
assert_eq "" "$(grep -F "CEN00011.1/" "$T/faultd.log" || true)" "no file of CEN00011.1 was requested"

refused 12 "a sums listing announced as 10^12 bytes"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for the sums listing of content CEN00012.1: error 0x800700DF ($BAD/CEN00012.1.sums: the server announced more than the 67108864 bytes allowed)"
sent=$(faultd_sent "$DP_PREFIX/CEN00012.1.sums")
((sent <= 32 * 1048576)) || fail "the announced length was refused before reading" "cas-faultd sent $sent bytes"
ok "the announced length was refused before reading (cas-faultd sent $sent bytes)"

refused 13 "a file that never ends (no Content-Length)"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for $P of content CEN00013.1: error 0x800700DF ($BAD/CEN00013.1/$P: more than the $S bytes allowed)"
sent=$(faultd_sent "$DP_PREFIX/CEN00013.1/$P")
((sent <= S + 32 * 1048576)) || fail "the agent stopped reading at the content's size" "cas-faultd sent $sent bytes"
ok "the agent stopped reading at the content's size (cas-faultd sent $sent bytes)"

refused 14 "a file announced as 10^12 bytes"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for $P of content CEN00014.1: error 0x800700DF ($BAD/CEN00014.1/$P: the server announced more than the $S bytes allowed)"

refused 15 "a real file of 1 MiB where the whole package is $S bytes"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for $P of content CEN00015.1: error 0x800700DF ($BAD/CEN00015.1/$P: the server announced more than the $S bytes allowed)"

refused 16 "the genuine content, one byte over the policy's size"
assert_log_has "$LOGS/CAS.log" "Requesting content CEN00016.1, size(KB) $(kb_of $((S - 1))), under context System"

echo "# after the attacks"
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs CEN20001)" "the previous advert did not run again"

echo "# not over-refused: the endless DP first, the good DP second"
assert_exit 0 agent execute CEN20017
assert_eq 1 "$(proof_runs CEN20017)" "the program ran"
assert_download_succeeded CEN00017.1
assert_same_tree "$T/src" "$CACHE/CEN00017.1"
assert_log_has "$LOGS/ContentTransferManager.log" \
    "Location $BAD failed for $P of content CEN00017.1: error 0x800700DF ($BAD/CEN00017.1/$P: more than the $S bytes allowed)"
assert_log_has "$LOGS/ContentTransferManager.log" "Location $GOOD chosen for file $P of content CEN00017.1"
assert_no_partial

assert_cmtrace_logs
done_testing
