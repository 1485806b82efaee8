#!/bin/bash
# cas-faultd, the hostile distribution point of the tests, checked with curl: normal service (ETag,
# Last-Modified, Range, 416, If-Range, HEAD, keep-alive, percent-decoding, '..' refused), every
# action of the rules file, times=N, prefix rules, the request log, bad command lines, and a clean
# exit 0 on SIGTERM even with a connection held open. The other tests trust this server's faults,
# so its faults are checked here first.
#
# Environment: CAS_FAULTD (the program), or CAS_AGENT (then $(dirname CAS_AGENT)/tests/cas-faultd,
# where the build puts it). CAS_FAULTD_WRAP runs the server under a wrapper, e.g.
#   CAS_FAULTD_WRAP="valgrind --error-exitcode=1 --leak-check=full"
# CAS_KEEP_TMP=1 keeps the temp folder.
set -euo pipefail
echo "# t_faultd"

FAULTD=${CAS_FAULTD:-}
if [[ -z $FAULTD ]]; then
    [[ -n ${CAS_AGENT:-} ]] || {
        echo "not ok - set CAS_FAULTD (or CAS_AGENT, next to which the build puts tests/cas-faultd)"
        exit 1
    }
    FAULTD=$(dirname "$CAS_AGENT")/tests/cas-faultd
fi
[[ -x $FAULTD ]] || {
    echo "not ok - cas-faultd: $FAULTD is not an executable file"
    exit 1
}
read -r -a WRAP <<<"${CAS_FAULTD_WRAP:-}"

T=$(mktemp -d "${TMPDIR:-/tmp}/t_faultd.XXXXXX")
SRV=""
_PASS=0

# Stops the server if it still runs (TERM, then KILL after 10 s) and removes $T.
cleanup()
{
    local rc=$? i
    set +e
    if [[ -n $SRV ]] && kill -TERM "$SRV" 2>/dev/null; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$SRV" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SRV" 2>/dev/null
        wait "$SRV" 2>/dev/null
    fi
    jobs -p | xargs -r kill 2>/dev/null # background curls of a failed check
    if [[ -n ${CAS_KEEP_TMP:-} ]]; then
        echo "# kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ok()
{
    _PASS=$((_PASS + 1))
    printf 'ok - %s\n' "$*"
}

# fail DESCRIPTION [DETAIL LINES...]: "not ok", the details, and the end of the test.
fail()
{
    printf 'not ok - %s\n' "$1"
    shift
    local line
    for line in "$@"; do
        printf '#   %s\n' "$line"
    done
    if [[ -f $T/stderr && -s $T/stderr ]]; then
        echo "# --- server stderr:"
        tail -n 20 "$T/stderr" | sed 's/^/#   /'
    fi
    echo "$_PASS passed, 1 failed"
    exit 1
}

# check_eq EXPECTED ACTUAL WHAT
check_eq()
{
    [[ $1 == "$2" ]] || fail "$3" "expected: $1" "found:    $2"
    ok "$3"
}

# check WHAT COMMAND...: the command must succeed.
check()
{
    local what=$1
    shift
    "$@" || fail "$what" "failed: $*"
    ok "$what"
}

# fetch PATH [CURL ARGS...]: GET $BASE/PATH, body in $T/body, headers in $T/hdrs. Sets CODE, SIZE
# (body bytes received, curl's %{size_download}) and RC (curl's exit status).
fetch()
{
    local path=$1 out
    shift
    RC=0
    out=$(curl -s -o "$T/body" -D "$T/hdrs" -w '%{http_code} %{size_download}' "$@" "$BASE$path") ||
        RC=$?
    CODE=${out% *}
    SIZE=${out#* }
}

# header NAME: the value of header NAME in $T/hdrs (the last one, after redirects), or nothing.
header()
{
    sed -n "s/^$1: *//Ip" "$T/hdrs" | tr -d '\r' | tail -n 1
}

# log_wait REGEX [N]: waits (10 s) until the request log has N (1) lines matching REGEX and prints
# the last. The server logs a request when its response ends, which can be just after curl returns.
log_wait()
{
    local re=$1 n=${2:-1} i
    for ((i = 0; i < 100; i++)); do
        if [[ $(grep -cE -- "$re" "$T/log" 2>/dev/null) -ge $n ]]; then
            grep -E -- "$re" "$T/log" | tail -n 1
            return 0
        fi
        sleep 0.1
    done
    fail "the log has $n line(s) matching: $re" "log:" "$(cat "$T/log" 2>/dev/null)"
}

now_ms()
{
    local us=${EPOCHREALTIME/./}
    echo $((us / 1000))
}

# A 10000-byte file under several names (one per rule, so each log line is unambiguous), a 3 KiB
# one to drip, and a name that needs percent-encoding.
P=/SMSPKG/CEN00002.1
D=$T/root$P
mkdir -p "$D/docs" "$D/pre" "$T/root/other"
head -c 10000 /dev/urandom >"$D/data.bin"
for f in cut flip overlong stall reset times seq norange etag pre/free pre/x keep; do
    cp "$D/data.bin" "$D/$f.bin"
done
head -c 3072 /dev/urandom >"$D/drip.bin"
for i in 1 2 3; do cp "$D/drip.bin" "$D/drip$i.bin"; done
printf 'read me\n' >"$D/docs/read me.txt"
echo secret >"$T/secret"

echo "# command line"
RC=0
"$FAULTD" --root "$T/root" >/dev/null 2>"$T/err" || RC=$?
check_eq 2 "$RC" "no --rules: exit 2"
printf '/x cut\n' >"$T/bad.rules"
RC=0
"$FAULTD" --root "$T/root" --rules "$T/bad.rules" >/dev/null 2>"$T/err" || RC=$?
check_eq 2 "$RC" "a rule missing its argument: exit 2"
check "the message names the rules file and line" grep -q "bad.rules:1: cut needs an argument" "$T/err"
printf '# ok\n/x frobnicate\n' >"$T/bad.rules"
RC=0
"$FAULTD" --root "$T/root" --rules "$T/bad.rules" >/dev/null 2>"$T/err" || RC=$?
check_eq 2 "$RC" "an unknown action: exit 2"
check "the message names line 2" grep -q "bad.rules:2: unknown action 'frobnicate'" "$T/err"

BIG=1000000000000
cat >"$T/rules" <<EOF
# Rules of this test: one path per action.
$P/cut.bin       cut 1000
$P/flip.bin      flip 5          # file offset 5, whatever the range
$P/overlong.bin  overlong 500
$P/endless.bin   endless         # no file needed
$P/big.bin       bigheader
$P/drip*         drip 1000
$P/stall.bin     stall 2000
$P/reset.bin     reset 1500
$P/times.bin     status 503 retry-after=3 times=2
$P/s429          status 429
$P/seq.bin       status 500 times=1
$P/seq.bin       cut 10 times=1
$P/norange.bin   norange
$P/etag.bin      etag-change
$P/redir         redirect http://127.0.0.1:1/elsewhere/data.bin
$P/loop          redirect-loop
$P/pre/free.bin  normal
$P/pre/*         status 404
EOF

echo "# start"
"${WRAP[@]}" "$FAULTD" --root "$T/root" --rules "$T/rules" --port-file "$T/port" --log "$T/log" \
    >"$T/stdout" 2>"$T/stderr" &
SRV=$!
for ((i = 0; i < 300; i++)); do
    [[ -s $T/port ]] && break
    kill -0 "$SRV" 2>/dev/null || fail "the server starts" "it exited"
    sleep 0.1
done
PORT=$(cat "$T/port" 2>/dev/null) || fail "the server writes --port-file within 30 s"
[[ $PORT =~ ^[0-9]+$ ]] || fail "the port file holds a port number" "found: $PORT"
ok "the port file holds a port number ($PORT)"
check_eq "$PORT" "$(head -n 1 "$T/stdout")" "the port is printed on stdout too"
BASE=http://127.0.0.1:$PORT

echo "# normal service"
fetch "$P/data.bin"
check_eq "200 10000" "$CODE $SIZE" "GET: 200 and the whole file"
check "GET: the body is the file" cmp -s "$T/body" "$D/data.bin"
check_eq 10000 "$(header Content-Length)" "GET: Content-Length"
ETAG=$(header ETag)
LASTMOD=$(header Last-Modified)
[[ $ETAG =~ ^\"[^\"]+\"$ ]] || fail "GET: a quoted ETag" "found: $ETAG"
ok "GET: a quoted ETag ($ETAG)"
[[ $LASTMOD =~ ^[A-Z][a-z]{2},\ [0-9]{2}\ [A-Z][a-z]{2}\ [0-9]{4}\ [0-9:]{8}\ GMT$ ]] ||
    fail "GET: an HTTP-date Last-Modified" "found: $LASTMOD"
ok "GET: an HTTP-date Last-Modified ($LASTMOD)"
check_eq bytes "$(header Accept-Ranges)" "GET: Accept-Ranges: bytes"
fetch "$P/data.bin"
check_eq "$ETAG" "$(header ETag)" "the ETag is stable between requests"
log_wait "^GET $P/data.bin range=- ifrange=- status=200 sent=10000\$" >/dev/null
ok "the log line of a GET"

fetch "$P/docs/read%20me.txt"
check_eq "200 8" "$CODE $SIZE" "a percent-encoded path is decoded"
check "the decoded path serves its file" cmp -s "$T/body" "$D/docs/read me.txt"

fetch "$P/data.bin" -I
check_eq "200 0 10000" "$CODE $SIZE $(header Content-Length)" "HEAD: 200, headers only"
log_wait "^HEAD $P/data.bin range=- ifrange=- status=200 sent=0\$" >/dev/null
ok "the log line of a HEAD"

fetch "$P/nothing.bin"
check_eq 404 "$CODE" "a missing file: 404"
fetch "$P" # a folder
check_eq 404 "$CODE" "a folder: 404"
fetch "$P/../../secret" --path-as-is
check_eq 403 "$CODE" "'..' in the path: 403"
fetch "$P/%2e%2e/%2E%2E/secret"
check_eq 403 "$CODE" "an encoded '..': 403"
fetch "$P/bad%zz"
check_eq 400 "$CODE" "a malformed escape: 400"
fetch "$P/data.bin" -X POST
check_eq "405 GET, HEAD" "$CODE $(header Allow)" "POST: 405 with Allow"

echo "# Range and If-Range"
fetch "$P/data.bin" -H 'Range: bytes=100-'
check_eq "206 9900" "$CODE $SIZE" "bytes=100-: 206 and the rest"
check_eq "bytes 100-9999/10000" "$(header Content-Range)" "bytes=100-: Content-Range"
check "bytes=100-: the body is the file from 100" cmp -s "$T/body" <(tail -c +101 "$D/data.bin")
fetch "$P/data.bin" -H 'Range: bytes=10-19'
check_eq "206 10 bytes 10-19/10000" "$CODE $SIZE $(header Content-Range)" "bytes=10-19: 206, 10 bytes"
check "bytes=10-19: the right bytes" cmp -s "$T/body" <(head -c 20 "$D/data.bin" | tail -c 10)
fetch "$P/data.bin" -H 'Range: bytes=9990-20000'
check_eq "206 10 bytes 9990-9999/10000" "$CODE $SIZE $(header Content-Range)" "an end past the file is clamped"
fetch "$P/data.bin" -H 'Range: bytes=-300'
check_eq "206 300 bytes 9700-9999/10000" "$CODE $SIZE $(header Content-Range)" "bytes=-300: the last 300 bytes"
fetch "$P/data.bin" -H 'Range: bytes=5-2'
check_eq "200 10000" "$CODE $SIZE" "a malformed Range is ignored: 200 full"
fetch "$P/data.bin" -H 'Range: bytes=10000-'
check_eq "416 bytes */10000" "$CODE $(header Content-Range)" "bytes=10000-: 416 with bytes */SIZE"
log_wait "^GET $P/data.bin range=bytes=10000- ifrange=- status=416 sent=[0-9]+\$" >/dev/null
ok "the log line of a 416 shows the Range"
fetch "$P/data.bin" -H 'Range: bytes=100-' -H "If-Range: $ETAG"
check_eq "206 9900" "$CODE $SIZE" "If-Range with the current ETag: 206"
fetch "$P/data.bin" -H 'Range: bytes=100-' -H "If-Range: $LASTMOD"
check_eq "206 9900" "$CODE $SIZE" "If-Range with the current Last-Modified: 206"
fetch "$P/data.bin" -H 'Range: bytes=100-' -H 'If-Range: "some-other-etag"'
check_eq "200 10000" "$CODE $SIZE" "If-Range with another ETag: 200 and the whole file"
log_wait "^GET $P/data.bin range=bytes=100- ifrange=\"some-other-etag\" status=200 sent=10000\$" >/dev/null
ok "the log line shows Range and If-Range"

echo "# connections"
N=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$BASE$P/data.bin" "$BASE$P/keep.bin" |
    awk '{ s += $1 } END { print s }')
check_eq 1 "$N" "keep-alive: two requests on one connection"
fetch "$P/data.bin" -H 'Connection: close'
check_eq "200 close" "$CODE $(header Connection)" "Connection: close is honoured"

# raw REQUEST: sends the bytes (a printf format) on a fresh connection and keeps what the server
# sends in $T/raw; the server must close the connection within 5 s.
raw()
{
    local rc=0
    exec 3<>"/dev/tcp/127.0.0.1/$PORT"
    # shellcheck disable=SC2059
    printf "$1" >&3
    timeout 5 cat <&3 >"$T/raw" || rc=$?
    exec 3<&-
    [[ $rc -eq 0 ]] || fail "the server closes the connection after: $1" "cat: $rc"
    tr -d '\r' <"$T/raw" >"$T/raw.txt"
}
raw "GET $P/docs/read%%20me.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD $P/keep.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
check_eq "HTTP/1.1 200 OK,HTTP/1.1 200 OK" "$(grep '^HTTP/' "$T/raw.txt" | paste -sd,)" \
    "two pipelined requests in one write: two answers, then close"
raw "GET $P/docs/read%%20me.txt HTTP/1.0\r\n\r\n"
check_eq "HTTP/1.1 200 OK" "$(head -n 1 "$T/raw.txt")" "HTTP/1.0: answered, and closed without Connection: keep-alive"
raw "HELLO\r\n\r\n"
check_eq "HTTP/1.1 400 Bad Request" "$(head -n 1 "$T/raw.txt")" "a malformed request line: 400, closed"

echo "# cut 1000"
fetch "$P/cut.bin"
check_eq "18 200 1000 10000" "$RC $CODE $SIZE $(header Content-Length)" \
    "cut: curl 18 (partial file) after 1000 of the 10000 announced bytes"
log_wait "^GET $P/cut.bin range=- ifrange=- status=200 sent=1000\$" >/dev/null
ok "cut: logged sent=1000"
fetch "$P/cut.bin" -H 'Range: bytes=100-'
check_eq "18 206 1000 9900" "$RC $CODE $SIZE $(header Content-Length)" "cut with a range: 1000 of the range's 9900 bytes"

echo "# flip 5"
fetch "$P/flip.bin"
check_eq "0 200 10000" "$RC $CODE $SIZE" "flip: full length"
DIFF=$(cmp -l "$T/body" "$D/flip.bin" || true)
check_eq 1 "$(wc -l <<<"$DIFF")" "flip: exactly one byte differs"
read -r AT A B <<<"$DIFF"
check_eq "6 1" "$AT $(($((8#$A)) ^ $((8#$B))))" "flip: byte at offset 5, XOR 0x01"
fetch "$P/flip.bin" -H 'Range: bytes=100-'
check "flip: a range past the offset is intact" cmp -s "$T/body" <(tail -c +101 "$D/flip.bin")

echo "# overlong 500"
fetch "$P/overlong.bin"
check_eq "200 10000" "$CODE $SIZE" "overlong: curl keeps to Content-Length"
check "overlong: the announced bytes are the file" cmp -s "$T/body" "$D/overlong.bin"
log_wait "^GET $P/overlong.bin range=- ifrange=- status=200 sent=10500\$" >/dev/null
ok "overlong: the server wrote 500 bytes more (sent=10500)"

echo "# endless, bigheader"
# Bounded by --limit-rate: curl 7.88 does not apply --max-filesize to a body without a length.
fetch "$P/endless.bin" --limit-rate 1M --max-time 1
check_eq "28 200" "$RC $CODE" "endless: 200, still sending when curl gives up (28 after 1 s)"
check_eq "" "$(header Content-Length)" "endless: no Content-Length"
[[ $SIZE -gt 100000 ]] || fail "endless: the body went on" "size_download: $SIZE"
ok "endless: the body went on ($SIZE bytes)"
check "endless: all 'A'" bash -c "! tr -d A <'$T/body' | grep -q ."
L=$(log_wait "^GET $P/endless.bin range=- ifrange=- status=200 sent=[0-9]+\$")
[[ ${L##*sent=} -ge $SIZE ]] || fail "endless: logged when the client left" "$L"
ok "endless: logged when the client left (${L##* })"
fetch "$P/big.bin" --max-filesize 1000
check_eq "63 $BIG" "$RC $(header Content-Length)" "bigheader: Content-Length 10^12 (curl refuses it: 63)"
fetch "$P/big.bin" --limit-rate 1M --max-time 1
[[ $RC -eq 28 && $SIZE -gt 100000 ]] || fail "bigheader: the body goes on" "curl $RC, $SIZE bytes"
ok "bigheader: the body goes on (curl 28 after 1 s, $SIZE bytes)"
check "bigheader: all 'A'" bash -c "! tr -d A <'$T/body' | grep -q ."

echo "# drip 1000"
t0=$(now_ms)
fetch "$P/drip.bin"
dt=$(($(now_ms) - t0))
check_eq "200 3072" "$CODE $SIZE" "drip: the whole file"
check "drip: the body is the file" cmp -s "$T/body" "$D/drip.bin"
[[ $dt -ge 2000 ]] || fail "drip: 3 KiB at 1000 B/s takes >= 2 s" "took $dt ms"
ok "drip: 3 KiB at 1000 B/s takes >= 2 s ($dt ms)"
fetch "$P/drip.bin" -y 1 -Y 2000
check_eq 28 "$RC" "drip: curl's low-speed limit (2000 B/s for 1 s) aborts"
echo "# concurrent clients"
t0=$(now_ms)
PIDS=()
for i in 1 2 3; do
    curl -s -o "$T/par$i" "$BASE$P/drip$i.bin" &
    PIDS+=($!)
done
for i in "${PIDS[@]}"; do
    wait "$i" || fail "three drips at once" "a curl failed"
done
dt=$(($(now_ms) - t0))
for i in 1 2 3; do
    cmp -s "$T/par$i" "$D/drip.bin" || fail "concurrent drip $i: the whole file"
done
[[ $dt -lt 8000 ]] || fail "three 3-second drips at once take < 8 s (one after the other: 9)" "took $dt ms"
ok "three 3-second drips at once take < 8 s ($dt ms)"

echo "# stall 2000"
t0=$(now_ms)
fetch "$P/stall.bin" --max-time 3
dt=$(($(now_ms) - t0))
check_eq "28 200 2000" "$RC $CODE $SIZE" "stall: 2000 bytes then nothing (curl 28 after --max-time 3)"
[[ $dt -ge 2500 ]] || fail "stall: the connection stays open" "curl ended after $dt ms"
ok "stall: the connection stays open ($dt ms)"
log_wait "^GET $P/stall.bin range=- ifrange=- status=200 sent=2000\$" >/dev/null
ok "stall: logged once the client left"

echo "# reset 1500"
fetch "$P/reset.bin"
check_eq "56 200" "$RC $CODE" "reset: curl 56 (connection reset)"
grep -q 'reset by peer' <(curl -sS -o /dev/null "$BASE$P/reset.bin" 2>&1) ||
    fail "reset: the client sees 'Connection reset by peer'"
ok "reset: the client sees 'Connection reset by peer'"
[[ $SIZE -le 1500 ]] || fail "reset: at most 1500 body bytes" "size_download: $SIZE"
ok "reset: at most 1500 body bytes ($SIZE)"
log_wait "^GET $P/reset.bin range=- ifrange=- status=200 sent=1500\$" >/dev/null
ok "reset: logged sent=1500"

echo "# status, times=N"
for i in 1 2; do
    fetch "$P/times.bin"
    check_eq "503 3" "$CODE $(header Retry-After)" "status 503 retry-after=3 times=2: request $i is 503 with Retry-After"
done
fetch "$P/times.bin"
check_eq "200 10000" "$CODE $SIZE" "times=2: request 3 is served normally"
check_eq 2 "$(grep -c "^GET $P/times.bin .*status=503" "$T/log")" "times=2: two 503s in the log"
fetch "$P/s429"
check_eq "429 " "$CODE $(header Retry-After)" "status 429: no Retry-After unless asked"
fetch "$P/seq.bin"
check_eq 500 "$CODE" "an exhausted rule falls through: 1st request 500"
fetch "$P/seq.bin"
check_eq "18 10" "$RC $SIZE" "an exhausted rule falls through: 2nd request cut at 10"
fetch "$P/seq.bin"
check_eq "0 200 10000" "$RC $CODE $SIZE" "an exhausted rule falls through: 3rd request served"

echo "# norange, etag-change"
fetch "$P/norange.bin" -H 'Range: bytes=100-'
check_eq "200 10000 none" "$CODE $SIZE $(header Accept-Ranges)" "norange: Range ignored, 200 full"
fetch "$P/etag.bin"
E1=$(header ETag)
M1=$(header Last-Modified)
fetch "$P/etag.bin"
E2=$(header ETag)
M2=$(header Last-Modified)
[[ $E1 != "$E2" && $M1 != "$M2" ]] || fail "etag-change: ETag and Last-Modified change" "$E1 $M1" "$E2 $M2"
ok "etag-change: ETag and Last-Modified change ($E1, $E2)"
fetch "$P/etag.bin" -H 'Range: bytes=100-' -H "If-Range: $E2"
check_eq "200 10000" "$CODE $SIZE" "etag-change: If-Range never matches"
fetch "$P/etag.bin" -H 'Range: bytes=100-'
check_eq "206 9900" "$CODE $SIZE" "etag-change: a Range alone still works"

echo "# redirect, redirect-loop"
fetch "$P/redir"
check_eq "302 http://127.0.0.1:1/elsewhere/data.bin" "$CODE $(header Location)" "redirect: 302 to the URL"
fetch "$P/loop"
check_eq "302 $P/loop?loop=1" "$CODE $(header Location)" "redirect-loop: 302 to the same path"
fetch "$P/loop" -L --max-redirs 5
check_eq "47 302 $P/loop?loop=7" "$RC $CODE $(header Location)" "redirect-loop: forever (curl 47), a new URL each time"

echo "# prefix rules"
fetch "$P/pre/x.bin"
check_eq 404 "$CODE" "a prefix rule matches under it"
fetch "$P/pre/free.bin"
check_eq "200 10000" "$CODE $SIZE" "the first matching rule wins (normal before the prefix)"

echo "# the log"
BAD=$(grep -vcE '^[A-Z-]+ [^ ]+ range=.* ifrange=.* status=[0-9]{3} sent=[0-9]+$' "$T/log" || true)
check_eq 0 "$BAD" "every log line has the format"

echo "# SIGTERM with a connection held open"
curl -s -o /dev/null --max-time 60 "$BASE$P/stall.bin" &
HELD=$!
sleep 1 # for the request to arrive
t0=$(now_ms)
kill -TERM "$SRV"
RC=0
wait "$SRV" || RC=$?
dt=$(($(now_ms) - t0))
SRV=""
check_eq 0 "$RC" "the server exits 0 on SIGTERM"
[[ $dt -lt 5000 ]] || fail "it does not wait for the stalled client" "took $dt ms"
ok "it does not wait for the stalled client ($dt ms)"
RC=0
wait "$HELD" || RC=$?
[[ $RC -ne 0 ]] || fail "the stalled client saw its connection end"
ok "the stalled client saw its connection end (curl $RC)"
if [[ ${#WRAP[@]} -eq 0 ]]; then # a wrapper such as valgrind writes there itself
    [[ ! -s $T/stderr ]] || fail "nothing on the server's stderr" "$(cat "$T/stderr")"
    ok "nothing on the server's stderr"
fi

echo "$_PASS passed, 0 failed"
