#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# The cas-agent demo: builds the project if needed, then walks through a verified download and
# run, and a refused tampered package, against a real nginx on a loopback port. Everything lives in
# a temp folder that is removed at the end (also on Ctrl-C). Exits 0 only if every step behaved as
# described, so the demo doubles as an end-to-end check.
#
#   bash tests/demo.sh
#
# Environment: CAS_BUILD_DIR (default: build/ in the source tree), or CAS_AGENT and CAS_SITE to use
# programs built elsewhere.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${CAS_BUILD_DIR:-$ROOT/build}

heading()
{
    if [[ -t 1 ]]; then
        printf '\n\033[1m== %s\033[0m\n' "$*"
    else
        printf '\n== %s\n' "$*"
    fi
}

# --- 0. Build dependencies (Debian 12, tests/deps.sh) and the build itself ------------------
if [[ -z ${CAS_AGENT:-} || -z ${CAS_SITE:-} ]]; then
    # shellcheck source=deps.sh
    source "$ROOT/tests/deps.sh"
    cas_deps_install
    if [[ ! -f $BUILD/CMakeCache.txt ]]; then
        heading "Building cas-agent into $BUILD"
        cmake -S "$ROOT" -B "$BUILD" >/dev/null
    fi
    cmake --build "$BUILD" -j2 --target cas-agent cas-site >/dev/null ||
        cmake --build "$BUILD" -j2 --target cas-agent cas-site
    CAS_AGENT=$BUILD/cas-agent
    CAS_SITE=$BUILD/cas-site
fi
export CAS_AGENT CAS_SITE

# The integration harness: temp folder, nginx DPs, policy helpers, checks, cleanup on exit.
# LIB_QUIET keeps its checks silent: the demo narrates, and a failed check still stops it loudly.
export LIB_QUIET=1
# shellcheck source=integration/lib.sh
source "$ROOT/tests/integration/lib.sh"

# show CMD... -- print the command as typed, run it, indent its output.
show()
{
    printf '  $ %s\n' "$(_lib_show "$@")"
    run "$@"
    sed -e "s|$T|\$T|g" -e 's/^/    /' "$LAST_OUT" "$LAST_ERR"
}

# log_lines FILE TEXT... -- the records of FILE containing any TEXT, as plain text.
log_lines()
{
    local file=$1 pat=()
    shift
    local t
    for t in "$@"; do
        pat+=(-e "$t")
    done
    echo "  $(basename "$file"):"
    log_texts "$file" | grep -F "${pat[@]}" | sed -e "s|$T|\$T|g" -e 's/^/    /'
}

write_config log_level=1
echo "Working in \$T = $T (removed at the end)."
mkdir -p "$T/site" "$T/dp" "$T/src1" "$T/src2"

heading "1. The site makes its key pair; the agent trusts the public key"
show "$CAS_SITE" key generate --site CEN --out "$T/site"
cp "$T/site/CEN.pem" "$KEYS/CEN.pem"

heading "2. The site builds package CEN00002 version 1 onto a distribution point folder"
make_package "$T/src1" "Hello from CEN00002 version 1"
show "$CAS_SITE" package build --source "$T/src1" --package CEN00002 --version 1 --dp "$T/dp" --print-size
H1=$(sed -n 1p "$LAST_OUT")
S1=$(sed -n 2p "$LAST_OUT")
assert_eq "$(package_hash "$T/src1")" "$(tr '[:upper:]' '[:lower:]' <<<"$H1")" "package hash"

heading "3. nginx serves that folder: a distribution point"
dp_start "$T/dp"
echo "  $DP_URL  ->  $(find "$T/dp" -mindepth 1 -maxdepth 1 -printf '%f ')"

heading "4. The site signs a policy advertising it; the agent applies the policy"
write_policy "$T/policy1.json" serial=1 adverts="$(advert_json id=CEN20001 package=CEN00002 \
    version=1 hash="$H1" size="$S1")"
show "$CAS_SITE" policy sign --key "$T/site/CEN.key" "$T/policy1.json"
show "$CAS_AGENT" --config "$CFG" policy apply "$T/policy1.json"
assert_eq 0 "$LAST_RC" "policy 1 applied"

heading "5. The agent downloads, verifies and runs advertisement CEN20001"
show "$CAS_AGENT" --config "$CFG" execute CEN20001
assert_eq 0 "$LAST_RC" "execute CEN20001 succeeded"
log_lines "$LOGS/CAS.log" CEN00002.1 "request {"
log_lines "$LOGS/execmgr.log" ""
echo "  proof file written by the program:"
sed -e "s|$T|\$T|g" -e 's/^/    /' "$PROOF/ran-CEN20001"
assert_eq 1 "$(proof_runs CEN20001)" "the program ran"
assert_download_succeeded CEN00002.1
assert_same_tree "$T/src1" "$CACHE/CEN00002.1"

heading "6. Version 2 is published -- and someone changes ONE byte of it on the DP"
make_package "$T/src2" "Hello from CEN00002 version 2"
run "$CAS_SITE" package build --source "$T/src2" --package CEN00002 --version 2 --dp "$T/dp" --print-size
H2=$(sed -n 1p "$LAST_OUT")
S2=$(sed -n 2p "$LAST_OUT")
write_policy "$T/policy2.json" serial=2 adverts="$(advert_json id=CEN20002 package=CEN00002 \
    version=2 hash="$H2" size="$S2")"
run "$CAS_SITE" policy sign --key "$T/site/CEN.key" "$T/policy2.json"
show "$CAS_AGENT" --config "$CFG" policy apply "$T/policy2.json"
assert_eq 0 "$LAST_RC" "policy 2 applied"
victim=$T/dp/CEN00002.2/install.sh
off=$(grep -bo 'version 2' "$victim" | head -1 | cut -d: -f1)
flip_byte "$victim" $((off + 8)) 4 # "version 2" -> "version 6"
echo "  the DP's install.sh now says: $(grep -o 'Hello from [^"]*' "$victim")"

heading "7. The agent refuses it: the recomputed hash does not match the signed one"
show "$CAS_AGENT" --config "$CFG" execute CEN20002
assert_eq 1 "$LAST_RC" "execute CEN20002 failed"
assert_error 0x80091007
log_lines "$LOGS/CAS.log" "Hash does not match" "Download completed for content CEN00002.2" \
    "error 0x80091007" "Download failed for download request"
log_lines "$LOGS/execmgr.log" "advert CEN20002" "error 0x80091007"
E=$(upper "$H2")
A=$(upper "$(package_hash "$T/dp/CEN00002.2")")
assert_download_mismatch CEN00002.2 "$E" "$A"
assert_not_available CEN00002.2 CEN20002
assert_not_cached CEN00002.2
assert_eq 0 "$(proof_runs CEN20002)" "the tampered program did not run"
echo "  proof file of CEN20002: $(ls "$PROOF/ran-CEN20002" 2>/dev/null || echo none -- the program did not run)"
echo "  cache: $(cd "$CACHE" && find . -mindepth 1 -maxdepth 1 ! -name '.*' -printf '%P ') (no CEN00002.2)"

heading "Demo complete: the good package ran, the tampered one was refused (0x80091007)"
