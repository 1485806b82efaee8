# shellcheck shell=bash
# Variables set here are read by the tests that source this file.
# shellcheck disable=SC2034
# Integration test harness for cas-agent, sourced by every tests/integration/t_*.sh and by
# tests/demo.sh. It gives each test a private temp folder, real nginx distribution points on free
# loopback ports, site keys and signatures made with the openssl CLI, packages built with coreutils,
# policy JSON, agent configs and assertions. See tests/integration/README.md.
#
# Packages and signatures are made here WITHOUT cas-site on purpose: the agent is checked against
# tools nobody in this project wrote (coreutils, openssl), exactly as contract.md describes them.

set -Eeuo pipefail

# ---------------------------------------------------------------------------------------------
# Binaries: CTest sets CAS_AGENT and CAS_SITE. No default: a test must never pick up a stale build.
# ---------------------------------------------------------------------------------------------
_lib_need_bin()
{
    local var=$1 val=${!1:-}
    if [[ -z $val ]]; then
        echo "not ok - $var is not set: run through ctest, or e.g." >&2
        echo "  CAS_AGENT=build/cas-agent CAS_SITE=build/cas-site bash $0" >&2
        exit 1
    fi
    if [[ ! -x $val ]]; then
        echo "not ok - $var=$val is not an executable file" >&2
        exit 1
    fi
}
_lib_need_bin CAS_AGENT
_lib_need_bin CAS_SITE
CAS_AGENT=$(realpath "$CAS_AGENT")
CAS_SITE=$(realpath "$CAS_SITE")
NGINX=${NGINX:-/usr/sbin/nginx}

# GUID as the agent writes it: upper-case, version 4, in braces.
GUID_RE='\{[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}\}'
# One CMTrace record, the whole line.
CMTRACE_RE='^<!\[LOG\[.*\]LOG\]!><time="[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{3}" date="[0-9]{2}-[0-9]{2}-[0-9]{4}" component="[A-Za-z]+" context="(\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\})?" type="[0-3]" thread="[0-9]+" file="[A-Za-z0-9_.-]+:[0-9]+">$'

# ---------------------------------------------------------------------------------------------
# Temp folder and cleanup. Everything a test makes lives under $T; the EXIT trap stops every nginx
# this test started and removes $T, whether the test passed, failed or was interrupted.
# ---------------------------------------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/cas-itest.XXXXXX")
T=$(realpath "$T")
CFG=$T/agent.json
CACHE=$T/cache
STATE=$T/state
LOGS=$T/log
KEYS=$T/keys
PRIV=$T/private
PROOF=$T/proof
mkdir -p "$KEYS" "$PRIV" "$PROOF"
: >"$T/.seq.exp" # scratch file of assert_log_sequence/order

_PASS=0
_DP_PIDS=()
_DP_DIRS=()
_DP_URLS=()

_lib_stop_pid()
{
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        # The master ignored a fast shutdown: end its workers (its own children) and then it.
        local w
        for w in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
            kill -KILL "$w" 2>/dev/null || true
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# lib_on_exit CMD -- run CMD (a string for eval) when the test exits, before the servers stop
# and $T is removed; the test's exit status is kept. For what a test sets up beyond lib.sh
# (a mount, a server of its own): never replace the EXIT trap.
_LIB_EXIT_HOOKS=()
lib_on_exit()
{
    _LIB_EXIT_HOOKS+=("$1")
}

_lib_cleanup()
{
    local rc=$? i
    set +e
    trap - ERR
    for i in "${!_LIB_EXIT_HOOKS[@]}"; do
        eval "${_LIB_EXIT_HOOKS[$i]}"
    done
    for i in "${!_DP_PIDS[@]}"; do
        [[ -n ${_DP_PIDS[$i]} ]] && _lib_stop_pid "${_DP_PIDS[$i]}"
    done
    if [[ -n ${CAS_KEEP_TMP:-} ]]; then
        echo "# kept $T" >&2
    else
        chmod -R u+rwX "$T" 2>/dev/null
        rm -rf "$T"
    fi
    exit "$rc"
}
trap _lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap '_lib_unexpected $LINENO "$BASH_COMMAND"' ERR

_lib_unexpected()
{
    # Only the test's own shell reports; a failing $( ) is reported by the command around it.
    [[ $BASHPID == "$$" ]] || return 0
    echo "not ok - unexpected failure of a harness command at line $1: $2"
    echo "$_PASS passed, 1 failed"
}

# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------
LIB_QUIET=${LIB_QUIET:-}

# ok DESCRIPTION
ok()
{
    _PASS=$((_PASS + 1))
    [[ -n $LIB_QUIET ]] || printf 'ok - %s\n' "$*"
}

# fail DESCRIPTION [DETAIL LINES...] -- prints "not ok", the details, and ends the test.
fail()
{
    trap - ERR
    # Inside $( ) stdout is being captured: say it on stderr so it is seen.
    [[ $BASHPID == "$$" ]] || exec 1>&2
    printf 'not ok - %s\n' "$1"
    shift
    local line
    for line in "$@"; do
        printf '#   %s\n' "$line"
    done
    echo "$_PASS passed, 1 failed"
    exit 1
}

# done_testing -- the last line of every test.
done_testing()
{
    echo "$_PASS passed, 0 failed"
}

# Short, readable form of a command for messages: the temp folder shows as $T.
_lib_show()
{
    local s="$*"
    s=${s//$T/\$T}
    s=${s//$CAS_AGENT/cas-agent}
    s=${s//$CAS_SITE/cas-site}
    printf '%s' "$s"
}

# The tail of a file, indented, for failure messages.
_lib_tail()
{
    local f=$1 n=${2:-15}
    if [[ -f $f ]]; then
        echo "--- last $n lines of $(_lib_show "$f"):"
        tail -n "$n" "$f" | sed 's/^/  /'
    else
        echo "--- $(_lib_show "$f") does not exist"
    fi
}

# ---------------------------------------------------------------------------------------------
# Running commands
# ---------------------------------------------------------------------------------------------
LAST_OUT=$T/last.out
LAST_ERR=$T/last.err
LAST_RC=0

# agent ARGS... -- cas-agent with this test's config.
agent()
{
    "$CAS_AGENT" --config "$CFG" "$@"
}

# run CMD... -- run, keeping stdout/stderr in $LAST_OUT/$LAST_ERR and the status in $LAST_RC.
run()
{
    LAST_RC=0
    "$@" >"$LAST_OUT" 2>"$LAST_ERR" </dev/null || LAST_RC=$?
}

# assert_exit N CMD... -- CMD exits with status N (output kept as with run).
assert_exit()
{
    local want=$1
    shift
    run "$@"
    if [[ $LAST_RC -ne $want ]]; then
        local out err
        out=$(head -c 2000 "$LAST_OUT")
        err=$(head -c 2000 "$LAST_ERR")
        local newest
        newest=$(find "$LOGS" -maxdepth 1 -name "*.log" -printf "%T@ %p\n" 2>/dev/null | sort -rn | head -1 | cut -d" " -f2- || true)
        fail "exit $want: $(_lib_show "$@")" "expected exit status $want, found $LAST_RC" \
            "stdout: $out" "stderr: $err" "$(_lib_tail "${newest:-$LOGS/CAS.log}" 8)"
    fi
    ok "exit $want: $(_lib_show "$@")"
}

# assert_error CODE -- the last command's stderr has the line "cas-agent: error CODE: <detail>".
assert_error()
{
    local code=$1
    if ! grep -Eq "^cas-agent: error ${code}: .+" "$LAST_ERR"; then
        fail "stderr names error $code" "expected a line 'cas-agent: error $code: <detail>'" \
            "stderr was: $(head -c 2000 "$LAST_ERR")"
    fi
    ok "stderr names error $code"
}

# assert_stderr_has TEXT / assert_stdout_has TEXT -- fixed-string search in the last output.
assert_stderr_has()
{
    grep -Fq -- "$1" "$LAST_ERR" ||
        fail "stderr contains '$1'" "stderr was: $(head -c 2000 "$LAST_ERR")"
    ok "stderr contains '$1'"
}
assert_stdout_has()
{
    grep -Fq -- "$1" "$LAST_OUT" ||
        fail "stdout contains '$1'" "stdout was: $(head -c 2000 "$LAST_OUT")"
    ok "stdout contains '$1'"
}

# assert_eq EXPECTED ACTUAL DESCRIPTION
assert_eq()
{
    [[ $1 == "$2" ]] || fail "$3" "expected: $1" "found:    $2"
    ok "$3"
}

# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
assert_file()
{
    [[ -f $1 ]] || fail "file exists: $(_lib_show "$1")" "not a regular file / missing"
    ok "file exists: $(_lib_show "$1")"
}

assert_no_file()
{
    if [[ -e $1 || -L $1 ]]; then
        fail "nothing at $(_lib_show "$1")" "found: $(ls -ld "$1")"
    fi
    ok "nothing at $(_lib_show "$1")"
}

# assert_same_file A B -- byte-identical.
assert_same_file()
{
    cmp -s "$1" "$2" || fail "same bytes: $(_lib_show "$1") and $(_lib_show "$2")" \
        "$(cmp "$1" "$2" 2>&1 || true)"
    ok "same bytes: $(_lib_show "$1") and $(_lib_show "$2")"
}

# assert_same_tree A B -- the same regular files with the same bytes, nothing else.
assert_same_tree()
{
    local a b
    a=$(cd "$1" && find . -mindepth 1 \( -type f -o -type l -o -type p -o -type s \) -printf '%y %P\n' | LC_ALL=C sort)
    b=$(cd "$2" && find . -mindepth 1 \( -type f -o -type l -o -type p -o -type s \) -printf '%y %P\n' | LC_ALL=C sort)
    [[ $a == "$b" ]] || fail "same files in $(_lib_show "$1") and $(_lib_show "$2")" \
        "first:  $(echo "$a" | tr '\n' ' ')" "second: $(echo "$b" | tr '\n' ' ')"
    diff -r "$1" "$2" >/dev/null || fail "same bytes in $(_lib_show "$1") and $(_lib_show "$2")" \
        "$(diff -rq "$1" "$2" 2>&1 | head -5)"
    ok "same files and bytes in $(_lib_show "$1") and $(_lib_show "$2")"
}

# assert_no_partial -- the staging folder left nothing behind.
assert_no_partial()
{
    local left=""
    if [[ -d $CACHE/.partial ]]; then
        left=$(find "$CACHE/.partial" -mindepth 1 | head -5)
    fi
    [[ -z $left ]] || fail "no .partial leftovers" "found: $(_lib_show "$left")"
    ok "no .partial leftovers in the cache"
}

# assert_not_cached C -- nothing at <cache>/C, <cache>/C.sums, nor in staging.
assert_not_cached()
{
    assert_no_file "$CACHE/$1"
    assert_no_file "$CACHE/$1.sums"
    assert_no_partial
}

# ---------------------------------------------------------------------------------------------
# CMTrace logs
# ---------------------------------------------------------------------------------------------

# log_texts FILE -- the TEXT of every record, one per line.
log_texts()
{
    [[ -f $1 ]] || return 0
    sed -n 's/^<!\[LOG\[\(.*\)\]LOG\]!><time=".*$/\1/p' "$1"
}

_lib_log_fail()
{
    local desc=$1 file=$2
    shift 2
    local tailtxt
    tailtxt=$(log_texts "$file" | tail -n 20 | sed 's/^/  /')
    fail "$desc" "$@" "--- last records of $(_lib_show "$file"):" "$tailtxt"
}

# assert_log_has FILE TEXT -- some record's TEXT is exactly TEXT.
assert_log_has()
{
    log_texts "$1" | grep -Fx -- "$2" >/dev/null ||
        _lib_log_fail "$(basename "$1") has: $2" "$1" "no record with exactly this text"
    ok "$(basename "$1") has: $2"
}

# assert_log_lacks FILE TEXT
assert_log_lacks()
{
    if log_texts "$1" | grep -Fx -- "$2" >/dev/null; then
        _lib_log_fail "$(basename "$1") lacks: $2" "$1" "found a record with this text"
    fi
    ok "$(basename "$1") lacks: $2"
}

# log_count FILE TEXT -- how many records have exactly TEXT.
log_count()
{
    log_texts "$1" | grep -Fxc -- "$2" || true
}

# assert_log_type FILE TEXT TYPE -- a record with exactly TEXT has type="TYPE".
assert_log_type()
{
    local file=$1 text=$2 type=$3
    if ! awk -v p="<![LOG[$text]LOG]!><time=" -v t="type=\"$type\"" \
        'index($0, p) == 1 && index($0, t) { found = 1 } END { exit !found }' "$file"; then
        _lib_log_fail "$(basename "$file") record is type $type: $text" "$file" \
            "found: $(grep -F -- "<![LOG[$text]LOG]!>" "$file" | head -2)"
    fi
    ok "$(basename "$file") record is type $type: $text"
}

# _lib_seq MODE FILE LINES... -- MODE consecutive: the lines are consecutive records in this
# order; MODE ordered: they appear in this order, other records may sit between them.
_lib_seq()
{
    local mode=$1 file=$2
    shift 2
    local exp="$T/.seq.exp"
    printf '%s\n' "$@" >"$exp"
    log_texts "$file" | awk -v mode="$mode" '
        NR == FNR { want[++n] = $0; next }
        { have[++m] = $0 }
        END {
            if (mode == "consecutive") {
                for (i = 1; i + n - 1 <= m; i++) {
                    for (j = 1; j <= n && have[i + j - 1] == want[j]; j++) {}
                    if (j > n) exit 0
                }
                exit 1
            }
            j = 1
            for (i = 1; i <= m && j <= n; i++) if (have[i] == want[j]) j++
            exit !(j > n)
        }' "$exp" -
}

# A short name for a list of records: all of them when few, else the first and the last.
_lib_seq_name()
{
    if [[ $# -le 3 ]]; then
        local IFS='|'
        local s="$*"
        printf '%s' "${s//|/ -> }"
    else
        printf '%s ... %s (%d records)' "$1" "${*: -1}" $#
    fi
}

# assert_log_sequence FILE LINE... -- these TEXTs are consecutive records, in this order.
assert_log_sequence()
{
    local file=$1 name
    shift
    name="$(basename "$file") has the consecutive records: $(_lib_seq_name "$@")"
    _lib_seq consecutive "$file" "$@" ||
        _lib_log_fail "$name" "$file" "expected these consecutive records:" "$(printf '  %s\n' "$@")"
    ok "$name"
}

# assert_log_order FILE LINE... -- these TEXTs appear in this order (not necessarily adjacent).
assert_log_order()
{
    local file=$1 name
    shift
    name="$(basename "$file") has, in order: $(_lib_seq_name "$@")"
    _lib_seq ordered "$file" "$@" ||
        _lib_log_fail "$name" "$file" "expected these records in this order:" "$(printf '  %s\n' "$@")"
    ok "$name"
}

# log_capture FILE ERE -- the first group... bash-side: prints the first TEXT matching ERE.
log_find()
{
    log_texts "$1" | grep -E -m1 -- "$2" || true
}

# The component each log must carry.
_lib_component_of()
{
    case $1 in
    CAS.log) echo ContentAccess ;;
    ContentTransferManager.log) echo ContentTransferManager ;;
    DataTransferService.log) echo DataTransferService ;;
    execmgr.log) echo execmgr ;;
    PolicyAgent.log) echo PolicyAgent ;;
    *) echo '' ;;
    esac
}

# assert_cmtrace_logs [DIR] -- every line of every .log in DIR is one well-formed CMTrace record,
# with the component that log belongs to.
assert_cmtrace_logs()
{
    local dir=${1:-$LOGS} f bad n=0 comp
    for f in "$dir"/*.log; do
        [[ -e $f ]] || continue
        n=$((n + 1))
        bad=$(grep -Evn -- "$CMTRACE_RE" "$f" | head -3 || true)
        [[ -z $bad ]] || fail "every line of $(basename "$f") is a CMTrace record" \
            "bad lines (line:content):" "$bad"
        comp=$(_lib_component_of "$(basename "$f")")
        if [[ -n $comp ]]; then
            bad=$(grep -vn -- "component=\"$comp\"" "$f" | head -3 || true)
            [[ -z $bad ]] || fail "every record of $(basename "$f") has component=\"$comp\"" "$bad"
        fi
        ok "every line of $(basename "$f") is a CMTrace record ($(wc -l <"$f") lines)"
    done
    [[ $n -gt 0 ]] || fail "CMTrace logs exist in $(_lib_show "$dir")" "no .log files"
}

# ---------------------------------------------------------------------------------------------
# Distribution points: nginx on free loopback ports
# ---------------------------------------------------------------------------------------------
DP_URL=""
DP_PREFIX=/SMSPKG

_lib_random_port()
{
    echo $((20000 + (RANDOM * 32768 + RANDOM) % 41000))
}

_lib_port_listening()
{
    [[ -n $(ss -ltnH "sport = :$1" 2>/dev/null) ]]
}

# Directives for temp paths of modules this nginx was built with, so it never touches /var/lib/nginx.
_lib_nginx_temp_paths()
{
    local dir=$1 v m
    v=$("$NGINX" -V 2>&1)
    echo "client_body_temp_path $dir/tmp-body;"
    for m in proxy fastcgi uwsgi scgi; do
        [[ $v == *"--without-http_${m}_module"* ]] || echo "${m}_temp_path $dir/tmp-$m;"
    done
}

# dp_start [--tls CERT KEY [--mtls CA]] [--location FILE PREFIX] [--user USER] DOCROOT -- serve
# DOCROOT at http://127.0.0.1:PORT/SMSPKG (a DP base URL) with a private nginx; with --tls, at
# https://localhost:PORT/SMSPKG with that certificate; with --mtls, clients must present a
# certificate issued by CA. --location: FILE holds the server's location block(s) for DOCROOT
# instead of the plain alias, and PREFIX replaces /SMSPKG (to test a shipped nginx snippet);
# --user: the workers' user (default: root when running as root).
# Sets DP_URL and DP_DIR (nginx's folder: access.log, error.log). Call it directly, never inside
# $( ): the nginx must be a child of the test's shell so that cleanup can wait for it.
dp_start()
{
    local docroot port attempt dir pid token i state cert="" key="" scheme=http host=127.0.0.1
    local client_ca="" location="" prefix=$DP_PREFIX user=""
    [[ $(id -u) -ne 0 ]] || user=root
    while [[ $1 == --* ]]; do
        case $1 in
        --tls)
            cert=$(realpath "$2")
            key=$(realpath "$3")
            scheme=https
            host=localhost
            shift 3
            ;;
        --mtls)
            client_ca=$(realpath "$2")
            shift 2
            ;;
        --location)
            location=$(realpath "$2")
            prefix=$3
            shift 3
            ;;
        --user)
            user=$2
            shift 2
            ;;
        *) fail "dp_start: unknown option $1" ;;
        esac
    done
    docroot=$(realpath "$1")
    local idx=${#_DP_PIDS[@]}
    dir=$T/nginx-$idx
    mkdir -p "$dir"
    token="cas-itest-$$-$idx-$RANDOM"
    for ((attempt = 0; attempt < 25; attempt++)); do
        port=$(_lib_random_port)
        _lib_port_listening "$port" && continue
        rm -f "$dir/error.log" "$dir/stderr.log"
        {
            echo "daemon off;"
            echo "master_process on;"
            echo "worker_processes 1;"
            echo "pid $dir/nginx.pid;"
            echo "error_log $dir/error.log info;"
            [[ -z $user ]] || echo "user $user;"
            echo "events { worker_connections 256; }"
            echo "http {"
            echo "  access_log $dir/access.log;"
            _lib_nginx_temp_paths "$dir" | sed 's/^/  /'
            echo "  default_type application/octet-stream;"
            echo "  server {"
            if [[ -n $cert ]]; then
                echo "    listen 127.0.0.1:$port ssl http2;"
                echo "    ssl_certificate $cert;"
                echo "    ssl_certificate_key $key;"
                if [[ -n $client_ca ]]; then
                    echo "    ssl_client_certificate $client_ca;"
                    echo "    ssl_verify_client optional;"
                    echo "    set \$deny 0;"
                    echo "    if (\$ssl_client_verify != SUCCESS) { set \$deny 1; }"
                    echo "    if (\$uri = /cas-itest-ping) { set \$deny 0; }"
                    echo "    if (\$deny = 1) { return 403; }"
                fi
            else
                echo "    listen 127.0.0.1:$port;"
            fi
            echo "    root $dir/empty-root;"
            echo "    location = /cas-itest-ping { access_log off; return 200 \"$token\"; }"
            if [[ -n $location ]]; then
                cat "$location"
            else
                echo "    location $DP_PREFIX/ { alias $docroot/; }"
            fi
            echo "  }"
            echo "}"
        } >"$dir/nginx.conf"
        mkdir -p "$dir/empty-root"
        "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
            </dev/null >"$dir/stderr.log" 2>&1 &
        pid=$!
        state=starting
        for ((i = 0; i < 200; i++)); do
            if grep -qs "Address already in use" "$dir/error.log" "$dir/stderr.log"; then
                state=busy
                break
            fi
            if ! kill -0 "$pid" 2>/dev/null; then
                state=died
                break
            fi
            if [[ $(curl -sk --max-time 2 "$scheme://127.0.0.1:$port/cas-itest-ping" 2>/dev/null) == "$token" ]]; then
                state=up
                break
            fi
            sleep 0.05
        done
        case $state in
        up)
            _DP_PIDS+=("$pid")
            _DP_DIRS+=("$dir")
            DP_URL="$scheme://$host:$port$prefix"
            _DP_URLS+=("$DP_URL")
            DP_DIR=$dir
            [[ -n $LIB_QUIET ]] || echo "# DP $DP_URL serves $(_lib_show "$docroot")"
            return 0
            ;;
        busy)
            _lib_stop_pid "$pid"
            continue
            ;;
        *)
            _lib_stop_pid "$pid"
            fail "nginx starts on 127.0.0.1:$port ($state)" "$(_lib_tail "$dir/error.log")" \
                "$(_lib_tail "$dir/stderr.log")"
            ;;
        esac
    done
    fail "nginx finds a free port" "25 random ports in 20000-60999 were busy"
}

_lib_dp_index()
{
    local i
    for i in "${!_DP_URLS[@]}"; do
        if [[ ${_DP_URLS[$i]} == "$1" ]]; then
            echo "$i"
            return 0
        fi
    done
    fail "known DP $1" "dp_start never returned this URL"
}

# dp_stop URL -- stop that DP's nginx (its URL then refuses connections).
dp_stop()
{
    local i
    i=$(_lib_dp_index "$1")
    [[ -n ${_DP_PIDS[$i]} ]] && _lib_stop_pid "${_DP_PIDS[$i]}"
    _DP_PIDS[i]=""
}

# dp_access_log URL -- path of that DP's nginx access log.
dp_access_log()
{
    local i
    i=$(_lib_dp_index "$1")
    echo "${_DP_DIRS[$i]}/access.log"
}

# dp_requests URL -- the request paths that DP served so far (path part, one per line).
dp_requests()
{
    local log
    log=$(dp_access_log "$1")
    [[ -f $log ]] || return 0
    sed -n 's/^[^"]*"[A-Z]* \([^ ]*\) HTTP[^"]*".*$/\1/p' "$log"
}

# dp_url_dead -- prints a DP URL on a free loopback port where nothing listens.
dp_url_dead()
{
    local port i rc
    for ((i = 0; i < 50; i++)); do
        port=$(_lib_random_port)
        _lib_port_listening "$port" && continue
        rc=0
        curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$port/" || rc=$?
        if [[ $rc -eq 7 ]]; then
            echo "http://127.0.0.1:$port$DP_PREFIX"
            return 0
        fi
    done
    fail "find a closed loopback port" "50 tries"
}

# ---------------------------------------------------------------------------------------------
# Packages, built with coreutils (contract.md "Package hash")
# ---------------------------------------------------------------------------------------------

# make_package DIR [MESSAGE] -- a small package: install.sh (NOT executable: HTTP carries no modes,
# the agent must make the command executable), a payload of 3000 random bytes, a file whose name
# needs percent-encoding. install.sh DIR TAG [EXIT] appends "ran TAG cwd=<cwd>" to DIR/ran-TAG.
make_package()
{
    local dir=$1 msg=${2:-hello from the test package}
    mkdir -p "$dir/data" "$dir/docs"
    cat >"$dir/install.sh" <<EOF
#!/bin/sh
# Proof that the program ran: one line per run in \$1/ran-\$2.
printf 'ran %s cwd=%s\n' "\$2" "\$(pwd -P)" >>"\$1/ran-\$2"
echo "$msg"
exit "\${3:-0}"
EOF
    chmod 0644 "$dir/install.sh"
    head -c 3000 /dev/urandom >"$dir/data/payload.bin"
    printf 'read me (%s)\n' "$msg" >"$dir/docs/read me.txt"
}

# sums_of DIR [ALG] -- the sums listing of DIR, exactly as contract.md's one-liner makes it.
sums_of()
{
    local alg=${2:-sha256}
    (cd "$1" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' "${alg}sum")
}

# package_hash DIR [ALG] -- lower-case package hash of DIR (the contract's one-liner).
package_hash()
{
    local alg=${2:-sha256}
    (cd "$1" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' "${alg}sum" | "${alg}sum" | cut -d' ' -f1)
}

# file_hash FILE [ALG] -- lower-case hash of one file.
file_hash()
{
    "${2:-sha256}sum" <"$1" | cut -d' ' -f1
}

upper()
{
    tr '[:lower:]' '[:upper:]' <<<"$1"
}

# dp_publish SRC DPDIR CONTENT_ID [sha256|sha1] -- lay SRC out on a DP folder: DPDIR/C/ (the files)
# and DPDIR/C.sums. Sets PKG_HASH (lower-case, = hash of C.sums), PKG_HASH_UC, PKG_SIZE (bytes of
# all files), PKG_FILES (count), PKG_ALG.
dp_publish()
{
    local src=$1 dp=$2 c=$3 alg=${4:-sha256}
    mkdir -p "$dp/$c"
    cp -R "$src/." "$dp/$c/"
    (cd "$src" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' "${alg}sum") >"$dp/$c.sums"
    PKG_ALG=$alg
    PKG_HASH=$("${alg}sum" "$dp/$c.sums" | cut -d' ' -f1)
    PKG_HASH_UC=$(upper "$PKG_HASH")
    PKG_SIZE=$(find "$src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    PKG_FILES=$(find "$src" -type f | wc -l)
}

# flip_byte FILE OFFSET [XORMASK] -- XOR one byte in place (default mask 0x01).
flip_byte()
{
    local f=$1 off=$2 mask=${3:-1} b
    b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
    [[ -n $b ]] || fail "flip_byte $f $off" "offset past the end"
    printf '%b' "\\0$(printf '%03o' $((b ^ mask)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# ---------------------------------------------------------------------------------------------
# Keys and signatures, made with the openssl CLI
# ---------------------------------------------------------------------------------------------

# make_key STEM [ed25519|rsa|ecdsa] -- STEM.key (private) and STEM.pem (public).
make_key()
{
    local stem=$1 type=${2:-ed25519}
    case $type in
    ed25519) openssl genpkey -algorithm ed25519 -out "$stem.key" 2>/dev/null ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$stem.key" 2>/dev/null ;;
    ecdsa) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$stem.key" 2>/dev/null ;;
    *) fail "make_key: key type $type" "use ed25519, rsa or ecdsa" ;;
    esac
    openssl pkey -in "$stem.key" -pubout -out "$stem.pem"
}

# make_site_key SITE [TYPE] -- $PRIV/SITE.key, trusted by the agent as $KEYS/SITE.pem.
make_site_key()
{
    make_key "$PRIV/$1" "${2:-ed25519}"
    cp "$PRIV/$1.pem" "$KEYS/$1.pem"
}

# sign_policy KEY POLICY [SIG] -- detached signature, exactly as contract.md shows it.
sign_policy()
{
    local key=$1 pol=$2 sig=${3:-$2.sig}
    if openssl pkey -in "$key" -noout -text 2>/dev/null | grep '^ED25519' >/dev/null; then
        openssl pkeyutl -sign -inkey "$key" -rawin -in "$pol" -out "$sig"
    else
        openssl dgst -sha256 -sign "$key" -out "$sig" "$pol"
    fi
}

# ---------------------------------------------------------------------------------------------
# Policy and config JSON
# ---------------------------------------------------------------------------------------------

utc_time()
{
    date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ
}

# advert_json key=value... -- one advertisement object. Keys (defaults): id (CEN20001),
# package (CEN00002), version (1), hash ($PKG_HASH), alg ($PKG_ALG or sha256), size ($PKG_SIZE),
# locations (space-separated URLs; $DP_URL), command (install.sh), args (raw JSON list items;
# "$PROOF", the advert id), context (System), mandatory (false), rerun (always),
# success_codes (0, 3010), persist (left out unless given: true/false), start (an RFC 3339 time;
# left out unless given: the policy's issued time), max_run_minutes (5).
# shellcheck disable=SC2120
advert_json()
{
    local id=CEN20001 package=CEN00002 version=1 hash=${PKG_HASH:-} alg=${PKG_ALG:-sha256}
    local size=${PKG_SIZE:-0} locations=$DP_URL command=install.sh args="" context=System
    local mandatory=false rerun=always success_codes="0, 3010" persist="" start="" max_run_minutes=5
    local kv k v
    for kv in "$@"; do
        k=${kv%%=*}
        v=${kv#*=}
        case $k in
        id | package | version | hash | alg | size | locations | command | args | context | mandatory | rerun | success_codes | persist | start | max_run_minutes)
            printf -v "$k" '%s' "$v"
            ;;
        *) fail "advert_json: unknown key $k" ;;
        esac
    done
    [[ -n $args ]] || args="\"$PROOF\", \"$id\""
    local persist_line=""
    [[ -z $persist ]] || persist_line=$'\n'"      \"persist\": $persist,"
    [[ -z $start ]] || persist_line+=$'\n'"      \"start\": \"$start\","
    local locs="" u
    for u in $locations; do
        locs+="${locs:+, }\"$u\""
    done
    cat <<EOF
    {
      "id": "$id",
      "package": "$package",
      "version": $version,
      "hash": { "alg": "$alg", "value": "$hash" },
      "size": $size,
      "locations": [ $locs ],
      "program": {
        "command": "$command",
        "args": [ $args ],
        "context": "$context",
        "max_run_minutes": $max_run_minutes,
        "success_codes": [ $success_codes ]
      },
      "mandatory": $mandatory,$persist_line
      "rerun": "$rerun"
    }
EOF
}

# write_policy FILE key=value... -- a policy document. Keys (defaults): site (CEN), serial
# (required; raw JSON, "none" leaves it out), issued (now - 1 min), expires (now + 1 day; "none"
# leaves it out), schema (1), note (an unknown field the agent must ignore), adverts (raw JSON
# objects, comma-separated; default: one advert_json with the current package).
write_policy()
{
    local file=$1
    shift
    local site=CEN serial="" issued expires schema=1 note="signed by the integration tests"
    local adverts="" kv k v
    issued=$(utc_time '-1 min')
    expires=$(utc_time '+1 day')
    for kv in "$@"; do
        k=${kv%%=*}
        v=${kv#*=}
        case $k in
        site | serial | issued | expires | schema | note | adverts) printf -v "$k" '%s' "$v" ;;
        *) fail "write_policy: unknown key $k" ;;
        esac
    done
    [[ -n $serial ]] || fail "write_policy: serial= is required"
    # shellcheck disable=SC2119
    [[ -n $adverts ]] || adverts=$(advert_json)
    {
        echo "{"
        echo "  \"schema\": $schema,"
        echo "  \"site\": \"$site\","
        [[ $serial == none ]] || echo "  \"serial\": $serial,"
        echo "  \"issued\": \"$issued\","
        [[ $expires == none ]] || echo "  \"expires\": \"$expires\","
        echo "  \"note\": \"$note\","
        echo "  \"advertisements\": ["
        echo "$adverts"
        echo "  ]"
        echo "}"
    } >"$file"
}

# write_config [--file F] key=rawjson... -- an agent config (default file $CFG) whose folders all
# live in $T, log_level 0; each key=value adds or replaces a key (value is raw JSON).
# CONFIG_DEFAULTS=(key=rawjson ...) -- keys every write_config of the test starts from (its own
# arguments still win). E.g. tests that publish the same files under several content ids set
# cache_dedup=false, or the second id would be copied from the first's cache entry.
CONFIG_DEFAULTS=()
write_config()
{
    local file=$CFG
    if [[ ${1:-} == --file ]]; then
        file=$2
        shift 2
    fi
    local -a keys=(cache_dir state_dir log_dir trusted_keys_dir log_level)
    local -A val=([cache_dir]="\"$CACHE\"" [state_dir]="\"$STATE\"" [log_dir]="\"$LOGS\""
        [trusted_keys_dir]="\"$KEYS\"" [log_level]=0)
    local kv k
    for kv in "${CONFIG_DEFAULTS[@]}" "$@"; do
        k=${kv%%=*}
        [[ -v val[$k] ]] || keys+=("$k")
        val[$k]=${kv#*=}
    done
    {
        echo "{"
        local i n=${#keys[@]}
        for ((i = 0; i < n; i++)); do
            k=${keys[$i]}
            printf '  "%s": %s%s\n' "$k" "${val[$k]}" "$([[ $((i + 1)) -lt $n ]] && echo ,)"
        done
        echo "}"
    } >"$file"
}

# proof_runs TAG -- how many times install.sh ran with tag TAG.
proof_runs()
{
    if [[ -f $PROOF/ran-$1 ]]; then
        wc -l <"$PROOF/ran-$1"
    else
        echo 0
    fi
}

# kb_of BYTES -- ceil(BYTES / 1024), as CAS.log's "size(KB)".
kb_of()
{
    echo $((($1 + 1023) / 1024))
}

# ---------------------------------------------------------------------------------------------
# The seed sequences of CAS.log (contract.md "Logs"), for the latest download request of C
# ---------------------------------------------------------------------------------------------

# request_guid C -- the {GUID} of the last download request CAS.log recorded for content C.
request_guid()
{
    local c_re=${1//./\\.}
    log_texts "$LOGS/CAS.log" |
        grep -E "^Successfully created download  request $GUID_RE for content $c_re\$" |
        tail -n 1 | grep -oE "$GUID_RE" || true
}

_lib_need_guid()
{
    REQ_GUID=$(request_guid "$1")
    [[ -n $REQ_GUID ]] || _lib_log_fail "CAS.log has 'Successfully created download  request {GUID} for content $1'" \
        "$LOGS/CAS.log" "no such record with a GUID matching $GUID_RE"
}

# assert_download_succeeded C [CONTEXT] -- the three seed lines of a verified download.
assert_download_succeeded()
{
    local c=$1 x=${2:-System}
    _lib_need_guid "$c"
    assert_log_sequence "$LOGS/CAS.log" \
        "Download completed for content $c under context $x" \
        "Hash verification succeeded for content $c downloaded under context $x" \
        "Download succeeded for download request $REQ_GUID"
}

# assert_download_mismatch C E A [CONTEXT] -- the four seed lines of a hash mismatch, E and A the
# expected and actual package hashes (upper-case), the last three of type 3 (error).
assert_download_mismatch()
{
    local c=$1 e=$2 a=$3 x=${4:-System} line
    _lib_need_guid "$c"
    assert_log_sequence "$LOGS/CAS.log" \
        "Download completed for content $c under context $x" \
        "Hash does not match expected $e, actual $a" \
        "Download failed for content $c under context $x, error 0x80091007" \
        "Download failed for download request $REQ_GUID"
    for line in "Hash does not match expected $e, actual $a" \
        "Download failed for content $c under context $x, error 0x80091007" \
        "Download failed for download request $REQ_GUID"; do
        assert_log_type "$LOGS/CAS.log" "$line" 3
    done
    assert_log_lacks "$LOGS/CAS.log" "Hash verification succeeded for content $c downloaded under context $x"
}

# assert_not_available C ADVERT [CODE] [COMMAND] -- execmgr.log says the program will not run.
assert_not_available()
{
    local c=$1 ad=$2 code=${3:-0x80091007} cmd=${4:-install.sh}
    assert_log_order "$LOGS/execmgr.log" \
        "Content $c is not available for program $cmd, error $code" \
        "Program $cmd of advert $ad will not be run"
    assert_log_type "$LOGS/execmgr.log" "Content $c is not available for program $cmd, error $code" 3
    assert_log_type "$LOGS/execmgr.log" "Program $cmd of advert $ad will not be run" 3
}
