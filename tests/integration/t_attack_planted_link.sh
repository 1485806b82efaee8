#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# Attack: a planted link. Before a download, someone who can write where the agent works plants a
# symbolic link (to a folder or a file outside the cache) or a hard link (to a file outside) at
# the exact names the agent will use: the content entry <cache>/C and <cache>/C.sums, the staging
# folder .partial/C, its content folder .partial/C/C and a folder inside it, .partial/C/parts and
# the part file parts/000000.part (cache/cache.c, agent/download.c), and the private folders
# .partial and .locks themselves; hoping the agent writes through the link, or commits a file that
# is also reachable from outside. Defence: paths are opened relative to folders opened with
# O_NOFOLLOW, and what is committed must be a fresh regular file of the entry.
# Asserts, for each: the outside target is untouched (a file: same bytes, inode, mode and mtime;
# a folder: same names and mtime); the download either succeeds with the genuine content
# (the program runs once, the entry equals the source, no file of the entry has a second link) or
# is refused with its code on stderr and in CAS.log (nothing run, no entry); no attacker byte in
# the cache; the previous policy (serial 6) in force byte for byte. Refused plants are removed by
# `cache clean`, after which the content downloads. Works as root and as an ordinary user.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_attack_planted_link"

# shellcheck source=attack_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/attack_lib.sh"

# The same files under several content ids: without this, every id after the first would be
# copied from the cache (dedup) and never be written in staging.
CONFIG_DEFAULTS=(cache_dedup=false)
write_config
make_site_key CEN
make_package "$T/src"
P=data/payload.bin
mkdir -p "$T/dp"
# One content per plant.
declare -A PLANT=(
    [CEN00061.1]="symlink at the entry C -> outside folder"
    [CEN00062.1]="symlink at C.sums -> outside file"
    [CEN00063.1]="hard link at C.sums -> outside file"
    [CEN00064.1]="symlink at .partial/C/C -> outside folder"
    [CEN00065.1]="symlink at .partial/C/parts -> outside folder"
    [CEN00066.1]="symlink at .partial/C/parts/000000.part -> outside file"
    [CEN00067.1]="symlink at .partial/C/C/data -> outside folder"
    [CEN00068.1]="symlink at .partial/C -> outside folder"
    [CEN00069.1]="hard link at .partial/C/parts/000000.part -> outside file"
    [CEN0006A.1]="hard link at .partial/C/C/install.sh -> outside file with the genuine bytes"
    [CEN0006B.1]="symlink at .partial -> outside folder"
    [CEN0006C.1]="symlink at .locks -> outside folder"
)
dp_start "$T/dp"
adverts=""
for c in CEN00002.1 "${!PLANT[@]}"; do
    dp_publish "$T/src" "$T/dp" "$c"
    adverts+="${adverts:+,}$(advert_json id="AD${c%.1}" package="${c%.1}" version=1)"
done
write_policy "$T/policy.json" serial=6 adverts="$adverts"
sign_policy "$PRIV/CEN.key" "$T/policy.json"

echo "# the previous policy: serial 6 applied, ADCEN00002 ran"
assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute ADCEN00002
assert_eq 1 "$(proof_runs ADCEN00002)" "the previous advert ran"
atk_snapshot 6

# The attacker's things outside the cache: a folder with a file in it, a file, and a file with
# the genuine bytes of install.sh (a hard link to it is a "genuine" file someone else can change).
OUT=$T/outside
mkdir -p "$OUT/dir"
printf '%s folder file\n' "$ATK_MARK" >"$OUT/dir/keep"
printf '%s file\n' "$ATK_MARK" >"$OUT/file"
cp "$T/src/install.sh" "$OUT/genuine"
chmod 0644 "$OUT/genuine"

# state_of -- everything a write through a link would change, for each outside thing: a file's
# inode, mode, mtime, size and bytes (not its link count or ctime: removing a planted hard link
# from the cache is no write to the file), a folder's names and mtime.
state_of()
{
    local f
    for f in "$OUT/file" "$OUT/genuine" "$OUT/dir/keep"; do
        printf '%s %s\n' "$(stat -c '%i %a %.9Y %s' "$f")" "$(file_hash "$f")"
    done
    stat -c 'dir %i %a %.9Y' "$OUT/dir"
    (cd "$OUT" && find . | LC_ALL=C sort)
}

# untouched -- the outside things are as they were just after the plant.
untouched()
{
    assert_eq "$OUTSIDE_BEFORE" "$(state_of)" "nothing outside the cache changed (bytes, inode, mode, times, names)"
}

# no_shared_inode -- no file in the cache is also linked from elsewhere.
no_shared_inode()
{
    local shared
    shared=$(find "$CACHE" -type f -links +1 -printf '%P (%n links)\n')
    assert_eq "" "$shared" "no file in the cache has a second link"
}

# planted C -- record the outside state just after the plant.
planted()
{
    echo "# $1: ${PLANT[$1]}"
    OUTSIDE_BEFORE=$(state_of)
}

# succeeded C -- the download went through with the genuine content.
succeeded()
{
    local c=$1 ad="AD${1%.1}"
    assert_exit 0 agent execute "$ad"
    assert_eq 1 "$(proof_runs "$ad")" "the program ran once"
    assert_download_succeeded "$c"
    [[ -d $CACHE/$c && ! -L $CACHE/$c ]] || fail "the entry $c is a real folder" "$(ls -ld "$CACHE/$c")"
    ok "the entry $c is a real folder"
    [[ -f $CACHE/$c.sums && ! -L $CACHE/$c.sums ]] || fail "$c.sums is a regular file" "$(ls -ld "$CACHE/$c.sums")"
    ok "$c.sums is a regular file"
    assert_same_tree "$T/src" "$CACHE/$c"
    SUCCEEDED+=("$c")
    untouched
    no_shared_inode
    atk_no_marker
}

# either C -- where the agent may do either: the download succeeds with the genuine content, or
# it is refused with a code (on stderr and in CAS.log) and nothing runs or is committed. Either
# way nothing outside changed and no file of the cache is linked from elsewhere.
either()
{
    local c=$1 ad="AD${1%.1}" code
    run agent execute "$ad"
    if [[ $LAST_RC -eq 0 ]]; then
        ok "the download of $c succeeded"
        SUCCEEDED+=("$c")
        assert_eq 1 "$(proof_runs "$ad")" "the program ran once"
        assert_download_succeeded "$c"
        assert_same_tree "$T/src" "$CACHE/$c"
    else
        assert_eq 1 "$LAST_RC" "exit 1: cas-agent execute $ad (refused)"
        code=$(sed -n 's/^cas-agent: error \(0x[0-9A-F]\{8\}\): .*/\1/p' "$LAST_ERR" | head -n 1)
        [[ -n $code ]] || fail "stderr names the error code" "stderr: $(head -c 600 "$LAST_ERR")"
        ok "refused with $code: $(head -c 200 "$LAST_ERR")"
        atk_nothing_ran "$ad"
        # Where the refusal is found (the job, or opening the cache), a log says it with the code.
        log_texts "$LOGS/execmgr.log" | grep -Fx "Content $c is not available for program install.sh, error $code" >/dev/null ||
            log_texts "$LOGS/CAS.log" | grep -Fx "Download failed for content $c under context System, error $code" >/dev/null ||
            fail "a log names the refusal of $c with $code" "$(_lib_tail "$LOGS/execmgr.log" 4)"
        ok "a log names the refusal of $c with $code"
        assert_no_file "$CACHE/$c.sums"
    fi
    untouched
    no_shared_inode
    atk_no_marker
}

# refused C CODE DETAIL -- the download is refused with CODE; nothing ran, nothing committed.
refused()
{
    local c=$1 ad="AD${1%.1}" code=$2 detail=$3
    assert_exit 1 agent execute "$ad"
    assert_error "$code"
    grep -E "^cas-agent: error $code: " "$LAST_ERR" | grep -F -- "$detail" >/dev/null ||
        fail "the error says: $detail" "stderr: $(head -c 600 "$LAST_ERR")"
    ok "the error says: $detail"
    atk_nothing_ran "$ad"
    assert_log_has "$LOGS/CAS.log" "Download failed for content $c under context System, error $code"
    assert_log_has "$LOGS/execmgr.log" "Content $c is not available for program install.sh, error $code"
    assert_no_file "$CACHE/$c.sums"
    assert_no_file "$CACHE/$c"
    untouched
    no_shared_inode
    atk_no_marker
}

S=$CACHE/.partial
SUCCEEDED=()

C=CEN00061.1
ln -s "$OUT/dir" "$CACHE/$C"
planted $C
succeeded $C

C=CEN00062.1
ln -s "$OUT/file" "$CACHE/$C.sums"
planted $C
succeeded $C

C=CEN00063.1
ln "$OUT/file" "$CACHE/$C.sums"
planted $C
succeeded $C

C=CEN00064.1
mkdir -p "$S/$C"
ln -s "$OUT/dir" "$S/$C/$C"
planted $C
succeeded $C
# The link is removed and a real folder made where the staging content belongs.
assert_log_has "$LOGS/CAS.log" "Removed $S/$C/$C from the cache: a link where a cache folder belongs"

C=CEN00065.1
mkdir -p "$S/$C"
ln -s "$OUT/dir" "$S/$C/parts"
planted $C
refused $C 0x8007001F "opening staging folder"

C=CEN00066.1
mkdir -p "$S/$C/parts"
ln -s "$OUT/file" "$S/$C/parts/000000.part"
planted $C
refused $C 0x8007007B "creating a partial file for $P"
assert_log_has "$LOGS/CAS.log" \
    "Cannot download content $C: creating a partial file for $P: Too many levels of symbolic links"

C=CEN00067.1
mkdir -p "$S/$C/$C"
ln -s "$OUT/dir" "$S/$C/$C/data"
planted $C
refused $C 0x80070002 "creating the folder of a file"

echo "# after the refusals"
ATK_NEW_ENTRIES=$(for c in "${SUCCEEDED[@]}"; do echo "$c 3 $PKG_SIZE"; done)
atk_previous_in_force CEN00002.1
assert_eq 1 "$(proof_runs ADCEN00002)" "the previous advert did not run again"

echo "# cache clean removes the refused plants; the contents then download"
OUTSIDE_BEFORE=$(state_of)
assert_exit 0 agent cache clean
for C in CEN00065.1 CEN00066.1 CEN00067.1; do
    assert_no_file "$S/$C"
done
untouched
for C in CEN00065.1 CEN00066.1 CEN00067.1; do
    succeeded $C
done

C=CEN00068.1
mkdir -p "$S"
ln -s "$OUT/dir" "$S/$C"
planted $C
either $C

C=CEN00069.1
mkdir -p "$S/$C/parts"
ln "$OUT/file" "$S/$C/parts/000000.part"
planted $C
either $C

C=CEN0006A.1
mkdir -p "$S/$C/$C"
ln "$OUT/genuine" "$S/$C/$C/install.sh"
planted $C
either $C

C=CEN0006B.1
mv "$S" "$T/partial.saved"
ln -s "$OUT/dir" "$S"
planted $C
either $C
[[ -d $S && ! -L $S ]] || fail "the link at .partial was replaced by a real folder" "$(ls -ld "$S")"
ok "the link at .partial was replaced by a real folder"
rm -rf "$S"
mv "$T/partial.saved" "$S"

C=CEN0006C.1
mv "$CACHE/.locks" "$T/locks.saved"
ln -s "$OUT/dir" "$CACHE/.locks"
planted $C
either $C
[[ -d $CACHE/.locks && ! -L $CACHE/.locks ]] ||
    fail "the link at .locks was replaced by a real folder" "$(ls -ld "$CACHE/.locks")"
ok "the link at .locks was replaced by a real folder"
rm -rf "$CACHE/.locks"
mv "$T/locks.saved" "$CACHE/.locks"

echo "# after the attacks"
ATK_NEW_ENTRIES=$(for c in "${SUCCEEDED[@]}"; do echo "$c 3 $PKG_SIZE"; done)
atk_previous_in_force CEN00002.1
assert_exit 0 agent cache verify

assert_cmtrace_logs
done_testing
