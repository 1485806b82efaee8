#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The site's daily policy work with cas-site: `policy create`, `add-advert`, `remove-advert` and
# `sign`, end to end with the agent and nginx as the DP. Each document cas-site writes is applied
# by the agent (the advertisements it adds run, the ones it removes are gone); every refusal exits
# 1 with a named error and leaves the policy file byte for byte as it was; a policy created by
# cas-site and signed with the openssl CLI is accepted too.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_site_policy"

write_config
SITE=$T/site
DPDIR=$T/dp
P=$T/pub/policy.json
mkdir -p "$SITE" "$DPDIR" "$T/pub" "$T/keep"

# site_error CODE -- the last command's stderr has the line "cas-site: error CODE: <detail>".
site_error()
{
    grep -Eq "^cas-site: error $1: .+" "$LAST_ERR" ||
        fail "stderr names error $1" "expected a line 'cas-site: error $1: <detail>'" \
            "stderr was: $(head -c 2000 "$LAST_ERR")"
    ok "stderr names error $1"
}

# field NAME -- a line "NAME: value" of the last command's summary on stdout.
field()
{
    sed -n "s/^$1: *//p" "$LAST_OUT"
}

# refused CODE TEXT FILE CMD... -- CMD exits 1 naming CODE and TEXT, FILE (and FILE.sig if any)
# unchanged byte for byte, nothing left beside it.
refused()
{
    local code=$1 text=$2 file=$3
    shift 3
    local before
    before=$(ls -a "$(dirname "$file")")
    cp "$file" "$T/keep/before.json"
    [[ ! -e $file.sig ]] || cp "$file.sig" "$T/keep/before.sig"
    assert_exit 1 "$@"
    site_error "$code"
    assert_stderr_has "$text"
    assert_same_file "$T/keep/before.json" "$file"
    [[ ! -e $file.sig ]] || assert_same_file "$T/keep/before.sig" "$file.sig"
    assert_eq "$before" "$(ls -a "$(dirname "$file")")" "no file left beside $(_lib_show "$file")"
}

# ---- the site: key, two packages on the DP folder, nginx serving it ----
assert_exit 0 "$CAS_SITE" key generate --site CEN --out "$SITE"
cp "$SITE/CEN.pem" "$KEYS/CEN.pem"
make_package "$T/src1" "package one"
make_package "$T/src2" "package two"
assert_exit 0 "$CAS_SITE" package build --source "$T/src1" --package CEN00002 --version 1 \
    --dp "$DPDIR" --print-size
H1=$(sed -n 1p "$LAST_OUT")
S1=$(sed -n 2p "$LAST_OUT")
assert_exit 0 "$CAS_SITE" package build --source "$T/src2" --package CEN00003 --version 1 \
    --dp "$DPDIR" --print-size
H2=$(sed -n 1p "$LAST_OUT")
S2=$(sed -n 2p "$LAST_OUT")
dp_start "$DPDIR"

# ---- create, two add-advert, sign ----
assert_exit 0 "$CAS_SITE" policy create --site CEN --out "$P" --expires-days 2
assert_eq 1 "$(field serial)" "a new policy has serial 1"
assert_eq 0 "$(field advertisements)" "a new policy has no advertisements"
now=$(date -u +%s)
issued=$(date -u -d "$(field issued)" +%s)
expires=$(date -u -d "$(field expires)" +%s)
((issued >= now - 5 && issued <= now)) || fail "issued is now" "issued $(field issued), now $now"
assert_eq $((2 * 86400)) $((expires - issued)) "--expires-days 2: expires 2 days after issued"
grep -Eq '^  "issued": "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",$' "$P" ||
    fail "issued is written as RFC 3339 UTC" "$(cat "$P")"
ok "issued is written as RFC 3339 UTC with Z"

assert_exit 0 "$CAS_SITE" policy add-advert "$P" --id CEN20001 --content CEN00002.1 \
    --dp "$DPDIR" --location "$DP_URL" --command install.sh --arg "$PROOF" --arg CEN20001 \
    --rerun always --max-run-minutes 5
assert_eq 2 "$(field serial)" "add-advert raises the serial to 2"
assert_stderr_has "Added advertisement CEN20001: CEN00002.1, 3 files, $S1 bytes, sha256 $(upper "$H1")"
assert_exit 0 "$CAS_SITE" policy add-advert "$P" --id CEN20002 --content CEN00003.1 \
    --dp "$DPDIR" --location "$(dp_url_dead)" --location "$DP_URL" --command install.sh \
    --arg "$PROOF" --arg CEN20002 --mandatory --success-code 0 --success-code 7
assert_eq 3 "$(field serial)" "the second add-advert raises the serial to 3"
assert_eq 2 "$(field advertisements)" "two advertisements"
# The hash and size in the policy are the coreutils one-liner's, not just cas-site's own.
grep -Fq "\"value\": \"$(package_hash "$T/src1")\"" "$P" || fail "CEN20001's hash" "$(cat "$P")"
grep -Fq "\"size\": $S1," "$P" || fail "CEN20001's size" "$(cat "$P")"
grep -Fq "\"value\": \"$(package_hash "$T/src2")\"" "$P" || fail "CEN20002's hash" "$(cat "$P")"
grep -Fq "\"size\": $S2," "$P" || fail "CEN20002's size" "$(cat "$P")"
ok "the advertisements carry the coreutils package hashes and the sizes of the files"

assert_exit 0 "$CAS_SITE" policy sign --key "$SITE/CEN.key" "$P"
assert_exit 0 agent policy apply "$P"
assert_exit 0 agent policy show
assert_stdout_has "Site CEN, serial 3,"
assert_stdout_has "CEN20001  CEN00002.1  available"
assert_stdout_has "CEN20002  CEN00003.1  mandatory"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "CEN20001's program ran"
assert_download_succeeded CEN00002.1
assert_same_tree "$T/src1" "$CACHE/CEN00002.1"

# ---- refusals: exit 1, a named error, the policy and its signature unchanged ----
add=(policy add-advert "$P" --dp "$DPDIR" --location "$DP_URL" --command install.sh)
refused 0x80070002 "content CEN00002.7 is not on the DP folder" "$P" \
    "$CAS_SITE" "${add[@]}" --id CEN20003 --content CEN00002.7
refused 0x80070057 "advertisement 'CEN20001' is already in" "$P" \
    "$CAS_SITE" "${add[@]}" --id CEN20001 --content CEN00002.1
refused 0x80070057 "--rerun 'sometimes': expected never, if_failed or always" "$P" \
    "$CAS_SITE" "${add[@]}" --id CEN20003 --content CEN00002.1 --rerun sometimes
refused 0x800B0101 "is not after now" "$P" \
    "$CAS_SITE" "${add[@]}" --id CEN20003 --content CEN00002.1 --expires 2020-01-01T00:00:00Z
refused 0xA0CA0001 "--serial 3 is not higher than the serial of" "$P" \
    "$CAS_SITE" "${add[@]}" --id CEN20003 --content CEN00002.1 --serial 3
refused 0x80070002 "--command 'setup.sh' is not a file of CEN00002.1" "$P" \
    "$CAS_SITE" policy add-advert "$P" --dp "$DPDIR" --location "$DP_URL" --command setup.sh \
    --id CEN20003 --content CEN00002.1
# What only the agent's validator knows is refused through it, naming the field.
refused 0x8007000D "advertisements[2].program.context" "$P" \
    "$CAS_SITE" "${add[@]}" --id CEN20003 --content CEN00002.1 --context Administrator
refused 0x8007000D "advertisements[2].id" "$P" \
    "$CAS_SITE" "${add[@]}" --id "../evil" --content CEN00002.1
refused 0x80070490 "has no advertisement 'CEN29999'" "$P" \
    "$CAS_SITE" policy remove-advert "$P" --id CEN20001 --id CEN29999
# A damaged DP copy: a changed file, then a missing one.
cp -R "$DPDIR" "$T/dp-bad"
flip_byte "$T/dp-bad/CEN00002.1/data/payload.bin" 10
refused 0x80091007 "data/payload.bin: sha256" "$P" \
    "$CAS_SITE" "${add[@]:0:3}" --dp "$T/dp-bad" --location "$DP_URL" --command install.sh \
    --id CEN20003 --content CEN00002.1
rm "$T/dp-bad/CEN00002.1/data/payload.bin"
refused 0x80070002 "data/payload.bin: listed in CEN00002.1.sums but missing on the DP" "$P" \
    "$CAS_SITE" "${add[@]:0:3}" --dp "$T/dp-bad" --location "$DP_URL" --command install.sh \
    --id CEN20003 --content CEN00002.1 --no-verify
# create: a serial not higher than --last's, an expiry in the past, an existing file.
refused 0xA0CA0001 "--serial 3 is not higher than the serial of --last" "$P" \
    "$CAS_SITE" policy create --last "$P" --out "$P" --serial 3
assert_exit 1 "$CAS_SITE" policy create --last "$P" --out "$T/next.json" --serial 2
site_error 0xA0CA0001
assert_no_file "$T/next.json"
assert_exit 1 "$CAS_SITE" policy create --site CEN --out "$T/next.json" \
    --expires 2020-01-01T00:00:00Z
site_error 0x800B0101
assert_no_file "$T/next.json"
refused 0x80070057 "already exists" "$P" "$CAS_SITE" policy create --site CEN --out "$P"
# An edit keeps the expiry: once it has passed, the edit says to give a new one.
assert_exit 0 "$CAS_SITE" policy create --site CEN --out "$T/pub/short.json" --expires-days 0.00002
sleep 2
refused 0x800B0101 "and an edit keeps its expiry: give a new --expires or --expires-days" \
    "$T/pub/short.json" "$CAS_SITE" "${add[@]:0:2}" "$T/pub/short.json" "${add[@]:3}" \
    --id CEN20003 --content CEN00002.1
assert_exit 0 "$CAS_SITE" "${add[@]:0:2}" "$T/pub/short.json" "${add[@]:3}" --id CEN20003 \
    --content CEN00002.1 --expires-days 1
assert_eq 2 "$(field serial)" "with --expires-days the edit is accepted"
rm "$T/pub/short.json"
# sign: an expired policy is refused like a malformed one.
write_policy "$T/expired.json" serial=9 issued="$(utc_time '-2 days')" expires="$(utc_time '-1 day')" \
    adverts="$(advert_json hash="$H1" size="$S1")"
assert_exit 1 "$CAS_SITE" policy sign --key "$SITE/CEN.key" "$T/expired.json"
site_error 0x800B0101
assert_no_file "$T/expired.json.sig"
# After all of that, the agent still takes the policy as it was.
assert_exit 0 agent policy show
assert_stdout_has "Site CEN, serial 3,"

# ---- remove-advert: a higher serial; until signed again, the agent refuses it ----
assert_exit 0 "$CAS_SITE" policy remove-advert "$P" --id CEN20002
assert_eq 4 "$(field serial)" "remove-advert raises the serial to 4"
assert_eq 1 "$(field advertisements)" "one advertisement left"
assert_stderr_has "is the signature of the previous document"
assert_exit 1 agent policy apply "$P"
assert_error 0x80090006
assert_exit 0 "$CAS_SITE" policy sign --key "$SITE/CEN.key" "$P"
assert_exit 0 agent policy apply "$P"
assert_exit 0 agent policy show
assert_stdout_has "Site CEN, serial 4,"
grep -Fq CEN20002 "$LAST_OUT" && fail "CEN20002 is gone from policy show" "$(cat "$LAST_OUT")"
ok "CEN20002 is gone from policy show"
assert_exit 1 agent execute CEN20002
assert_error 0x80070490
assert_eq 0 "$(proof_runs CEN20002)" "the removed advertisement's program never ran"

# ---- create --last: serial + 1, advertisements and the validity period carried over ----
old_len=$(($(date -u -d "$(sed -n 's/^  "expires": "\(.*\)",$/\1/p' "$P")" +%s) - \
    $(date -u -d "$(sed -n 's/^  "issued": "\(.*\)",$/\1/p' "$P")" +%s)))
assert_exit 0 "$CAS_SITE" policy create --last "$P" --out "$T/next.json"
assert_eq 5 "$(field serial)" "create --last gives the last serial + 1"
assert_eq 1 "$(field advertisements)" "create --last keeps the advertisements"
assert_eq "$old_len" $(($(date -u -d "$(field expires)" +%s) - $(date -u -d "$(field issued)" +%s))) \
    "create --last keeps the length of the validity period"
# Interoperability: signed with the openssl CLI instead of cas-site.
sign_policy "$SITE/CEN.key" "$T/next.json"
assert_exit 0 agent policy apply "$T/next.json"
assert_exit 0 agent policy show
assert_stdout_has "Site CEN, serial 5,"
assert_stdout_has "CEN20001  CEN00002.1"
assert_exit 0 agent execute CEN20001
assert_eq 2 "$(proof_runs CEN20001)" "CEN20001 ran again (rerun always) under the openssl-signed policy"

# Renewing in place with --empty and --key: one step, signed, no advertisements.
assert_exit 0 "$CAS_SITE" policy create --last "$T/next.json" --out "$T/next.json" --empty \
    --no-expires --key "$SITE/CEN.key"
assert_eq 6 "$(field serial)" "renewed in place: serial 6"
assert_eq 0 "$(field advertisements)" "--empty drops the advertisements"
assert_eq never "$(field expires)" "--no-expires"
assert_file "$T/next.json.sig"
assert_exit 0 agent policy apply "$T/next.json"
assert_exit 0 agent policy show
assert_stdout_has "Site CEN, serial 6,"
assert_exit 1 agent execute CEN20001
assert_error 0x80070490

# ---- an edit keeps what cas-site does not know about ----
write_policy "$T/hand.json" serial=40 adverts="$(advert_json id=CEN20009 package=CEN00003 \
    version=1 hash="$H2" size="$S2")"
assert_exit 0 "$CAS_SITE" policy add-advert "$T/hand.json" --id CEN20010 --content CEN00002.1 \
    --dp "$DPDIR" --location "$DP_URL" --command install.sh --arg "$PROOF" --arg CEN20010 \
    --serial 50 --key "$SITE/CEN.key"
assert_eq 50 "$(field serial)" "--serial sets a higher serial"
grep -Fq '"note": "signed by the integration tests"' "$T/hand.json" ||
    fail "an unknown field survives the edit" "$(cat "$T/hand.json")"
ok "an unknown field survives the edit"
assert_exit 0 agent policy apply "$T/hand.json"
assert_exit 0 agent execute CEN20009
assert_eq 1 "$(proof_runs CEN20009)" "the hand-written advertisement still runs"
assert_exit 0 agent execute CEN20010
assert_eq 1 "$(proof_runs CEN20010)" "the added advertisement runs"

# ---- usage errors: exit 2, nothing written ----
cp "$P" "$T/before.json"
for args in "policy" "policy frobnicate" "policy create --out $T/u.json" \
    "policy create --site CEN" "policy add-advert $P --content CEN00002.1 --dp $DPDIR --location $DP_URL --command install.sh" \
    "policy add-advert $P --id X --content CEN00002.1 --dp $DPDIR --command install.sh" \
    "policy remove-advert $P" "policy remove-advert --id CEN20001" \
    "policy remove-advert $P --id CEN20001 --expires-days 1 --no-expires"; do
    # shellcheck disable=SC2086
    assert_exit 2 "$CAS_SITE" $args
    grep -q "usage: cas-site" "$LAST_ERR" || fail "the usage error shows the usage" "$(cat "$LAST_ERR")"
done
assert_same_file "$T/before.json" "$P"
assert_no_file "$T/u.json"
assert_exit 0 "$CAS_SITE" --help
assert_stdout_has "policy add-advert POLICY --id ADV"

assert_cmtrace_logs
done_testing
