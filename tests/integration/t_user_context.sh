#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# A "user:<name>" context: the agent (root) runs the program as that user, with the user's uid,
# gid and groups, an environment of exactly HOME USER LOGNAME PATH LANG, no inherited descriptors,
# in the content folder, which the user can read but not change. The program's output lines are
# in execmgr.log at log_level 0. An unknown user is refused with 0x80070525 before anything runs;
# an agent that is not root refuses a user context with 0x80070005. Needs root (exit 77 without).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_user_context"

if [[ $(id -u) -ne 0 ]]; then
    echo "# skipped: running a program as another user needs root"
    exit 77
fi
if ! command -v useradd >/dev/null || ! command -v userdel >/dev/null; then
    echo "# skipped: useradd / userdel not installed"
    exit 77
fi

# The test user is machine-wide: two runs of this test at once (several build folders) take turns.
exec {USER_LOCK}>"${TMPDIR:-/tmp}/cas-itest-user-context.lock"
flock "$USER_LOCK"
TUSER=cas-test-user
if ! id -u "$TUSER" >/dev/null 2>&1; then
    useradd --system --no-create-home "$TUSER" 2>/dev/null || id -u "$TUSER" >/dev/null ||
        fail "useradd --system --no-create-home $TUSER" "$(useradd --system --no-create-home "$TUSER" 2>&1)"
fi
lib_on_exit "userdel '$TUSER' >/dev/null 2>&1"
TUID=$(id -u "$TUSER")
TGID=$(id -g "$TUSER")
TGROUPS=$(id -G "$TUSER" | tr ' ' '\n' | sort -n | tr '\n' ' ' | sed 's/ $//')
ok "test user $TUSER is uid $TUID, gid $TGID"

# The program must reach the content: the test folder is 0700 (mktemp); the cache below it is made
# by the agent (0755 folders). The program reports into a world-writable folder.
chmod 0755 "$T"
OUT=$T/out
mkdir -p "$OUT"
chmod 0777 "$OUT"

write_config
make_site_key CEN
make_package "$T/src"
cat >"$T/src/probe.sh" <<'EOF'
#!/bin/sh
# probe.sh OUT [nowrite]: who runs me, with what environment and descriptors, and can I change
# the content I run from?
out=$1
mkdir -p "$out"
id -u >"$out/uid"
id -G >"$out/groups"
# The environment the program was started with (a shell adds PWD to what it exports).
tr '\0' '\n' </proc/$$/environ >"$out/env"
pwd -P >"$out/cwd"
ls /proc/self/fd >"$out/fds"
if [ "${2:-}" != nowrite ]; then
    if (echo x >new-file) 2>/dev/null; then echo wrote; else echo denied; fi >"$out/write-new"
    if (echo x >>data/payload.bin) 2>/dev/null; then echo wrote; else echo denied; fi >"$out/modify"
    if chmod u+w data/payload.bin 2>/dev/null; then echo wrote; else echo denied; fi >"$out/chmod"
    if (rm -f "docs/read me.txt") 2>/dev/null && [ ! -e "docs/read me.txt" ]; then
        echo wrote
    else
        echo denied
    fi >"$out/remove"
fi
echo "probe ran as $(id -un)"
echo "probe says this on stderr" >&2
EOF
C=CEN00007.1
mkdir -p "$T/dp"
dp_publish "$T/src" "$T/dp" "$C"
dp_start "$T/dp"

ad()
{
    advert_json id="$1" package=CEN00007 version=1 command=probe.sh context="$2" args="$3"
}
write_policy "$T/policy.json" serial=1 adverts="$(
    ad USER1 "user:$TUSER" "\"$OUT/user\""
    echo ,
    ad SYS1 System "\"$OUT/system\", \"nowrite\""
    echo ,
    ad NOUSER "user:cas-no-such-user" "\"$OUT/nouser\""
)"
sign_policy "$PRIV/CEN.key" "$T/policy.json"
assert_exit 0 agent policy apply "$T/policy.json"

# --- user:cas-test-user
assert_exit 0 agent execute USER1
# The output goes to execmgr.log (checked below), not to the agent's own stdout / stderr.
if grep -Fq "probe" "$LAST_OUT" "$LAST_ERR"; then
    fail "the program's output is captured, not passed through" "stdout: $(cat "$LAST_OUT")" "stderr: $(cat "$LAST_ERR")"
fi
ok "the program's output is captured, not passed through"
assert_eq "$TUID" "$(cat "$OUT/user/uid")" "the program ran with the user's uid"
assert_eq "$TGROUPS" "$(tr ' ' '\n' <"$OUT/user/groups" | sort -n | tr '\n' ' ' | sed 's/ $//')" \
    "the program ran with the user's gid and groups ($TGROUPS)"
assert_eq "HOME LANG LOGNAME PATH USER" "$(cut -d= -f1 "$OUT/user/env" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" \
    "the environment is exactly HOME LANG LOGNAME PATH USER"
assert_eq "$TUSER" "$(sed -n 's/^USER=//p' "$OUT/user/env")" "USER is the user"
assert_eq "$TUSER" "$(sed -n 's/^LOGNAME=//p' "$OUT/user/env")" "LOGNAME is the user"
assert_eq "$(getent passwd "$TUSER" | cut -d: -f6)" "$(sed -n 's/^HOME=//p' "$OUT/user/env")" \
    "HOME is the user's home from the passwd entry"
assert_eq /usr/local/bin:/usr/bin:/bin "$(sed -n 's/^PATH=//p' "$OUT/user/env")" "PATH is the user PATH"
assert_eq "$(realpath "$CACHE/$C")" "$(cat "$OUT/user/cwd")" "the program ran in the content folder"
# ls itself holds one descriptor (3) on the folder it lists; nothing of the agent's is there.
assert_eq "0 1 2 3" "$(sort -n "$OUT/user/fds" | tr '\n' ' ' | sed 's/ $//')" \
    "the program inherited only descriptors 0, 1 and 2"
assert_eq denied "$(cat "$OUT/user/write-new")" "the user cannot create a file in the content folder"
assert_eq denied "$(cat "$OUT/user/modify")" "the user cannot modify a content file"
assert_eq denied "$(cat "$OUT/user/chmod")" "the user cannot make a content file writable"
assert_eq denied "$(cat "$OUT/user/remove")" "the user cannot remove a content file"
assert_no_file "$CACHE/$C/new-file"
assert_same_file "$T/src/data/payload.bin" "$CACHE/$C/data/payload.bin"
assert_exit 0 agent cache verify "$C"

EL=$LOGS/execmgr.log
SID=S-1-22-1-$TUID
assert_log_has "$EL" "Executing program probe.sh under context $SID"
assert_log_has "$EL" "Context $SID is user $TUSER"
line=$(log_find "$EL" "^Running program probe\.sh as user $TUSER \(uid $TUID, gid $TGID, [0-9]+ group\(s\)\)\$")
[[ -n $line ]] || _lib_log_fail "execmgr.log names the user the program runs as" "$EL" \
    "no record 'Running program probe.sh as user $TUSER (uid $TUID, gid $TGID, N group(s))'"
ok "execmgr.log: $line"
assert_log_order "$EL" \
    "Executing program probe.sh under context $SID" \
    "Program output: probe ran as $TUSER" \
    "Program output: probe says this on stderr" \
    "Execution is complete for program probe.sh. The exit code is 0, the execution status is Success"

# --- System: the agent's own user, the same cleared environment with the system PATH
assert_exit 0 agent execute SYS1
assert_eq 0 "$(cat "$OUT/system/uid")" "System runs as the agent's user (root)"
assert_eq "HOME LANG LOGNAME PATH USER" "$(cut -d= -f1 "$OUT/system/env" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" \
    "System: the environment is exactly HOME LANG LOGNAME PATH USER"
assert_eq root "$(sed -n 's/^USER=//p' "$OUT/system/env")" "System: USER is root"
assert_eq /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$(sed -n 's/^PATH=//p' "$OUT/system/env")" \
    "System: PATH is the system PATH"
assert_log_has "$EL" "Program output: probe ran as root"

# --- an unknown user: refused before anything runs
assert_exit 1 agent execute NOUSER
assert_error 0x80070525
assert_no_file "$OUT/nouser"
assert_log_has "$EL" "Program probe.sh of advert NOUSER will not be run: context user:cas-no-such-user: no such user on this machine, error 0x80070525"

# --- the agent itself not root: a user context is refused, nothing runs
if command -v setpriv >/dev/null; then
    NR=$T/nonroot
    mkdir -p "$NR"
    chown "$TUSER:" "$NR"
    write_config --file "$NR/agent.json" cache_dir="\"$NR/cache\"" state_dir="\"$NR/state\"" \
        log_dir="\"$NR/log\""
    as_user()
    {
        setpriv --reuid="$TUID" --regid="$TGID" --init-groups -- "$@"
    }
    assert_exit 0 as_user "$CAS_AGENT" --config "$NR/agent.json" policy apply "$T/policy.json"
    rm -rf "$OUT/user"
    assert_exit 1 as_user "$CAS_AGENT" --config "$NR/agent.json" execute USER1
    assert_error 0x80070005
    assert_no_file "$OUT/user"
    assert_log_has "$NR/log/execmgr.log" "Program probe.sh of advert USER1 will not be run: context user:$TUSER needs the agent to run as root to switch to that user, error 0x80070005"
else
    echo "# setpriv not installed: the non-root agent case is not tested"
fi

assert_cmtrace_logs
done_testing
