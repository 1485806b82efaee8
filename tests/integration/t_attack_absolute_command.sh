#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: make the agent run a program outside the verified content. The attacker wants something
# that no hash covers to run as root: a relative command that climbs out of the content
# ("../outside/evil.sh", "sub/../../x"), an absolute path dressed up to hide where it leads
# ("/a/../b", "//a", "/a/./b", a control character), a symbolic link (an absolute command that is
# a link, a link at the DP, a link planted in the cache entry: a file or a folder pointing
# outside), or the content itself tampered while the program is an absolute one.
# The rule (docs/formats.md `.program.command`, common/policy.c parse_command and
# valid_absolute_command, agent/exec_advert.c): a relative command is a file of the content under
# the package path rules; an absolute command is a normalised absolute path; anything else
# refuses the whole policy (0x8007000D). An absolute command must name a regular file, not a link
# (0x80070002 at run time). Either way the content is downloaded and verified first (0x80091007
# otherwise; a link in a cache entry 0x8007007B), the program starts in the content folder, and
# nothing runs if that fails.
# Asserts: each refused policy exits 1 with 0x8007000D, the detail and PolicyAgent.log's type-3
# line naming the field, nothing of the refused policy ran, serial 5 byte for byte; at run time
# the code, execmgr.log's "not available" / "will not be run" lines, the outside program never
# ran, nothing from the attacker in the cache (no entry for tampered content, no partial files);
# the allowed absolute command runs only after CAS.log's hash verification, in the content folder;
# a second advertisement of the same content with a relative command runs too.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"
echo "# t_attack_absolute_command"

MARK="attacker-marker-abscmd-$RANDOM$RANDOM"
make_site_key CEN
make_package "$T/good" "the site's current package"
make_package "$T/b" "the package run by a program of the machine"
mkdir -p "$T/dp" "$T/mp" "$T/outside"
dp_publish "$T/good" "$T/dp" CEN000A1.1
GOOD_HASH=$PKG_HASH GOOD_SIZE=$PKG_SIZE
dp_publish "$T/b" "$T/dp" CEN000B1.1
B_HASH=$PKG_HASH B_SIZE=$PKG_SIZE
dp_start "$T/dp"
DP=$DP_URL
dp_start "$T/mp"
MP=$DP_URL
POLLOG=$LOGS/PolicyAgent.log
EXLOG=$LOGS/execmgr.log
INCOMING=$STATE/policy/incoming.json
write_config management_point="\"$MP/policy.json\"" site='"CEN"'

# Outside the content: a program of the machine the site may name (tool.sh), which appends
# "ran TAG cwd=..." to $PROOF/ran-TAG like install.sh; the attacker's program (evil.sh), which
# also writes $PROOF/EVIL-RAN whatever it is called for; link.sh, a symbolic link to tool.sh.
# shellcheck disable=SC2016 # $1, $2 and $(pwd -P) belong to the scripts
printf '#!/bin/sh\n# a program of the machine\nprintf "ran %%s cwd=%%s\\n" "$2" "$(pwd -P)" >>"$1/ran-$2"\n' >"$T/outside/tool.sh"
# shellcheck disable=SC2016
printf '#!/bin/sh\n# %s\necho "$2" >>"$1/EVIL-RAN"\nprintf "ran %%s cwd=%%s\\n" "$2" "$(pwd -P)" >>"$1/ran-$2"\n' "$MARK" >"$T/outside/evil.sh"
chmod 0755 "$T/outside/tool.sh" "$T/outside/evil.sh"
ln -s tool.sh "$T/outside/link.sh"
EVIL=$T/outside/evil.sh
TOOL=$T/outside/tool.sh

# b_ad ID COMMAND [keys...] -- an advertisement of CEN000B1.1 with this command.
b_ad()
{
    local id=$1 cmd=$2
    shift 2
    advert_json id="$id" package=CEN000B1 hash="$B_HASH" size="$B_SIZE" locations="$DP" command="$cmd" "$@"
}

snapshot()
{
    PREV=$1
    rm -rf "$T/before"
    mkdir -p "$T/before"
    cp "$STATE/policy/CEN.json" "$STATE/policy/CEN.json.sig" "$STATE/policy/CEN.state.json" "$T/before/"
    agent cache list --json >"$T/before/cache.json"
}

# no_attacker_bytes WHAT -- the attacker's program's text is nowhere in the cache or state.
no_attacker_bytes()
{
    local hits
    hits=$(grep -rlF -- "$MARK" "$CACHE" "$STATE" 2>/dev/null || true)
    [[ -z $hits ]] || fail "no attacker bytes in the cache or state folder ($1)" "found in: $(_lib_show "$hits")"
    ok "no attacker bytes in the cache or state folder ($1)"
}

# policy_in_force WHAT -- the stored policy is the snapshot's, byte for byte, and `policy show`
# says its serial.
policy_in_force()
{
    local f
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/before/$f" "$STATE/policy/$f"
    done
    assert_exit 0 agent policy show --json
    assert_eq "CEN $PREV" "$(jq -r '"\(.site) \(.serial)"' "$LAST_OUT")" "policy show: serial $PREV in force ($1)"
}

echo "# the previous policy: serial 5, its program (install.sh, relative) ran"
write_policy "$T/p5.json" serial=5 adverts="$(good_ad)"
sign_policy "$PRIV/CEN.key" "$T/p5.json"
assert_exit 0 agent policy apply "$T/p5.json"
assert_exit 0 agent execute CEN2A001
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program ran from the good package"
snapshot 5

# ---------------------------------------------------------------------------------------------
echo "# (1) commands that are neither a safe path in the content nor a normalised absolute path"
# ---------------------------------------------------------------------------------------------
REL="advertisements[0].program.command: not a safe path inside the content folder"
ABS_TAIL="is not normalised (no '//', '.' or '..' segments, trailing '/' or control characters)"
# refused_cmd COMMAND DETAIL [via] -- a policy (serial 6, signed by the site) whose mandatory
# advert runs COMMAND is refused with 0x8007000D; DETAIL is the end of the log record's text.
n=0
refused_cmd()
{
    local cmd=$1 detail=$2 p
    n=$((n + 1))
    p=$T/bad$n.json
    write_policy "$p" serial=6 adverts="$(b_ad CEN2E666 "$cmd" mandatory=true args="\"$PROOF\", \"CEN2E666\"")" note="$MARK"
    sign_policy "$PRIV/CEN.key" "$p"
    assert_exit 1 agent policy apply "$p"
    assert_error 0x8007000D
    assert_log_has "$POLLOG" "Policy $p refused: $detail, error 0x8007000D"
    assert_log_type "$POLLOG" "Policy $p refused: $detail, error 0x8007000D" 3
    assert_eq 0 "$(proof_runs CEN2E666)" "nothing of the refused policy ran ($cmd)"
    for f in CEN.json CEN.json.sig CEN.state.json; do
        cmp -s "$T/before/$f" "$STATE/policy/$f" || fail "$f unchanged after the refusal of $cmd"
    done
    ok "serial 5's files unchanged ($cmd)"
}
refused_cmd "../outside/evil.sh" "$REL: '.' or '..' segment in path '../outside/evil.sh'"
refused_cmd "sub/../../outside/evil.sh" "$REL: '.' or '..' segment in path 'sub/../../outside/evil.sh'"
refused_cmd "./install.sh" "$REL: '.' or '..' segment in path './install.sh'"
refused_cmd "install.sh/" "$REL: empty segment in path 'install.sh/'"
refused_cmd "data//payload.bin" "$REL: empty segment in path 'data//payload.bin'"
refused_cmd "$T/outside/../outside/evil.sh" "advertisements[0].program.command: absolute path '$T/outside/../outside/evil.sh' $ABS_TAIL"
refused_cmd "/$EVIL" "advertisements[0].program.command: absolute path '/$EVIL' $ABS_TAIL"
refused_cmd "$T/outside/./evil.sh" "advertisements[0].program.command: absolute path '$T/outside/./evil.sh' $ABS_TAIL"
refused_cmd "$EVIL/" "advertisements[0].program.command: absolute path '$EVIL/' $ABS_TAIL"
refused_cmd "/" "advertisements[0].program.command: absolute path '/' $ABS_TAIL"
# A control character (JSON \u0007) in an absolute path; the log record shows it as '?'.
refused_cmd "$EVIL\\u0007" "advertisements[0].program.command: absolute path '$EVIL?' $ABS_TAIL"

echo "# ... the same at the management point (policy fetch and the service)"
cp "$T/bad1.json" "$T/mp/policy.json"
cp "$T/bad1.json.sig" "$T/mp/policy.json.sig"
assert_exit 1 agent policy fetch
assert_error 0x8007000D
assert_log_has "$POLLOG" "Policy $INCOMING refused: $REL: '.' or '..' segment in path '../outside/evil.sh', error 0x8007000D"
assert_exit 1 agent run --once
assert_error 0x8007000D
assert_eq 2 "$(log_count "$POLLOG" "Policy $INCOMING refused: $REL: '.' or '..' segment in path '../outside/evil.sh', error 0x8007000D")" \
    "PolicyAgent.log has the service poll's refusal"

echo "# after all of (1): nothing ran, nothing cached, serial 5 in force"
assert_exit 1 agent execute CEN2E666
assert_error 0x80070490
assert_eq 0 "$(proof_runs CEN2E666)" "the attacker's advertisement never ran"
assert_no_file "$PROOF/EVIL-RAN"
assert_eq 1 "$(proof_runs CEN2A001)" "the applied policy's program did not run again"
assert_not_cached CEN000B1.1
assert_eq "" "$(dp_requests "$DP" | grep -F CEN000B1 || true)" "the DP was never asked for CEN000B1.1"
no_attacker_bytes "refused commands"
agent cache list --json >"$T/after-cache.json"
assert_same_file "$T/before/cache.json" "$T/after-cache.json"
assert_no_file "$INCOMING"
policy_in_force "refused commands"

# ---------------------------------------------------------------------------------------------
echo "# (2) an allowed absolute command runs only from verified content"
# ---------------------------------------------------------------------------------------------
write_policy "$T/p6.json" serial=6 adverts="$(good_ad), $(b_ad CEN2B001 "$TOOL"), $(b_ad CEN2B002 "$T/outside/link.sh"), $(b_ad CEN2B003 install.sh)"
sign_policy "$PRIV/CEN.key" "$T/p6.json"
assert_exit 0 agent policy apply "$T/p6.json"
assert_log_has "$POLLOG" "Advertisement CEN2B001: content CEN000B1.1, program $TOOL, context System, available, rerun always"
snapshot 6

echo "# (2a) the content tampered at the DP (one byte): the absolute program does not run"
flip_byte "$T/dp/CEN000B1.1/data/payload.bin" 100
assert_exit 1 agent execute CEN2B001
assert_error 0x80091007
assert_eq 0 "$(proof_runs CEN2B001)" "$TOOL did not run"
assert_not_available CEN000B1.1 CEN2B001 0x80091007 "$TOOL"
assert_log_lacks "$EXLOG" "Executing program $TOOL under context System"
assert_not_cached CEN000B1.1
flip_byte "$T/dp/CEN000B1.1/data/payload.bin" 100

echo "# (2b) a symbolic link at the DP, to the attacker's program: its bytes fail the hash"
mv "$T/dp/CEN000B1.1/install.sh" "$T/install.sh.saved"
ln -s "$EVIL" "$T/dp/CEN000B1.1/install.sh"
assert_exit 1 agent execute CEN2B001
assert_error 0x80091007
assert_eq 0 "$(proof_runs CEN2B001)" "$TOOL did not run"
assert_not_cached CEN000B1.1
no_attacker_bytes "a link at the DP"
assert_no_file "$PROOF/EVIL-RAN"
rm "$T/dp/CEN000B1.1/install.sh"
mv "$T/install.sh.saved" "$T/dp/CEN000B1.1/install.sh"
policy_in_force "content refused"

echo "# (2c) the content verifies: the absolute program runs, after the verification, in the content"
assert_exit 0 agent execute CEN2B001
assert_eq 1 "$(proof_runs CEN2B001)" "$TOOL ran once"
assert_eq "ran CEN2B001 cwd=$CACHE/CEN000B1.1" "$(cat "$PROOF/ran-CEN2B001")" "it ran in the content folder"
assert_download_succeeded CEN000B1.1
assert_log_order "$EXLOG" "Requesting content from CAS for package CEN000B1 version 1" \
    "Content CEN000B1.1 is available for program $TOOL" "Executing program $TOOL under context System"
# The verification (CAS.log) is logged before the start (execmgr.log): compare the records' times.
ver=$(grep -F "<![LOG[Hash verification succeeded for content CEN000B1.1 downloaded under context System]LOG]!>" "$LOGS/CAS.log" | tail -1 | sed 's/.*time="\([^"]*\)" date="\([^"]*\)".*/\2 \1/')
run_at=$(grep -F "<![LOG[Executing program $TOOL under context System]LOG]!>" "$EXLOG" | tail -1 | sed 's/.*time="\([^"]*\)" date="\([^"]*\)".*/\2 \1/')
[[ -n $ver && -n $run_at && ! $run_at < $ver ]] || fail "the content was verified before the program started" "verified: $ver" "started: $run_at"
ok "the content was verified ($ver) before the program started ($run_at)"

echo "# (2d) an absolute command that is a symbolic link is not run"
assert_exit 1 agent execute CEN2B002
assert_error 0x80070002
assert_stderr_has "program $T/outside/link.sh is not a file on this machine"
line="Program $T/outside/link.sh of advert CEN2B002 will not be run: program $T/outside/link.sh is not a file on this machine, error 0x80070002"
assert_log_has "$EXLOG" "$line"
assert_log_type "$EXLOG" "$line" 3
assert_eq 0 "$(proof_runs CEN2B002)" "the link's target did not run"
assert_eq 1 "$(proof_runs CEN2B001)" "$TOOL did not run again"

# ---------------------------------------------------------------------------------------------
echo "# (3) a symbolic link planted in a cache entry, pointing outside the content"
# ---------------------------------------------------------------------------------------------
ENTRY=$CACHE/CEN000A1.1
chmod u+w "$ENTRY"
mv "$ENTRY/install.sh" "$T/cached-install.sh"
ln -s "$EVIL" "$ENTRY/install.sh"
assert_exit 1 agent execute CEN2A001
assert_error 0x8007007B
assert_stderr_has "package entry 'install.sh' is a symbolic link"
assert_not_available CEN000A1.1 CEN2A001 0x8007007B
assert_no_file "$PROOF/EVIL-RAN"
assert_eq 1 "$(proof_runs CEN2A001)" "install.sh did not run again"
rm "$ENTRY/install.sh"
mv "$T/cached-install.sh" "$ENTRY/install.sh"
echo "# ... a folder of the entry replaced by a link to the outside folder"
mv "$ENTRY/docs" "$T/cached-docs"
ln -s "$T/outside" "$ENTRY/docs"
assert_exit 1 agent execute CEN2A001
assert_error 0x8007007B
assert_stderr_has "package entry 'docs' is a symbolic link"
assert_eq 1 "$(proof_runs CEN2A001)" "install.sh did not run from an entry with a link in it"
assert_no_file "$PROOF/EVIL-RAN"
assert_eq "" "$(find "$PROOF" -name 'ran-*' -newer "$T/before/cache.json" ! -name ran-CEN2B001 | head -3)" \
    "no program wrote a proof since the snapshot but $TOOL's"
rm "$ENTRY/docs"
mv "$T/cached-docs" "$ENTRY/docs"
chmod u-w "$ENTRY"
policy_in_force "links in the cache entry"
assert_exit 0 agent execute CEN2A001
assert_eq 2 "$(proof_runs CEN2A001)" "with the entry restored, install.sh runs again"

# ---------------------------------------------------------------------------------------------
echo "# (4) no over-refusal: a relative command of content first fetched for an absolute one"
# ---------------------------------------------------------------------------------------------
# CEN000B1.1 was downloaded for CEN2B001 ($TOOL). CEN2B003 runs install.sh of the same content:
# the README says the command of the content is made executable in the cache.
assert_exit 0 agent execute CEN2B003
assert_eq 1 "$(proof_runs CEN2B003)" "install.sh of CEN000B1.1 ran for CEN2B003"

echo "# (5) on a fresh agent, the link refusal's detail is the reason, not a history file's"
mkdir -p "$T/fresh"
CFG=$T/agent-fresh.json
write_config --file "$CFG" site='"CEN"' state_dir="\"$T/fresh/state\"" cache_dir="\"$T/fresh/cache\"" log_dir="\"$T/fresh/log\""
assert_exit 0 agent policy apply "$T/p6.json"
assert_exit 1 agent execute CEN2B002
assert_error 0x80070002
assert_stderr_has "program $T/outside/link.sh is not a file on this machine"
assert_eq 0 "$(proof_runs CEN2B002)" "the link's target did not run"

assert_cmtrace_logs
done_testing
