#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# The site's own tool and the agent agree: a key made by `cas-site key generate`, a package built
# by `cas-site package build`, a policy signed by `cas-site policy sign` -- the agent applies it and
# runs the program. The artefacts also match what coreutils and the openssl CLI make or accept.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_site_interop"

write_config
make_package "$T/src"
mkdir -p "$T/site" "$T/dp"

assert_exit 0 "$CAS_SITE" key generate --site CEN --out "$T/site"
assert_file "$T/site/CEN.key"
assert_file "$T/site/CEN.pem"
cp "$T/site/CEN.pem" "$KEYS/CEN.pem"

assert_exit 0 "$CAS_SITE" package build --source "$T/src" --package CEN00002 --version 4 \
    --dp "$T/dp" --print-size
H=$(sed -n 1p "$LAST_OUT")
S=$(sed -n 2p "$LAST_OUT")
assert_eq "$(package_hash "$T/src")" "$(tr '[:upper:]' '[:lower:]' <<<"$H")" \
    "cas-site's package hash is the coreutils one-liner's"
assert_eq "$(find "$T/src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')" "$S" \
    "cas-site --print-size prints the total bytes"
assert_eq "$(sums_of "$T/src")" "$(cat "$T/dp/CEN00002.4.sums")" "the DP's listing is sha256sum's"
assert_same_tree "$T/src" "$T/dp/CEN00002.4"
dp_start "$T/dp"

write_policy "$T/policy.json" serial=1 adverts="$(advert_json id=CEN20001 package=CEN00002 version=4 \
    hash="$H" size="$S")"
assert_exit 0 "$CAS_SITE" policy sign --key "$T/site/CEN.key" "$T/policy.json"
assert_file "$T/policy.json.sig"
# The contract's signature is what the openssl CLI verifies (Ed25519 is cas-site's default).
openssl pkeyutl -verify -pubin -inkey "$T/site/CEN.pem" -rawin -in "$T/policy.json" \
    -sigfile "$T/policy.json.sig" >/dev/null 2>&1 ||
    fail "openssl verifies cas-site's signature" "$(openssl pkey -pubin -in "$T/site/CEN.pem" -noout -text 2>&1 | head -1)"
ok "openssl verifies cas-site's signature"

assert_exit 0 agent policy apply "$T/policy.json"
assert_exit 0 agent execute CEN20001
assert_eq 1 "$(proof_runs CEN20001)" "the program ran"
assert_download_succeeded CEN00002.4
assert_same_tree "$T/src" "$CACHE/CEN00002.4"

assert_cmtrace_logs
done_testing
