#!/usr/bin/env bash
# cas-site, the site's tool, checked against independent tools: coreutils recomputes every
# package hash and listing (the contract's one-liner), the openssl CLI verifies every signature.
#
# Environment: CAS_SITE (the cas-site binary); CAS_TESTS_DIR (tests/, unused here).
set -euo pipefail

: "${CAS_SITE:?set CAS_SITE to the cas-site binary}"
command -v openssl >/dev/null || { echo "not ok - openssl CLI not found"; exit 1; }

WORK=$(mktemp -d /tmp/t_site.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

passed=0
ok() {
    passed=$((passed + 1))
    echo "ok - $*"
}
fail() {
    echo "not ok - $1"
    shift
    local line
    for line in "$@"; do
        echo "#   $line"
    done
    echo "$passed passed, 1 failed"
    exit 1
}

# run CMD...: stdout in $OUT, stderr in $ERR, exit status in $RC, without tripping set -e.
run() {
    set +e
    "$@" >"$WORK/.out" 2>"$WORK/.err"
    RC=$?
    set -e
    OUT=$(cat "$WORK/.out")
    ERR=$(cat "$WORK/.err")
}
# expect RC DESCRIPTION CMD...: run and require the exit status.
expect() {
    local want=$1 desc=$2
    shift 2
    run "$@"
    [[ $RC == "$want" ]] || fail "$desc" "exit status $RC, expected $want" "stdout: $OUT" \
        "stderr: $ERR"
}
# A failure says "cas-site: error 0xXXXXXXXX: <detail>"; check the code.
expect_error_code() {
    local desc=$1 code=$2
    [[ $ERR =~ ^cas-site:\ error\ 0x[0-9A-F]{8}:\ .+ ]] || fail "$desc" "stderr format: $ERR"
    [[ $ERR == *"error $code:"* ]] || fail "$desc" "expected error $code" "stderr: $ERR"
}
same() {
    local desc=$1 got=$2 want=$3
    [[ $got == "$want" ]] || fail "$desc" "got:      $got" "expected: $want"
}

# The contract's recomputation, verbatim: listing, and hash of the listing.
listing_of() { (cd "$1" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' "$2"); }
hash_of() { listing_of "$1" "$2" | "$2" | cut -d' ' -f1; }
size_of() { (cd "$1" && find . -type f -printf '%s\n' | awk '{s+=$1} END {print s}'); }
mode_of() { stat -c %a "$1"; }
# Every name, type, mode and size under a folder, and every file's content.
fingerprint() {
    (cd "$1" && find . -printf '%y %m %s %P\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -r -0 sha256sum --) | sha256sum
}

# ---- 1. key generate ----
declare -A KEYID
for type in ed25519 rsa ecdsa; do
    dir=keys-$type
    expect 0 "key generate --type $type" "$CAS_SITE" key generate --site CEN --out "$dir" --type "$type"
    [[ -f $dir/CEN.key && -f $dir/CEN.pem ]] || fail "key generate $type writes CEN.key and CEN.pem" "$(ls -la "$dir")"
    same "$type: CEN.key mode" "$(mode_of "$dir/CEN.key")" 600
    same "$type: CEN.pem mode" "$(mode_of "$dir/CEN.pem")" 644
    same "$type: created folder mode" "$(mode_of "$dir")" 700
    same "$type: private key is PKCS#8 PEM" "$(head -n1 "$dir/CEN.key")" "-----BEGIN PRIVATE KEY-----"
    same "$type: public key is SubjectPublicKeyInfo PEM" "$(head -n1 "$dir/CEN.pem")" "-----BEGIN PUBLIC KEY-----"
    text=$(openssl pkey -in "$dir/CEN.key" -noout -text)
    case $type in
    ed25519) [[ $text == "ED25519 Private-Key:"* ]] || fail "$type: key type" "$(head -n1 <<<"$text")" ;;
    rsa) [[ $text == *"Private-Key: (3072 bit"* ]] || fail "$type: 3072-bit RSA" "$(head -n1 <<<"$text")" ;;
    ecdsa) [[ $text == *"ASN1 OID: prime256v1"* ]] || fail "$type: P-256" "$text" ;;
    esac
    same "$type: CEN.pem is the public half of CEN.key" \
        "$(openssl pkey -in "$dir/CEN.key" -pubout)" "$(cat "$dir/CEN.pem")"
    # Key id: first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER, upper-case hex.
    want_id=$(openssl pkey -pubin -in "$dir/CEN.pem" -outform DER | sha256sum | cut -c1-16 | tr a-f A-F)
    got_id=$(sed -n 's/^key id: *//p' <<<"$OUT")
    same "$type: printed key id" "$got_id" "$want_id"
    KEYID[$type]=$got_id
    [[ $OUT == *"$dir/CEN.key"* && $OUT == *"$dir/CEN.pem"* ]] || fail "$type: prints both paths" "$OUT"
    ok "key generate --type $type: CEN.key 0600 PKCS#8, CEN.pem 0644, key id $got_id"

    before=$(cat "$dir/CEN.key" "$dir/CEN.pem" | sha256sum)
    expect 1 "$type: second key generate into the same folder fails" \
        "$CAS_SITE" key generate --site CEN --out "$dir" --type "$type"
    expect_error_code "$type: second key generate" 0x80070057
    [[ $ERR == *"already exists"* ]] || fail "$type: refusal says why" "$ERR"
    same "$type: existing key pair unchanged" "$(cat "$dir/CEN.key" "$dir/CEN.pem" | sha256sum)" "$before"
    ok "key generate --type $type refuses to overwrite an existing key"
done
expect 0 "default key type" "$CAS_SITE" key generate --site AB1 --out keys-default
[[ $(openssl pkey -in keys-default/AB1.key -noout -text) == "ED25519 Private-Key:"* ]] ||
    fail "default key type is ed25519"
ok "key generate defaults to ed25519"
expect 1 "bad site code" "$CAS_SITE" key generate --site cen --out keys-bad
expect_error_code "bad site code" 0x80070057
[[ ! -e keys-bad ]] || fail "bad site code creates nothing" "$(ls -la keys-bad)"
ok "key generate refuses a lower-case site code"

# ---- 2. package build ----
src=src
mkdir -p "$src/bin" "$src/docs/deep/nested" "$src/données" "$src/empty-folder/inner"
printf '#!/bin/sh\necho installing\n' >"$src/install.sh"
head -c 300000 /dev/urandom >"$src/bin/tool.bin"
printf 'read me\n' >"$src/docs/read me.txt"
: >"$src/docs/deep/nested/empty"
printf 'UTF-8 name\n' >"$src/données/café.txt"
printf 'upper\n' >"$src/Zeta"
printf 'lower\n' >"$src/alpha"
chmod 0700 "$src/install.sh"
chmod 0600 "$src/alpha"
dp=dp

check_build() { # ALG CONTENT SOURCE
    local alg=$1 c=$2 source=$3 sum=${1}sum
    local want
    want=$(hash_of "$source" "$sum")
    same "$alg $c: printed hash = coreutils over the source" "$HASH" "$want"
    same "$alg $c: printed hash = coreutils over the DP copy" "$(hash_of "$dp/$c" "$sum")" "$want"
    listing_of "$source" "$sum" >"$WORK/.listing"
    cmp -s "$dp/$c.sums" "$WORK/.listing" || fail "$alg $c: DP/$c.sums = the coreutils listing" \
        "$(diff "$dp/$c.sums" "$WORK/.listing" || true)"
    same "$alg $c: hash of DP/$c.sums" "$("$sum" <"$dp/$c.sums" | cut -d' ' -f1)" "$want"
    same "$alg $c: DP/$c.sums mode" "$(mode_of "$dp/$c.sums")" 644
    local bad
    bad=$(find "$dp/$c" \( -type d ! -perm 0755 \) -o \( -type f ! -perm 0644 \) -o \( ! -type d ! -type f \))
    [[ -z $bad ]] || fail "$alg $c: DP folders 0755, files 0644, nothing else" "$bad"
    bad=$(find "$dp" -name '.*' ! -name .)
    [[ -z $bad ]] || fail "$alg $c: no temporary left in the DP" "$bad"
    [[ ! -e $dp/$c/empty-folder ]] || fail "$alg $c: empty folders are not part of the package"
}

expect 0 "package build sha256" "$CAS_SITE" package build --source "$src" --package CEN00002 \
    --version 1 --dp "$dp"
same "package build prints one stdout line" "$(wc -l <<<"$OUT")" 1
HASH=$OUT
[[ $HASH =~ ^[0-9a-f]{64}$ ]] || fail "package hash is 64 lower-case hex digits" "$HASH"
check_build sha256 CEN00002.1 "$src"
n_files=$(find "$src" -type f | wc -l)
same "build summary on stderr" "$ERR" \
    "Built CEN00002.1: $n_files files, $(size_of "$src") bytes, sha256 ${HASH^^}"
ok "package build sha256: hash $HASH and listing match coreutils over source and DP copy"

expect 0 "package build sha1 --print-size" "$CAS_SITE" package build --source "$src" \
    --package CEN00002 --version 2 --dp "$dp" --alg sha1 --print-size
same "--print-size adds one line" "$(wc -l <<<"$OUT")" 2
HASH=$(sed -n 1p <<<"$OUT")
[[ $HASH =~ ^[0-9a-f]{40}$ ]] || fail "sha1 package hash is 40 lower-case hex digits" "$HASH"
check_build sha1 CEN00002.2 "$src"
same "--print-size = total bytes of the source files" "$(sed -n 2p <<<"$OUT")" "$(size_of "$src")"
same "--print-size = total bytes of the DP copy" "$(sed -n 2p <<<"$OUT")" "$(size_of "$dp/CEN00002.2")"
ok "package build --alg sha1 --print-size: hash, listing and size match coreutils"

# A published version never changes: the same version again is refused, DP untouched.
before=$(fingerprint "$dp")
echo changed >"$src/alpha"
expect 1 "rebuilding an existing version is refused" "$CAS_SITE" package build --source "$src" \
    --package CEN00002 --version 1 --dp "$dp"
expect_error_code "rebuilding an existing version" 0x80070057
[[ $ERR == *"already exists"* ]] || fail "refusal names the reason" "$ERR"
same "DP unchanged after the refusal" "$(fingerprint "$dp")" "$before"
rm -r "$dp/CEN00002.1"
before=$(fingerprint "$dp")
expect 1 "a version whose .sums alone exists is refused" "$CAS_SITE" package build \
    --source "$src" --package CEN00002 --version 1 --dp "$dp"
same "DP unchanged after the refusal (.sums alone)" "$(fingerprint "$dp")" "$before"
ok "package build refuses an existing version (folder or .sums) and leaves the DP unchanged"

# --force replaces both, and a file gone from the source is gone from the DP copy.
rm "$src/Zeta"
expect 0 "package build --force" "$CAS_SITE" package build --source "$src" --package CEN00002 \
    --version 1 --dp "$dp" --force
HASH=$OUT
check_build sha256 CEN00002.1 "$src"
[[ ! -e $dp/CEN00002.1/Zeta ]] || fail "--force: removed file gone from the DP copy"
expect 0 "package build --force over an existing folder" "$CAS_SITE" package build \
    --source "$src" --package CEN00002 --version 1 --dp "$dp" --force
check_build sha256 CEN00002.1 "$src"
ok "package build --force replaces the folder and the listing"
PKG_HASH=$HASH
PKG_SIZE=$(size_of "$src")

# Empty package: the hash of an empty listing, as coreutils says.
mkdir -p empty-src
expect 0 "empty package" "$CAS_SITE" package build --source empty-src --package CEN0000A \
    --version 1 --dp "$dp"
HASH=$OUT
check_build sha256 CEN0000A.1 empty-src
ok "package build of an empty folder gives the hash of an empty listing"

# ---- 3. refused sources leave nothing in the DP ----
mkdir -p bad-link/sub bad-bs
echo data >bad-link/sub/file
ln -s file bad-link/sub/link
echo data >bad-bs/ok
echo data >'bad-bs/back\slash'
for bad in bad-link bad-bs; do
    for pre in missing empty; do
        bdp=dp-$bad-$pre
        [[ $pre == empty ]] && mkdir "$bdp"
        expect 1 "$bad is refused" "$CAS_SITE" package build --source "$bad" --package CEN00003 \
            --version 1 --dp "$bdp"
        expect_error_code "$bad is refused" 0x8007007B
        if [[ $pre == empty ]]; then
            left=$(find "$bdp" -mindepth 1)
            [[ -z $left ]] || fail "$bad: nothing left in the DP" "$left"
        else
            [[ ! -e $bdp ]] || fail "$bad: DP folder not created" "$(find "$bdp")"
        fi
    done
    ok "package build refuses $bad (exit 1, error 0x8007007B) and leaves nothing in the DP"
done
expect 1 "FIFO in the source is refused" bash -c "mkdir -p fifo-src && mkfifo fifo-src/pipe &&
    exec '$CAS_SITE' package build --source fifo-src --package CEN00003 --version 1 --dp dp-fifo"
expect_error_code "FIFO in the source" 0x8007007B
ok "package build refuses a FIFO without hanging"

for args in "--package cen00002 --version 1" "--package CEN0002 --version 1" \
    "--package CEN00002 --version 0" "--package CEN00002 --version 01" \
    "--package CEN00002 --version x"; do
    # shellcheck disable=SC2086
    expect 1 "bad id: $args" "$CAS_SITE" package build --source "$src" $args --dp dp-ids
    expect_error_code "bad id: $args" 0x80070057
done
expect 1 "unknown --alg" "$CAS_SITE" package build --source "$src" --package CEN00002 \
    --version 9 --dp dp-ids --alg md5
expect_error_code "unknown --alg" 0x80090008
[[ ! -e dp-ids ]] || fail "bad arguments create nothing"
ok "package build refuses bad package ids, versions and algorithms"

# ---- 4. policy sign, checked by the openssl CLI ----
write_policy() { # FILE SITE-FIELD
    cat >"$1" <<EOF
{
  "schema": 1,
  $2
  "serial": 7,
  "issued": "2026-11-23T06:00:00Z",
  "expires": "2036-11-30T06:00:00Z",
  "advertisements": [
    {
      "id": "CEN20001",
      "package": "CEN00002",
      "version": 1,
      "hash": { "alg": "sha256", "value": "$PKG_HASH" },
      "size": $PKG_SIZE,
      "locations": [ "http://dp1.example/SMS_DP_SMSPKG\$", "https://dp2.example/pkg" ],
      "program": {
        "command": "install.sh",
        "args": [ "--quiet" ],
        "context": "System",
        "max_run_minutes": 120,
        "success_codes": [ 0, 3010 ]
      },
      "mandatory": true,
      "start": "2026-11-23T07:00:00Z",
      "rerun": "if_failed"
    }
  ]
}
EOF
}
for type in ed25519 rsa ecdsa; do
    pdir=policy-$type
    mkdir "$pdir"
    write_policy "$pdir/policy.json" '"site": "CEN",'
    key=keys-$type/CEN.key
    pem=keys-$type/CEN.pem
    expect 0 "policy sign with $type" "$CAS_SITE" policy sign --key "$key" "$pdir/policy.json"
    same "$type: policy sign prints the key id" "$(sed -n 's/^key id: *//p' <<<"$OUT")" "${KEYID[$type]}"
    [[ -s $pdir/policy.json.sig ]] || fail "$type: policy.json.sig written"
    same "$type: no temporary left beside the signature" "$(ls "$pdir")" "$(printf 'policy.json\npolicy.json.sig')"
    if [[ $type == ed25519 ]]; then
        verify=(openssl pkeyutl -verify -pubin -inkey "$pem" -rawin -in "$pdir/policy.json"
            -sigfile "$pdir/policy.json.sig")
        sign=(openssl pkeyutl -sign -inkey "$key" -rawin -in "$pdir/policy.json" -out "$pdir/ossl.sig")
    else
        verify=(openssl dgst -sha256 -verify "$pem" -signature "$pdir/policy.json.sig" "$pdir/policy.json")
        sign=(openssl dgst -sha256 -sign "$key" -out "$pdir/ossl.sig" "$pdir/policy.json")
    fi
    expect 0 "$type: openssl verifies the signature" "${verify[@]}"
    # Ed25519 and RSA PKCS#1 v1.5 are deterministic: the openssl CLI must produce the same bytes.
    # ECDSA is randomised, so only the verification above applies to it.
    if [[ $type != ecdsa ]]; then
        expect 0 "$type: openssl signs with cas-site's private key" "${sign[@]}"
        cmp -s "$pdir/ossl.sig" "$pdir/policy.json.sig" ||
            fail "$type: openssl's signature is byte-identical to cas-site's"
        rm "$pdir/ossl.sig"
    fi
    # The verification above must be able to fail: one changed byte breaks it.
    sed -i 's/"serial": 7/"serial": 8/' "$pdir/policy.json"
    expect 1 "$type: openssl rejects the signature over a changed policy" "${verify[@]}"
    if [[ $type == ecdsa ]]; then
        ok "policy sign with $type: the openssl CLI verifies the signature"
    else
        ok "policy sign with $type: the openssl CLI verifies it and signs byte-identically"
    fi

    # Signing again replaces the signature.
    expect 0 "$type: re-sign after a change" "$CAS_SITE" policy sign --key "$key" "$pdir/policy.json"
    expect 0 "$type: openssl verifies the new signature" "${verify[@]}"
    ok "policy sign with $type replaces an old signature"
done

# ---- 5. invalid policy ----
mkdir policy-bad
write_policy policy-bad/policy.json ''
expect 1 "signing a policy without \"site\" fails" "$CAS_SITE" policy sign \
    --key keys-ed25519/CEN.key policy-bad/policy.json
expect_error_code "policy without site" 0x8007000D
[[ $ERR == *site* ]] || fail "the refusal names the field" "$ERR"
same "no .sig for an invalid policy" "$(ls policy-bad)" policy.json
printf '{ "schema": 1, "site": "CEN", ' >policy-bad/truncated.json
expect 1 "signing truncated JSON fails" "$CAS_SITE" policy sign --key keys-ed25519/CEN.key \
    policy-bad/truncated.json
[[ ! -e policy-bad/truncated.json.sig ]] || fail "no .sig for truncated JSON"
ok "policy sign refuses an invalid policy and writes no .sig"
expect 0 "--no-check signs an invalid policy" "$CAS_SITE" policy sign --no-check \
    --key keys-ed25519/CEN.key policy-bad/policy.json
expect 0 "openssl verifies the --no-check signature" openssl pkeyutl -verify -pubin \
    -inkey keys-ed25519/CEN.pem -rawin -in policy-bad/policy.json -sigfile policy-bad/policy.json.sig
ok "policy sign --no-check signs an invalid policy"
expect 1 "a missing key fails" "$CAS_SITE" policy sign --key keys-ed25519/NOPE.key \
    policy-ed25519/policy.json
expect 1 "a public key is not a signing key" "$CAS_SITE" policy sign --key keys-ed25519/CEN.pem \
    policy-bad/truncated.json --no-check
[[ ! -e policy-bad/truncated.json.sig ]] || fail "no .sig without a usable key"
ok "policy sign fails without a usable private key"

# ---- 6. usage errors ----
usage_error() { # DESCRIPTION ARGS...
    local desc=$1
    shift
    expect 2 "$desc" "$CAS_SITE" "$@"
    same "$desc: one line on stderr" "$(wc -l <<<"$ERR")" 1
    [[ $ERR == *"usage: cas-site"* ]] || fail "$desc: the line carries the usage" "$ERR"
    [[ -z $OUT ]] || fail "$desc: nothing on stdout" "$OUT"
}
usage_error "no arguments"
usage_error "unknown command" frobnicate
usage_error "key without subcommand" key
usage_error "unknown key subcommand" key frobnicate --site CEN --out keys-x
usage_error "missing --site" key generate --out keys-x
usage_error "missing --out" key generate --site CEN
usage_error "unknown option" key generate --site CEN --out keys-x --colour
usage_error "option without its value" key generate --site CEN --out
usage_error "missing --dp" package build --source "$src" --package CEN00002 --version 3
usage_error "stray argument" package build extra --source "$src" --package CEN00002 --version 3 --dp dp-x
usage_error "missing POLICY" policy sign --key keys-ed25519/CEN.key
usage_error "missing --key" policy sign policy-ed25519/policy.json
[[ ! -e keys-x && ! -e dp-x ]] || fail "usage errors create nothing"
ok "usage errors exit 2 with a one-line usage message"

expect 0 "--help" "$CAS_SITE" --help
[[ $OUT == *"key generate"* && $OUT == *"package build"* && $OUT == *"policy sign"* ]] ||
    fail "--help lists the commands" "$OUT"
expect 0 "--version" "$CAS_SITE" --version
[[ $OUT =~ ^cas-site\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version prints the version" "$OUT"
ok "--help and --version"

echo "$passed passed, 0 failed"
