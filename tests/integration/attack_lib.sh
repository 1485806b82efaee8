#!/bin/bash
# shellcheck disable=SC2034 # ATK_* are read by the tests that source this
# What the attack tests (tests/integration/t_attack_*.sh, docs/attacks.md) share. Sourced after
# lib.sh, whose T, STATE, CACHE, PROOF and assertions it uses. The content-side tests use the atk_*
# checks: nothing ran, nothing of the attacker in the cache, the previous policy in force (each
# test asserts its own log line). The policy-side tests use the helpers at the end.
# A string only the attacker's bytes carry: found anywhere in the cache, they got in.
ATK_MARK="ATTACKER-MARKER-$$-$RANDOM"

# atk_evil_package DIR -- the attacker's package: every file carries $ATK_MARK, and install.sh
# writes $PROOF/ATTACKER-RAN as well as the usual ran-<advert> line.
atk_evil_package()
{
    mkdir -p "$1/data" "$1/docs"
    # shellcheck disable=SC2016 # the script's own $1/$2
    printf '#!/bin/sh\n# %s\necho pwned >"$1/ATTACKER-RAN"\nprintf "ran %%s\\n" "$2" >>"$1/ran-$2"\n' \
        "$ATK_MARK" >"$1/install.sh"
    { printf '%s\n' "$ATK_MARK"; head -c 3000 /dev/urandom; } >"$1/data/payload.bin"
    printf 'read me (%s)\n' "$ATK_MARK" >"$1/docs/read me.txt"
}

# atk_snapshot SERIAL -- before the attack: keep the stored policy files and the cache listing.
atk_snapshot()
{
    ATK_SERIAL=$1
    rm -rf "$T/prev"
    mkdir -p "$T/prev"
    cp "$STATE/policy/CEN.json" "$STATE/policy/CEN.json.sig" "$STATE/policy/CEN.state.json" "$T/prev/"
    assert_exit 0 agent cache list
    awk 'NR > 1 { print $1, $2, $3 }' "$LAST_OUT" >"$T/prev/cache.list"
    ok "previous state recorded: serial $ATK_SERIAL, cache: $(cut -d' ' -f1 "$T/prev/cache.list" | tr '\n' ' ')"
}

# atk_previous_in_force [CONTENT...] -- the policy stored before the attack is in force byte for
# byte and `policy show` says its serial; `cache list` shows the same entries (id, files, bytes),
# plus the lines of ATK_NEW_ENTRIES (where the good side won); each CONTENT (the previous good
# content) still verifies from disk.
ATK_NEW_ENTRIES=""
atk_previous_in_force()
{
    local f c want
    for f in CEN.json CEN.json.sig CEN.state.json; do
        assert_same_file "$T/prev/$f" "$STATE/policy/$f"
    done
    assert_exit 0 agent policy show --json
    grep -Eq "^\{\"site\":\"CEN\",\"serial\":${ATK_SERIAL}[,}]" "$LAST_OUT" ||
        fail "policy show --json shows CEN serial $ATK_SERIAL" "stdout: $(head -c 600 "$LAST_OUT")"
    ok "policy show --json shows CEN serial $ATK_SERIAL"
    assert_exit 0 agent cache list
    want=$({
        cat "$T/prev/cache.list"
        [[ -z $ATK_NEW_ENTRIES ]] || printf '%s\n' "$ATK_NEW_ENTRIES"
    } | LC_ALL=C sort)
    assert_eq "$want" "$(awk 'NR > 1 { print $1, $2, $3 }' "$LAST_OUT")" \
        "cache list shows the entries it showed before the attack${ATK_NEW_ENTRIES:+, and the ones the good side won}"
    for c in "$@"; do
        assert_exit 0 agent cache verify "$c"
    done
}

# atk_no_marker [MARKER] -- no file anywhere under the cache folder (entries, .partial staging,
# index, locks) holds the attacker's marker.
# shellcheck disable=SC2120 # most tests use the default marker
atk_no_marker()
{
    local m=${1:-$ATK_MARK} hits
    hits=$(grep -rlaF -- "$m" "$CACHE" 2>/dev/null || true)
    assert_eq "" "$hits" "no file under the cache folder (staging included) holds the attacker's marker"
}

# atk_nothing_ran ADVERT -- the attacked advert's program did not run, nor the attacker's.
atk_nothing_ran()
{
    assert_eq 0 "$(proof_runs "$1")" "the program of $1 did not run"
    assert_no_file "$PROOF/ATTACKER-RAN"
}

# ---- helpers of the policy-side tests ----

# fresh_etag FILE -- give FILE a modification time no earlier answer had (far ahead of now), so
# nginx's ETag (mtime and size) changes without waiting for the next second.
ETAG_CLOCK=$(($(date +%s) + 100000))
fresh_etag()
{
    ETAG_CLOCK=$((ETAG_CLOCK + 1))
    touch -d "@$ETAG_CLOCK" "$1"
}

# good_ad -- the advert of the applied (genuine) policy; GOOD_HASH, GOOD_SIZE and DP are the test's.
good_ad() { advert_json id=CEN2A001 package=CEN000A1 hash="$GOOD_HASH" size="$GOOD_SIZE" locations="$DP"; }
# key_id_of PEM -- a key's id as the agent logs it (first 16 hex digits of SHA-256 over its DER).
key_id_of() { openssl pkey -pubin -in "$1" -outform DER | sha256sum | cut -c1-16 | tr 'a-f' 'A-F'; }
# status_of PATH -- status and body bytes of the management point's last answer for PATH.
status_of() { awk -v p="$DP_PREFIX/$1" '$7 == p { s = $9 " " $10 } END { print s }' "$MPLOG"; }
