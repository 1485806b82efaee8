#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# `cas-agent log` reads back the CMTrace logs real runs wrote (a good package, a tampered one, a
# package big enough to rotate the logs): one line per record in UTC, in the files' order; --all
# merges the logs by time; --level, --content and --since filter; warnings and errors are coloured
# on a terminal only; rotated files are read oldest first; --follow prints new records, across
# rotations, and ends with status 0 on SIGTERM.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_log_cmd"

# One output line: "YYYY-MM-DD HH:MM:SS.mmmZ  COMPONENT  T  TEXT" (the component column padded).
LINE_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z  [A-Za-z]+ *  [IWEV]  '

# out_texts FILE -- the TEXT column of `log` output.
out_texts()
{
    sed -E "s/$LINE_RE//" "$1"
}
# out_types FILE -- the type column (I, W, E, V), one per line.
out_types()
{
    sed -E 's/^[^ ]+ [^ ]+  [A-Za-z]+ +([IWEV])  .*$/\1/' "$1"
}
# out_norm FILE -- the lines with the component column's padding squeezed (to compare outputs).
out_norm()
{
    sed -E 's/^([^ ]+ [^ ]+)  ([A-Za-z]+) +([IWEV])  /\1 \2 \3 /' "$1"
}
# raw_types FILE... -- the type of every record in CMTrace files, as the letters `log` prints.
raw_types()
{
    sed -E 's/.* type="([0-3])" thread=.*/\1/' "$@" | tr 0123 VIWE
}
# records FILE... -- how many records in these CMTrace files.
records()
{
    cat "$@" | wc -l
}
# assert_format FILE -- every line of FILE is one output line of `log`.
assert_format()
{
    local bad
    bad=$(grep -Evn "${LINE_RE}" "$1" | head -3 || true)
    [[ -z $bad ]] || fail "every line of the output has the log format" "$bad"
    [[ -s $1 ]] || fail "the output has lines" "it is empty"
    ok "every line ($(wc -l <"$1")) has the format 'YYYY-MM-DD HH:MM:SS.mmmZ  COMPONENT  T  TEXT'"
}
# keep NAME -- copy the last command's stdout to $T/NAME.out.
keep()
{
    cp "$LAST_OUT" "$T/$1.out"
}

write_config
make_site_key CEN
mkdir -p "$T/dp"
dp_start "$T/dp"

# A good package, a tampered one, and one with many files (many verbose records: rotation).
make_package "$T/good"
dp_publish "$T/good" "$T/dp" CEN00002.1
AD_GOOD=$(advert_json id=CEN20001 package=CEN00002 version=1)
make_package "$T/bad" "the tampered package"
dp_publish "$T/bad" "$T/dp" CEN00003.1
AD_BAD=$(advert_json id=CEN20002 package=CEN00003 version=1)
E=$(upper "$PKG_HASH")
flip_byte "$T/dp/CEN00003.1/data/payload.bin" 100
A=$(upper "$(package_hash "$T/dp/CEN00003.1")")
make_package "$T/big" "the big package"
mkdir -p "$T/big/many"
for ((i = 0; i < 300; i++)); do
    echo "file $i" >"$T/big/many/file-$i.txt"
done
dp_publish "$T/big" "$T/dp" CEN00004.1
AD_BIG=$(advert_json id=CEN20003 package=CEN00004 version=1)
write_policy "$T/policy.json" serial=1 adverts="$AD_GOOD,$AD_BAD,$AD_BIG"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

# The good run in a zone east of UTC (bias -330): `log` prints UTC all the same.
TZ_EAST=Asia/Kolkata
[[ -e /usr/share/zoneinfo/$TZ_EAST ]] || TZ_EAST=IST-5:30
assert_exit 0 env TZ=$TZ_EAST "$CAS_AGENT" --config "$CFG" execute CEN20001
assert_download_succeeded CEN00002.1
sleep 1.2
T_MID=$(date -u +%Y-%m-%dT%H:%M:%SZ) # after every record of the good run, to the second
sleep 1.1
assert_exit 1 agent execute CEN20002
assert_error 0x80091007
assert_download_mismatch CEN00003.1 "$E" "$A"
G_BAD=$REQ_GUID
assert_cmtrace_logs

# --- log: CAS.log, every record, in order, in UTC ------------------------------------------------
assert_exit 0 agent log
keep cas
assert_format "$T/cas.out"
assert_eq "$(log_texts "$LOGS/CAS.log")" "$(out_texts "$T/cas.out")" \
    "log: the texts of CAS.log's records, in order"
assert_eq "$(raw_types "$LOGS/CAS.log")" "$(out_types "$T/cas.out")" \
    "log: each record's type (1 I, 2 W, 3 E)"
[[ $(sed -E 's/^[^ ]+ [^ ]+  ([A-Za-z]+) .*/\1/' "$T/cas.out" | sort -u) == ContentAccess ]] ||
    fail "log: the component column is ContentAccess" "$(head -3 "$T/cas.out")"
ok "log: the component column is ContentAccess"
[[ ! -s $LAST_ERR ]] || fail "log: nothing on stderr" "$(cat "$LAST_ERR")"
ok "log: nothing on stderr"

# The first record was written at UTC+5:30 (bias -330): its time column is local + bias.
first=$(head -1 "$LOGS/CAS.log")
[[ $first =~ time=\"([0-9:]{8})\.([0-9]{3})([+-][0-9]{3})\"\ date=\"([0-9]{2})-([0-9]{2})-([0-9]{4})\" ]] ||
    fail "CAS.log's first record has a time" "$first"
bias=$((10#${BASH_REMATCH[3]:1}))
[[ ${BASH_REMATCH[3]:0:1} == + ]] || bias=$((-bias))
assert_eq -330 "$bias" "the good run's records carry bias -330"
local_s=$(date -u -d "${BASH_REMATCH[6]}-${BASH_REMATCH[4]}-${BASH_REMATCH[5]} ${BASH_REMATCH[1]}" +%s)
want_time="$(date -u -d "@$((local_s + bias * 60))" '+%Y-%m-%d %H:%M:%S').${BASH_REMATCH[2]}Z"
assert_eq "$want_time" "$(head -1 "$T/cas.out" | cut -c1-24)" \
    "log: the time column is UTC (local time + bias)"
# The reader's time zone changes nothing.
assert_exit 0 env TZ=America/New_York "$CAS_AGENT" --config "$CFG" log
assert_same_file "$T/cas.out" "$LAST_OUT"

# --- naming a log ---------------------------------------------------------------------------------
for name in ContentAccess cas CAS.log contentaccess; do
    assert_exit 0 agent log "$name"
    assert_same_file "$T/cas.out" "$LAST_OUT"
done
assert_exit 0 agent log execmgr
keep execmgr
assert_format "$T/execmgr.out"
assert_eq "$(log_texts "$LOGS/execmgr.log")" "$(out_texts "$T/execmgr.out")" \
    "log execmgr: the texts of execmgr.log, in order"
grep -Eq "^[^ ]+ [^ ]+  execmgr  [IWE]  Execution Request for advert CEN20001 " "$T/execmgr.out" ||
    fail "log execmgr: the component column is execmgr" "$(head -3 "$T/execmgr.out")"
ok "log execmgr: the component column is execmgr"
for name in ContentTransferManager DataTransferService PolicyAgent; do
    assert_exit 0 agent log "$name"
    keep "$name"
    assert_eq "$(log_texts "$LOGS/$name.log")" "$(out_texts "$T/$name.out")" \
        "log $name: the texts of $name.log, in order"
done

# --- --all: every log merged by time; ties keep the logs' order (CAS, CTM, DTS, execmgr, Policy) ---
assert_exit 0 agent log --all
keep all
assert_format "$T/all.out"
assert_eq "$(records "$LOGS"/*.log)" "$(wc -l <"$T/all.out")" "log --all: every record of the five logs"
cut -c1-24 "$T/all.out" | LC_ALL=C sort -c ||
    fail "log --all: the time column never decreases" "$(cut -c1-24 "$T/all.out" | head -40)"
ok "log --all: the time column never decreases"
if ! grep -q '  ContentAccess           I  Download completed for content CEN00002.1 under context System$' "$T/all.out" ||
    ! grep -q '  execmgr                 I  Executing program install.sh under context System$' "$T/all.out"; then
    fail "log --all: a CAS line and an execmgr line, the component column 22 wide" "$(head -5 "$T/all.out")"
fi
ok "log --all: a CAS line and an execmgr line, the component column 22 wide"
for f in cas ContentTransferManager DataTransferService execmgr PolicyAgent; do
    out_norm "$T/$f.out"
done | LC_ALL=C sort -s -k1,2 >"$T/merged.want"
out_norm "$T/all.out" >"$T/merged.got"
assert_same_file "$T/merged.want" "$T/merged.got"
ok "log --all = the five logs, stably sorted by time"
awk '/ContentAccess .*Download completed for content CEN00002.1 /{c=NR} /execmgr .*Execution is complete for program install.sh/{if (c) e=NR} END{exit !(c && e > c)}' "$T/all.out" ||
    fail "log --all: CAS's 'Download completed' comes before execmgr's 'Execution is complete'"
ok "log --all: CAS's 'Download completed' comes before execmgr's 'Execution is complete'"
assert_exit 0 agent log CAS execmgr
out_norm "$LAST_OUT" >"$T/two.got"
grep -E '^[^ ]+ [^ ]+ (ContentAccess|execmgr) ' "$T/merged.got" >"$T/two.want"
assert_same_file "$T/two.want" "$T/two.got"
ok "log CAS execmgr: those two logs merged"

# --- --level --------------------------------------------------------------------------------------
ERR_LINE="Download failed for content CEN00003.1 under context System, error 0x80091007"
WARN_LINE="Hash does not match for file data/payload.bin of content CEN00003.1 served by $DP_URL"
for lv in 0 1; do
    assert_exit 0 agent log --level "$lv"
    assert_same_file "$T/cas.out" "$LAST_OUT"
done
assert_exit 0 agent log --level 2
keep level2
[[ $(out_types "$T/level2.out" | sort -u | tr -d '\n') == EW ]] ||
    fail "log --level 2: only W and E lines, both present" "$(head -5 "$T/level2.out")"
ok "log --level 2: only W and E lines, both present"
assert_eq "$(raw_types "$LOGS/CAS.log" | grep -c '[WE]')" "$(wc -l <"$T/level2.out")" \
    "log --level 2: every warning and error of CAS.log"
grep -Fxq "$ERR_LINE" <(out_texts "$T/level2.out") || fail "log --level 2 has: $ERR_LINE"
ok "log --level 2 has: $ERR_LINE"
grep -Fq "$WARN_LINE" <(out_texts "$T/level2.out") || fail "log --level 2 has: $WARN_LINE"
ok "log --level 2 has the per-file warning"
assert_exit 0 agent log --level=3
keep level3
[[ $(out_types "$T/level3.out" | sort -u) == E ]] || fail "log --level 3: only E lines" "$(cat "$T/level3.out")"
ok "log --level 3: only E lines"
assert_eq "$(raw_types "$LOGS/CAS.log" | grep -c E)" "$(wc -l <"$T/level3.out")" \
    "log --level 3: every error of CAS.log"
grep -Fxq "$ERR_LINE" <(out_texts "$T/level3.out") || fail "log --level 3 has: $ERR_LINE"
ok "log --level 3 has: $ERR_LINE"

# --- --content: records naming the content, and those of its download requests ---------------------
assert_exit 0 agent log --all --content CEN00003.1
keep content
assert_format "$T/content.out"
# The GUIDs of the records naming CEN00003.1: its download request and its jobs.
mapfile -t guids < <(cat "$LOGS"/*.log | grep -F CEN00003.1 | grep -oE "$GUID_RE" | sort -u)
[[ ${#guids[@]} -ge 2 ]] || fail "the logs name CEN00003.1 with its request and job GUIDs" "${guids[*]}"
bad=$(out_texts "$T/content.out" | grep -vF -e CEN00003.1 "${guids[@]/#/-e}" | head -3 || true)
[[ -z $bad ]] || fail "log --content: each line names CEN00003.1 or one of its GUIDs" "$bad"
ok "log --content: each line names CEN00003.1 or one of its GUIDs (${#guids[@]})"
grep -Fxq "Download failed for download request $G_BAD" <(out_texts "$T/content.out") ||
    fail "log --content: the request's own record (no content id in it) is kept" "$(cat "$T/content.out")"
ok "log --content: 'Download failed for download request $G_BAD' is kept"
grep -Fxq "$ERR_LINE" <(out_texts "$T/content.out") || fail "log --content has: $ERR_LINE"
ok "log --content has: $ERR_LINE"
grep -q "CEN00002\.1\|CEN00004" "$T/content.out" && fail "log --content: no line of other content" \
    "$(grep "CEN00002\.1\|CEN00004" "$T/content.out" | head -3)"
ok "log --content: no line of other content"
assert_exit 0 agent log --content cen00002
grep -q 'Download completed for content CEN00002.1 under context System$' "$LAST_OUT" ||
    fail "log --content PACKAGE (any case) keeps its versions' records" "$(head -3 "$LAST_OUT")"
! grep -q CEN00003 "$LAST_OUT" || fail "log --content CEN00002: no CEN00003 line"
ok "log --content PACKAGE (any case) keeps its versions' records, not others"
assert_exit 0 agent log --content CEN00002.11
[[ ! -s $LAST_OUT ]] || fail "log --content CEN00002.11: nothing (CEN00002.1 is another id)" "$(head -3 "$LAST_OUT")"
ok "log --content CEN00002.11: nothing (CEN00002.1 is another id)"

# --- --since --------------------------------------------------------------------------------------
assert_exit 0 agent log --all --since "$(utc_time '+1 hour')"
[[ ! -s $LAST_OUT ]] || fail "log --since (the future): nothing" "$(head -3 "$LAST_OUT")"
ok "log --since (the future): nothing"
assert_exit 0 agent log --all --since 2000-01-01T00:00:00Z
assert_same_file "$T/all.out" "$LAST_OUT"
assert_exit 0 agent log --all --since 1d
assert_same_file "$T/all.out" "$LAST_OUT"
assert_exit 0 agent log --since "$T_MID"
keep since
grep -Fxq "$ERR_LINE" <(out_texts "$T/since.out") || fail "log --since T_MID has the tampered run"
! grep -q CEN00002 "$T/since.out" || fail "log --since T_MID: no record of the good run" \
    "$(grep CEN00002 "$T/since.out" | head -3)"
ok "log --since between the runs: the second run only"
assert_exit 0 agent log --since 10m
assert_same_file "$T/cas.out" "$LAST_OUT"

# --- colours: on a terminal only ------------------------------------------------------------------
tty_log()
{
    local cmd
    cmd=$(printf '%q ' "$CAS_AGENT" --config "$CFG" log "$@")
    TERM=xterm script -qec "$cmd" /dev/null </dev/null | tr -d '\r'
}
unset NO_COLOR
tty_log --level 2 >"$T/tty.out"
grep -F $'\e[31m' "$T/tty.out" | grep -Fq "  E  $ERR_LINE"$'\e[0m' ||
    fail "on a terminal the error line is red (ESC[31m ... ESC[0m)" "$(head -5 "$T/tty.out" | cat -v)"
ok "on a terminal the error line is red (ESC[31m ... ESC[0m)"
grep -F $'\e[33m' "$T/tty.out" | grep -Fq "  W  $WARN_LINE" ||
    fail "on a terminal the warning line is yellow (ESC[33m)" "$(head -5 "$T/tty.out" | cat -v)"
ok "on a terminal the warning line is yellow (ESC[33m)"
tty_log | grep -F 'Download completed for content CEN00002.1 under context System' | grep -q $'\e' &&
    fail "on a terminal an information line is not coloured"
ok "on a terminal an information line is not coloured"
NO_COLOR=1 tty_log --level 2 | grep -q $'\e' && fail "NO_COLOR: no colour on a terminal"
ok "NO_COLOR: no colour on a terminal"
agent log --all | grep -q $'\e' && fail "through a pipe: no ESC byte at all"
ok "through a pipe: no ESC byte at all"
grep -q $'\e' "$T/all.out" && fail "into a file: no ESC byte at all"
ok "into a file: no ESC byte at all"

# --- usage and missing logs -------------------------------------------------------------------------
assert_exit 2 agent log nosuch
assert_stderr_has "unknown log 'nosuch'"
assert_stderr_has "CAS (component ContentAccess), ContentTransferManager, DataTransferService, execmgr, PolicyAgent"
assert_exit 2 agent log --level 4
assert_exit 2 agent log --level
assert_exit 2 agent log --since soon
assert_exit 2 agent log --since 5x
assert_exit 2 agent log --content ""
assert_exit 2 agent log CAS --all
assert_exit 2 agent log --bogus
assert_exit 0 agent log --help
assert_stdout_has "usage: cas-agent log [COMPONENT...]"
write_config --file "$T/empty.json" log_dir="\"$T/nolog\""
mkdir -p "$T/nolog"
assert_exit 1 "$CAS_AGENT" --config "$T/empty.json" log
assert_error 0x80070002
assert_stderr_has "$T/nolog/CAS.log"
assert_exit 1 "$CAS_AGENT" --config "$T/empty.json" log --all
assert_error 0x80070002
assert_exit 1 "$CAS_AGENT" --config "$T/empty.json" log execmgr --follow
assert_error 0x80070002

# --- rotated files: log_max_size 10000 (the minimum), log_max_history 3 ------------------------------
write_config log_max_size=10000 log_max_history=3
assert_exit 0 agent download CEN00004.1
assert_file "$LOGS/CAS.lo_.2"
assert_no_file "$LOGS/CAS.lo_.3"
CAS_FILES=("$LOGS/CAS.lo_.2" "$LOGS/CAS.lo_.1" "$LOGS/CAS.lo_" "$LOGS/CAS.log")
assert_exit 0 agent log
keep rotated
assert_format "$T/rotated.out"
cat "${CAS_FILES[@]}" >"$T/cas-files.raw"
assert_eq "$(log_texts "$T/cas-files.raw")" "$(out_texts "$T/rotated.out")" \
    "log: CAS.lo_.2, CAS.lo_.1, CAS.lo_, CAS.log, in this order"
OLDEST=$(log_texts "$LOGS/CAS.lo_.2" | head -1)
NEWEST=$(log_texts "$LOGS/CAS.log" | tail -1)
[[ $NEWEST == *CEN00004.1* ]] || fail "CAS.log ends with a record of the big download" "$NEWEST"
ok "CAS.log ends with a record of the big download"
assert_exit 0 agent log --all
keep rotated_all
grep -Fxq -- "$OLDEST" <(out_texts "$T/rotated_all.out") ||
    fail "log --all shows the oldest kept record (first of CAS.lo_.2): $OLDEST"
ok "log --all shows the oldest kept record (first of CAS.lo_.2)"
grep -Fxq -- "$NEWEST" <(out_texts "$T/rotated_all.out") || fail "log --all shows the newest CAS record"
ok "log --all shows the newest CAS record"
all_files=()
for f in "$LOGS"/*.log "$LOGS"/*.lo_ "$LOGS"/*.lo_.*; do
    [[ -e $f ]] && all_files+=("$f")
done
assert_eq "$(records "${all_files[@]}")" "$(wc -l <"$T/rotated_all.out")" \
    "log --all: every record of every kept file (${#all_files[@]} files)"
cut -c1-24 "$T/rotated_all.out" | LC_ALL=C sort -c || fail "log --all (rotated): the time column never decreases"
ok "log --all (rotated): the time column never decreases"

# --- --follow ---------------------------------------------------------------------------------------
# follow_start NAME ARGS... -- `log --follow ARGS` in the background into $T/NAME.follow; its pid
# in FPID.
FPID=""
follow_start()
{
    local name=$1
    shift
    "$CAS_AGENT" --config "$CFG" log --follow "$@" >"$T/$name.follow" 2>"$T/$name.follow.err" </dev/null &
    FPID=$!
    lib_on_exit "kill -KILL $FPID 2>/dev/null"
}
# wait_lines FILE N SECONDS -- until FILE has at least N lines.
wait_lines()
{
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        [[ $(wc -l <"$1") -ge $2 ]] && return 0
        sleep 0.05
    done
    return 1
}
# wait_text FILE TEXT SECONDS -- until a line of FILE ends with TEXT.
wait_text()
{
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -Fq -- "  $2" "$1" && return 0
        sleep 0.05
    done
    return 1
}
# follow_stop PID -- SIGTERM; the exit status must be 0.
follow_stop()
{
    local rc=0
    kill -TERM "$1"
    wait "$1" || rc=$?
    assert_eq 0 "$rc" "log --follow exits 0 on SIGTERM"
}

# No rotation here: the default size.
write_config
assert_exit 0 agent log
keep before
follow_start cas
PID_CAS=$FPID
wait_lines "$T/cas.follow" "$(wc -l <"$T/before.out")" 5 ||
    fail "log --follow prints the existing records first" "$(wc -l <"$T/cas.follow") lines"
ok "log --follow prints the existing records first"
assert_exit 0 agent cache delete CEN00002.1
assert_exit 0 agent download CEN00002.1
assert_download_succeeded CEN00002.1
start=$(date +%s%N)
wait_text "$T/cas.follow" "I  Download succeeded for download request $REQ_GUID" 2 ||
    fail "log --follow shows the new records within 2 s" "$(tail -3 "$T/cas.follow")"
ok "log --follow shows the new records within 2 s ($((($(date +%s%N) - start) / 1000000)) ms)"
sleep 0.3
follow_stop "$PID_CAS"
assert_exit 0 agent log
assert_same_file "$LAST_OUT" "$T/cas.follow"
ok "log --follow printed exactly what log prints afterwards"
[[ ! -s $T/cas.follow.err ]] || fail "log --follow: nothing on stderr" "$(cat "$T/cas.follow.err")"
ok "log --follow: nothing on stderr"

# Across rotations: a history long enough that no file is dropped while following. One follower
# of CAS.log alone (its output must be exactly `log` afterwards), one of all the logs (the same
# records; the order across logs is the order they arrived in).
write_config log_max_size=10000 log_max_history=20
follow_start rot
PID_ROT=$FPID
follow_start rotall --all
PID_ROTALL=$FPID
assert_exit 0 agent log --all
wait_lines "$T/rotall.follow" "$(wc -l <"$LAST_OUT")" 5 || fail "log --follow --all prints the existing records"
wait_lines "$T/rot.follow" "$(wc -l <"$T/cas.follow")" 5 || fail "log --follow prints the existing records"
before_files=$(find "$LOGS" -name 'CAS.lo_*' | wc -l)
assert_exit 0 agent cache delete CEN00004.1
assert_exit 0 agent download CEN00004.1
after_files=$(find "$LOGS" -name 'CAS.lo_*' | wc -l)
[[ $after_files -ge $((before_files + 3)) ]] ||
    fail "the download rotated CAS.log several times while followed" "$before_files -> $after_files rotated files"
ok "the download rotated CAS.log several times while followed ($before_files -> $after_files rotated files)"
assert_exit 0 agent log
keep after_rot
assert_exit 0 agent log --all
keep after_rotall
wait_lines "$T/rot.follow" "$(wc -l <"$T/after_rot.out")" 5 ||
    fail "log --follow caught up" "$(wc -l <"$T/rot.follow") of $(wc -l <"$T/after_rot.out") lines"
wait_lines "$T/rotall.follow" "$(wc -l <"$T/after_rotall.out")" 5 ||
    fail "log --follow --all caught up" "$(wc -l <"$T/rotall.follow") of $(wc -l <"$T/after_rotall.out") lines"
sleep 0.3
follow_stop "$PID_ROT"
follow_stop "$PID_ROTALL"
assert_same_file "$T/after_rot.out" "$T/rot.follow"
ok "log --follow across rotations lost no line and repeated none"
LC_ALL=C sort "$T/after_rotall.out" >"$T/a.sorted"
LC_ALL=C sort "$T/rotall.follow" >"$T/b.sorted"
assert_same_file "$T/a.sorted" "$T/b.sorted"
ok "log --follow --all across rotations: the same records as log --all"
[[ ! -s $T/rot.follow.err && ! -s $T/rotall.follow.err ]] ||
    fail "log --follow: nothing on stderr" "$(cat "$T/rot.follow.err" "$T/rotall.follow.err")"
ok "log --follow: nothing on stderr"

# --- lines that are not records are skipped and counted ---------------------------------------------
echo "not a record" >>"$LOGS/execmgr.log"
printf '<![LOG[half a record' >>"$LOGS/execmgr.log"
assert_exit 0 agent log execmgr
assert_stderr_has "cas-agent: 2 lines were not CMTrace records (skipped)"
assert_eq "$(log_texts "$LOGS/execmgr.log")" "$(out_texts "$LAST_OUT")" \
    "log execmgr: the records around them are all there"

done_testing
