#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# A program that runs longer than max_run_minutes (0.05 = 3 s) is ended with its whole process
# group, background children included: SIGTERM, and SIGKILL 5 s later for a group that ignores
# SIGTERM. execute fails with 0xA0CA0102 and execmgr.log warns naming the program, the limit and
# the process group. An agent asked to stop (SIGTERM) while the program runs ends the group the
# same way and fails with 0x800704C7.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_overrun"

OUT=$T/out
mkdir -p "$OUT"
chmod 0777 "$OUT"
# Should a check fail half way, no sleeper of this test outlives it.
lib_on_exit "for f in '$OUT'/*/*.pid; do [[ -f \$f ]] && kill -KILL \"\$(cat \"\$f\")\" 2>/dev/null; done"

write_config
make_site_key CEN
mkdir -p "$T/src"
cat >"$T/src/overrun.sh" <<'EOF'
#!/bin/sh
# overrun.sh OUT [stubborn]: a child in the background, then a long wait in the foreground.
out=$1
mkdir -p "$out"
if [ "${2:-}" = stubborn ]; then
    trap '' TERM
fi
sleep 300 &
echo $! >"$out/bg.pid"
echo $$ >"$out/main.pid"
echo "overrun started"
sleep 300
echo "overrun was not stopped"
EOF
C=CEN00009.1
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" "$C"
dp_start "$T/dp"

# advert_json writes "max_run_minutes": 5; these adverts need a fractional limit.
ad()
{
    local json
    json=$(advert_json id="$1" package=CEN00009 version=1 command=overrun.sh args="$3")
    json=${json/\"max_run_minutes\": 5,/\"max_run_minutes\": $2,}
    [[ $json == *"\"max_run_minutes\": $2,"* ]] || fail "advert $1 has max_run_minutes $2" "$json"
    printf '%s\n' "$json"
}
write_policy "$T/policy.json" serial=1 adverts="$(
    ad OVER1 0.05 "\"$OUT/over1\""
    echo ,
    ad OVER2 0.05 "\"$OUT/over2\", \"stubborn\""
    echo ,
    ad CANCEL1 5 "\"$OUT/cancel1\""
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"
# Download first, so the times below are the program's alone.
assert_exit 0 agent download "$C"

now() { date +%s.%N; }
# assert_between LOW HIGH SECONDS DESCRIPTION
assert_between()
{
    awk -v lo="$1" -v hi="$2" -v s="$3" 'BEGIN { exit !(s >= lo && s < hi) }' ||
        fail "$4" "expected between $1 and $2 seconds, took $3"
    ok "$4 ($(printf '%.1f' "$3") s)"
}
# assert_gone NAME PIDFILE
assert_gone()
{
    local pid
    [[ -f $2 ]] || fail "$1 wrote its pid" "no $(_lib_show "$2")"
    pid=$(cat "$2")
    if kill -0 "$pid" 2>/dev/null; then
        fail "$1 (pid $pid) is gone" "$(ps -o pid,ppid,pgid,stat,args -p "$pid" | tail -1)"
    fi
    ok "$1 (pid $pid) is gone"
}
EL=$LOGS/execmgr.log

# --- over the limit: TERM ends the program and its background child
t0=$(now)
assert_exit 1 agent execute OVER1
took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
assert_error 0xA0CA0102
assert_between 2.9 15 "$took" "execute ended soon after the 3 s limit"
assert_gone "the program" "$OUT/over1/main.pid"
assert_gone "its background child" "$OUT/over1/bg.pid"
PG=$(cat "$OUT/over1/main.pid")
assert_log_has "$EL" "Program overrun.sh ran longer than its maximum run time of 0.05 minutes, ending its process group $PG"
assert_log_type "$EL" "Program overrun.sh ran longer than its maximum run time of 0.05 minutes, ending its process group $PG" 2
assert_log_has "$EL" "Program output: overrun started"
assert_log_lacks "$EL" "Program output: overrun was not stopped"
line=$(log_find "$EL" "^Program overrun\.sh of advert OVER1 failed to run: .* ran longer than 0\.05 minutes and was stopped .*, error 0xA0CA0102\$")
[[ -n $line ]] || _lib_log_fail "execmgr.log says OVER1 failed to run with 0xA0CA0102" "$EL" "no such record"
ok "execmgr.log: $line"
assert_log_lacks "$EL" "Process group $PG of program overrun.sh did not end within 5 seconds of SIGTERM, sending SIGKILL"

# --- a group that ignores SIGTERM: SIGKILL after the 5 s grace period
t0=$(now)
assert_exit 1 agent execute OVER2
took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
assert_error 0xA0CA0102
assert_between 7.9 20 "$took" "execute ended after the limit plus the 5 s grace period"
assert_gone "the program that ignores SIGTERM" "$OUT/over2/main.pid"
assert_gone "its background child that ignores SIGTERM" "$OUT/over2/bg.pid"
PG=$(cat "$OUT/over2/main.pid")
assert_log_order "$EL" \
    "Program overrun.sh ran longer than its maximum run time of 0.05 minutes, ending its process group $PG" \
    "Process group $PG of program overrun.sh did not end within 5 seconds of SIGTERM, sending SIGKILL"

# --- the agent is asked to stop while the program runs
t0=$(now)
"$CAS_AGENT" --config "$CFG" execute CANCEL1 >"$T/cancel.out" 2>"$T/cancel.err" </dev/null &
apid=$!
for ((i = 0; i < 200; i++)); do
    [[ -s $OUT/cancel1/bg.pid && -s $OUT/cancel1/main.pid ]] && break
    sleep 0.05
done
[[ -s $OUT/cancel1/main.pid ]] || fail "the program of CANCEL1 started" "$(cat "$T/cancel.err")"
kill -TERM "$apid"
rc=0
wait "$apid" || rc=$?
took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
assert_eq 1 "$rc" "a stopped execute exits 1"
grep -Eq '^cas-agent: error 0x800704C7: .*stopped: the agent is stopping' "$T/cancel.err" ||
    fail "stderr names error 0x800704C7 and why" "stderr: $(cat "$T/cancel.err")"
ok "stderr names error 0x800704C7: stopped: the agent is stopping"
assert_between 0 8 "$took" "execute ended soon after SIGTERM"
assert_gone "the stopped program" "$OUT/cancel1/main.pid"
assert_gone "its background child" "$OUT/cancel1/bg.pid"
PG=$(cat "$OUT/cancel1/main.pid")
assert_log_has "$EL" "The agent is stopping, ending program overrun.sh and its process group $PG"

assert_cmtrace_logs
done_testing
