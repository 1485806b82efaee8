#!/bin/bash
# shellcheck disable=SC2119 source-path=SCRIPTDIR
# errinfo for every code in the agent's one table (`errinfo --all`): each is explained by name and
# message in its three spellings, and the README's error table lists exactly those codes with the
# same names, so the documentation cannot drift from the code.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
echo "# t_errinfo"

README=$CAS_TESTS_DIR/../README.md
assert_exit 0 "$CAS_AGENT" errinfo --all
cp "$LAST_OUT" "$T/all"
n=$(wc -l <"$T/all")
((n >= 40)) || fail "errinfo --all lists the table" "$n lines"
ok "errinfo --all lists $n codes"

while read -r code name message; do
    [[ $code =~ ^0x[0-9A-F]{8}$ && -n $name && -n $message ]] || fail "errinfo --all line: $code $name $message"
    for form in "$code" "${code#0x}" "$((code))"; do
        run "$CAS_AGENT" errinfo "$form"
        [[ $LAST_RC -eq 0 && $(head -1 "$LAST_OUT") == "$code $name" && $(sed -n 2p "$LAST_OUT") == "$message" ]] ||
            fail "errinfo $form" "exit $LAST_RC: $(cat "$LAST_OUT" "$LAST_ERR")"
    done
    ok "errinfo $code ($name) in hex, bare hex and decimal"
    grep -F "| $code | $name |" "$README" >/dev/null || fail "README's error table has $code $name"
done <"$T/all"
ok "README's error table lists every code with its name"

# And the other way round: every row of the README table is a code the agent knows.
grep -E '^\| 0x[0-9A-F]{8} \| ' "$README" | while IFS='|' read -r _ code name _; do
    code=$(echo "$code" | tr -d ' ')
    name=$(echo "$name" | tr -d ' ')
    grep -F "$code $name " "$T/all" >/dev/null || fail "README row $code $name is a code of the agent"
done
ok "every code in the README's table is one the agent produces"

echo "# HTTP statuses are known by range; others are not"
assert_exit 0 "$CAS_AGENT" errinfo 0x80190194
assert_exit 0 "$CAS_AGENT" errinfo 0x801901F7
assert_exit 1 "$CAS_AGENT" errinfo 0x80190063
assert_exit 1 "$CAS_AGENT" errinfo 0x12345678
assert_exit 2 "$CAS_AGENT" errinfo not-a-code
done_testing
