#!/usr/bin/env bash
# The Debian package, end to end: build it with CPack (and a second one with a higher Debian
# revision), check its contents, install it with apt-get, check what was installed (programs,
# man pages, unit, configuration, folders, completion), run one real download through the
# installed programs, upgrade it with a changed configuration and a filled cache, remove it,
# purge it. Prints "ok" / "not ok" lines; exits 1 if anything failed.
#   bash tests/package/test_deb.sh           (as root, or through sudo; CI: Debian 12)
# The machine is left as it was: the package is purged and the build folder removed on exit.
# It refuses to run where cas-agent is installed or its folders exist, since it purges them.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        exec sudo -E bash "$0" "$@"
    fi
    echo "not ok - test_deb.sh installs a package: run it as root" >&2
    exit 1
fi

# --- Reporting -------------------------------------------------------------------------------
N=0
FAILED=0
ok() { N=$((N + 1)) && echo "ok $N - $*"; }
not_ok()
{
    N=$((N + 1))
    FAILED=$((FAILED + 1))
    echo "not ok $N - $1"
    shift
    local line
    for line in "$@"; do
        printf '#   %s\n' "$line"
    done
}
# check DESCRIPTION CMD...: ok if CMD succeeds, else not ok with its output.
check()
{
    local desc=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if [[ $rc -eq 0 ]]; then
        ok "$desc"
    else
        mapfile -t lines <<<"$out"
        not_ok "$desc" "exit $rc: $*" "${lines[@]:0:30}"
    fi
}
# same DESCRIPTION EXPECTED ACTUAL
same()
{
    if [[ $2 == "$3" ]]; then
        ok "$1"
    else
        not_ok "$1" "expected: $2" "actual:   $3"
    fi
}
# die DESCRIPTION [DETAIL...]: a step the rest depends on failed.
die()
{
    not_ok "$@"
    echo "# stopping: the following checks depend on this step"
    exit 1
}

# --- Preconditions ---------------------------------------------------------------------------
PKG=cas-agent
DIRS=(/etc/cas-agent /var/cache/cas-agent /var/lib/cas-agent /var/log/cas-agent)
UNIT=/lib/systemd/system/cas-agent.service
WANTS=/etc/systemd/system/multi-user.target.wants/cas-agent.service
DROPIN_DIR=/etc/systemd/system/cas-agent.service.d

# One run at a time on a machine: two would install and purge the same package.
lockdir=/run/lock
[[ -d $lockdir ]] || lockdir=/tmp
exec 9>"$lockdir/cas-agent-test-deb.lock"
flock -w 900 9 || {
    echo "not ok - another test_deb.sh kept the lock for 15 minutes" >&2
    exit 1
}

pkg_status() { dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true; }
if [[ -n $(pkg_status) && $(pkg_status) != "unknown ok not-installed" ]]; then
    echo "not ok - $PKG is already on this machine ($(pkg_status)): this test would purge it" >&2
    exit 1
fi
# An empty folder (a cas-agent command run with the default configuration makes log_dir) is put
# back afterwards; anything with content would be lost to the purge.
EMPTY_DIRS=()
for d in "${DIRS[@]}"; do
    if [[ -d $d && -z $(ls -A "$d") ]]; then
        EMPTY_DIRS+=("$(stat -c '%a %U:%G' "$d") $d")
    elif [[ -e $d ]]; then
        echo "not ok - $d exists: this test would remove it when it purges the package" >&2
        exit 1
    fi
done

# shellcheck source=tests/deps.sh
. "$top/tests/deps.sh"
cas_deps_install
# Packaging tools, from tests/deps.sh: dpkg-dev (dpkg-shlibdeps, dpkg-buildflags), file (CPack's
# ELF scan), man-db (man), systemd (systemd-analyze).
missing=()
for tool in dpkg-shlibdeps dpkg-buildflags file man systemd-analyze; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "not ok - missing tools: ${missing[*]} (tests/deps.sh installs dpkg-dev file man-db systemd)" >&2
    exit 1
fi

WORK=$(mktemp -d /tmp/cas-deb.XXXXXX)
BUILD=$WORK/build
AGENT_PID=""
made_dropin=0
cleanup()
{
    local rc=$?
    if [[ -n $AGENT_PID ]]; then
        kill -KILL "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    [[ $made_dropin -eq 0 ]] || rm -rf "$DROPIN_DIR"
    if [[ -n $(pkg_status) && $(pkg_status) != "unknown ok not-installed" ]]; then
        echo "# cleanup: purging $PKG"
        DEBIAN_FRONTEND=noninteractive dpkg --purge "$PKG" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    local e mode owner dir
    for e in "${EMPTY_DIRS[@]}"; do
        read -r mode owner dir <<<"$e"
        if [[ ! -e $dir ]]; then
            mkdir -p "$dir" && chown "$owner" "$dir" && chmod "$mode" "$dir"
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
# A command that fails outside a check ends the test: say where, instead of stopping silently.
trap 'not_ok "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# --- Build -----------------------------------------------------------------------------------
echo "# building in $BUILD"
# Debian's build flags (hardening: fortify, stack protector, relro, bindnow), as a Debian
# package build would use them.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS LDFLAGS
# SOURCE_DATE_EPOCH: the changelog date, so two builds of one commit make the same package.
SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
# Under umask 077, as a careful administrator builds: the package's modes must not depend on it.
umask_was=$(umask)
umask 077
cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DCAS_BUILD_TESTS=OFF >"$WORK/cmake.log" 2>&1 || die "cmake configure" "$(tail -20 "$WORK/cmake.log")"
cmake --build "$BUILD" -j"$(nproc)" >"$WORK/build.log" 2>&1 ||
    die "cmake --build" "$(tail -30 "$WORK/build.log")"
(cd "$BUILD" && cpack -G DEB) >"$WORK/cpack.log" 2>&1 || die "cpack -G DEB" "$(tail -30 "$WORK/cpack.log")"
umask "$umask_was"
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
ARCH=$(dpkg --print-architecture)
DEB1=$WORK/${PKG}_${VERSION}-1_${ARCH}.deb
mv "$BUILD/${PKG}_${VERSION}-1_${ARCH}.deb" "$DEB1" 2>/dev/null ||
    die "cpack made ${PKG}_${VERSION}-1_${ARCH}.deb" "$(ls "$BUILD")"
ok "cpack made $(basename "$DEB1")"
# The upgrade: same programs, Debian revision 2.
cmake "$BUILD" -DCAS_PACKAGE_RELEASE=2 >>"$WORK/cmake.log" 2>&1 || die "cmake -DCAS_PACKAGE_RELEASE=2"
cmake --build "$BUILD" >>"$WORK/build.log" 2>&1 || die "rebuild for revision 2"
(cd "$BUILD" && cpack -G DEB) >>"$WORK/cpack.log" 2>&1 || die "cpack -G DEB (revision 2)"
DEB2=$WORK/${PKG}_${VERSION}-2_${ARCH}.deb
mv "$BUILD/${PKG}_${VERSION}-2_${ARCH}.deb" "$DEB2" 2>/dev/null ||
    die "cpack made ${PKG}_${VERSION}-2_${ARCH}.deb" "$(ls "$BUILD")"
ok "cpack made $(basename "$DEB2") (the upgrade)"

# --- The package's metadata and contents -----------------------------------------------------
field() { dpkg-deb -f "$DEB1" "$1"; }
same "Package" "$PKG" "$(field Package)"
same "Version" "$VERSION-1" "$(field Version)"
same "Architecture" "$ARCH" "$(field Architecture)"
same "Section" "admin" "$(field Section)"
if [[ -n $(field Maintainer) && -n $(field Description) ]]; then
    ok "Maintainer and Description are set"
else
    not_ok "Maintainer and Description are set" "$(dpkg-deb -f "$DEB1")"
fi
deps=$(field Depends)
for lib in libc6 libcurl4 libssl3 libcjson1; do
    if [[ $deps == *"$lib "* ]]; then
        ok "Depends (dpkg-shlibdeps) names $lib"
    else
        not_ok "Depends (dpkg-shlibdeps) names $lib" "Depends: $deps"
    fi
done

mkdir -p "$WORK/ctrl"
dpkg-deb -e "$DEB1" "$WORK/ctrl"
same "conffiles: exactly /etc/cas-agent/agent.json" "/etc/cas-agent/agent.json" "$(cat "$WORK/ctrl/conffiles")"
for s in postinst prerm postrm; do
    same "maintainer script $s: mode 755, #!/bin/sh, set -e" "755 #!/bin/sh 1" \
        "$(stat -c %a "$WORK/ctrl/$s") $(head -1 "$WORK/ctrl/$s") $(grep -c '^set -e$' "$WORK/ctrl/$s")"
    check "maintainer script $s: valid sh" sh -n "$WORK/ctrl/$s"
done

# Every entry with its mode and owner, and nothing else: a stray install rule shows up here.
expected=$(
    cat <<'EOF'
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/cas-agent/
-rw-r--r-- root/root ./etc/cas-agent/agent.json
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/cas-agent.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/cas-site
drwxr-xr-x root/root ./usr/sbin/
-rwxr-xr-x root/root ./usr/sbin/cas-agent
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/bash-completion/
drwxr-xr-x root/root ./usr/share/bash-completion/completions/
-rw-r--r-- root/root ./usr/share/bash-completion/completions/cas-agent
-rw-r--r-- root/root ./usr/share/bash-completion/completions/cas-site
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/cas-agent/
-rw-r--r-- root/root ./usr/share/doc/cas-agent/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/cas-agent/copyright
drwxr-xr-x root/root ./usr/share/doc/cas-agent/examples/
-rw-r--r-- root/root ./usr/share/doc/cas-agent/examples/installers.conf
-rw-r--r-- root/root ./usr/share/doc/cas-agent/examples/nginx-dp.conf
-rw-r--r-- root/root ./usr/share/doc/cas-agent/examples/nginx-peer-cache.conf
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man1/
-rw-r--r-- root/root ./usr/share/man/man1/cas-site.1.gz
drwxr-xr-x root/root ./usr/share/man/man5/
-rw-r--r-- root/root ./usr/share/man/man5/cas-agent.json.5.gz
drwxr-xr-x root/root ./usr/share/man/man8/
-rw-r--r-- root/root ./usr/share/man/man8/cas-agent.8.gz
EOF
)
actual=$(dpkg-deb -c "$DEB1" | awk '{ print $1, $2, $6 }' | sort -k3)
if [[ $actual == "$expected" ]]; then
    ok "dpkg-deb -c: every file and folder, modes 0644/0755, owned by root"
else
    mapfile -t lines < <(diff <(echo "$expected") <(echo "$actual") || true)
    not_ok "dpkg-deb -c: every file and folder, modes 0644/0755, owned by root" "${lines[@]}"
fi
check "the programs are stripped" bash -c "dpkg-deb --fsys-tarfile '$DEB1' | tar -xO ./usr/sbin/cas-agent | file - | grep -q ', stripped'"

# The default configuration: every key the agent knows, each once (a key added to
# common/config.c and not here fails), and the man page describes each.
cfg_keys=$(dpkg-deb --fsys-tarfile "$DEB1" | tar -xO ./etc/cas-agent/agent.json | jq -r 'keys_unsorted[]' | sort)
src_keys=$(sed -n '/^static const struct key keys\[\]/,/^};/p' "$top/common/config.c" |
    grep -oE '^ *(K\(|\{)"[a-z_]+"' | grep -oE '[a-z_]+' | sort)
same "agent.json has every configuration key of common/config.c" "$src_keys" "$cfg_keys"
page_keys=$(grep -oE '^\.BR [a-z_]+ " \(' "$top/packaging/man/cas-agent.json.5" | awk '{ print $2 }' | sort)
same "cas-agent.json(5) describes every configuration key" "$src_keys" "$page_keys"

if command -v lintian >/dev/null; then
    # Exit 0: no error tags (warnings are listed); 1: error tags; anything else: lintian failed.
    rc=0
    lintian "$DEB1" >"$WORK/lintian.log" 2>&1 || rc=$?
    grep -v 'running with root privileges' "$WORK/lintian.log" | sed 's/^/# lintian: /' || true
    same "lintian: no errors (warnings are listed above)" 0 "$rc"
else
    echo "# lintian is not installed: skipped"
fi

# --- Install ---------------------------------------------------------------------------------
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@"; }
apt_get install "$DEB1" >"$WORK/install.log" 2>&1 ||
    die "apt-get install ./$(basename "$DEB1")" "$(tail -20 "$WORK/install.log")"
same "apt-get install: installed" "install ok installed $VERSION-1" \
    "$(dpkg-query -W -f='${Status} ${Version}' "$PKG")"
same "cas-agent --version" "cas-agent $VERSION" "$(/usr/sbin/cas-agent --version 2>&1)"
same "cas-site --version" "cas-site $VERSION" "$(/usr/bin/cas-site --version 2>&1)"
same "cas-agent is found on root's PATH" "/usr/sbin/cas-agent" "$(command -v cas-agent)"

mode_of() { stat -c '%a %U:%G' "$1" 2>&1; }
same "/var/cache/cas-agent: 755 root:root" "755 root:root" "$(mode_of /var/cache/cas-agent)"
same "/var/lib/cas-agent: 755 root:root" "755 root:root" "$(mode_of /var/lib/cas-agent)"
same "/var/log/cas-agent: 750 root:adm" "750 root:adm" "$(mode_of /var/log/cas-agent)"
same "/etc/cas-agent/trusted-keys: 755 root:root" "755 root:root" "$(mode_of /etc/cas-agent/trusted-keys)"
same "/etc/cas-agent/agent.json: 644 root:root" "644 root:root" "$(mode_of /etc/cas-agent/agent.json)"

# The transfer process's account: a system account that cannot log in and owns no home.
IFS=: read -r _ _ acct_uid _ _ acct_home acct_shell < <(getent passwd cas-agent || true)
if [[ -n ${acct_uid:-} && $acct_uid -lt 1000 && $acct_uid -ne 0 ]]; then
    ok "postinst created the system account cas-agent (uid $acct_uid)"
else
    not_ok "postinst created the system account cas-agent" "$(getent passwd cas-agent)"
fi
same "cas-agent's shell is nologin" "/usr/sbin/nologin" "${acct_shell:-}"
same "cas-agent's home does not exist" "/nonexistent" "${acct_home:-}"
check "group cas-agent exists" getent group cas-agent

# The packaged configuration loads without a warning, named and as the default.
for args in "--config /etc/cas-agent/agent.json status" "status"; do
    # shellcheck disable=SC2086 # the words of $args are separate arguments
    out=$(/usr/sbin/cas-agent $args 2>"$WORK/stderr") && rc=0 || rc=$?
    if [[ $rc -eq 0 && ! -s $WORK/stderr ]]; then
        ok "cas-agent $args: exit 0, nothing on stderr"
    else
        not_ok "cas-agent $args: exit 0, nothing on stderr" "exit $rc" "$(cat "$WORK/stderr")" "$out"
    fi
done

# The unit: systemd's own check (it also runs man on the Documentation= pages), then with
# the installers drop-in, and its writable folders are the configuration's folders.
check "systemd-analyze verify $UNIT" bash -c "out=\$(systemd-analyze verify '$UNIT' 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
mkdir "$DROPIN_DIR" && made_dropin=1
cp /usr/share/doc/cas-agent/examples/installers.conf "$DROPIN_DIR/"
check "systemd-analyze verify with the installers.conf drop-in" bash -c "out=\$(systemd-analyze verify '$UNIT' 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
rm -rf "$DROPIN_DIR" && made_dropin=0
rw=$(sed -n 's/^ReadWritePaths=//p' "$UNIT" | tr ' ' '\n' | sort)
cfg_dirs=$(jq -r '.cache_dir, .state_dir, .log_dir, .trusted_keys_dir' /etc/cas-agent/agent.json | sort)
same "ReadWritePaths= are the configuration's cache, state, log and trusted-keys folders" "$cfg_dirs" "$rw"
exposure=$(systemd-analyze security --offline=yes "$UNIT" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: //p' || true)
echo "# systemd-analyze security: exposure ${exposure:-unknown}"

# logmark: remember how long execmgr.log is; waitlog TEXT: a line with TEXT is written after
# the mark within 10 s.
EXECMGR=/var/log/cas-agent/execmgr.log
MARK=0
logmark() { MARK=$({ wc -l <"$EXECMGR"; } 2>/dev/null || echo 0); }
waitlog()
{
    local i
    for ((i = 0; i < 100; i++)); do
        tail -n +$((MARK + 1)) "$EXECMGR" 2>/dev/null | grep -q "$1" && return 0
        sleep 0.1
    done
    return 1
}
if [[ -d /run/systemd/system ]]; then
    same "the service is enabled" "enabled" "$(systemctl is-enabled cas-agent.service 2>&1)"
    expect_active=active
    if [[ -x /usr/sbin/policy-rc.d ]]; then
        prc=0
        /usr/sbin/policy-rc.d cas-agent.service start >/dev/null 2>&1 || prc=$?
        [[ $prc -ne 101 ]] || expect_active=inactive
    fi
    same "the service is $expect_active after installation" "$expect_active" \
        "$(systemctl is-active cas-agent.service 2>&1 || true)"
    # The sandboxed service for real: start, reload, stop.
    logmark
    check "systemctl restart cas-agent" systemctl restart cas-agent.service
    check "the sandboxed service started" waitlog 'cas-agent service started'
    logmark
    check "systemctl reload cas-agent (SIGHUP)" systemctl reload cas-agent.service
    check "SIGHUP: the configuration is reloaded" waitlog 'SIGHUP: reloading configuration'
    logmark
    check "systemctl stop cas-agent" systemctl stop cas-agent.service
    check "SIGTERM reached the agent (KillMode=mixed): the stop is logged" waitlog 'cas-agent service stopping'
    same "the service stopped cleanly" "inactive" "$(systemctl is-active cas-agent.service 2>&1 || true)"
else
    echo "# systemd is not running here: the unit's command is run directly"
    same "the service is enabled (offline)" "enabled" "$(systemctl is-enabled cas-agent.service 2>&1 || true)"
    logmark
    /usr/sbin/cas-agent run >"$WORK/run.out" 2>&1 &
    AGENT_PID=$!
    check "cas-agent run with the packaged configuration: started" waitlog 'cas-agent service started'
    logmark
    kill -HUP "$AGENT_PID"
    check "SIGHUP: the configuration is reloaded" waitlog 'SIGHUP: reloading configuration'
    logmark
    kill -TERM "$AGENT_PID"
    rc=0
    timeout 15 tail --pid="$AGENT_PID" -f /dev/null || rc=$?
    wait "$AGENT_PID" && arc=0 || arc=$?
    AGENT_PID=""
    same "SIGTERM: cas-agent run exits 0 within seconds" "0 0" "$rc $arc"
    check "SIGTERM: the stop is logged" waitlog 'cas-agent service stopping'
fi

# Man pages: where man finds them, rendering without a warning.
for page in 8:cas-agent 1:cas-site 5:cas-agent.json; do
    sec=${page%%:*} name=${page#*:}
    path=/usr/share/man/man$sec/$name.$sec.gz
    same "man -w $sec $name" "$path" "$(man -w "$sec" "$name" 2>&1)"
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$path" 2>"$WORK/stderr") && rc=0 || rc=$?
    if [[ $rc -eq 0 && ! -s $WORK/stderr && $(wc -l <<<"$out") -gt 40 ]]; then
        ok "man -l $path renders without warnings"
    else
        not_ok "man -l $path renders without warnings" "exit $rc" "$(head -20 "$WORK/stderr")"
    fi
done

# Bash completion, loaded the way bash-completion loads it.
comp()
{
    bash -c 'bc=/usr/share/bash-completion/bash_completion
        if [[ -r $bc ]]; then source "$bc"; fi
        source "/usr/share/bash-completion/completions/$1"; line=$2
        read -ra COMP_WORDS <<<"$line"; [[ $line == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE=$line; COMP_POINT=${#line}
        "$(complete -p "$1" | sed -n "s/.*-F \([^ ]*\) .*/\1/p")" 2>/dev/null
        echo "${COMPREPLY[*]}"' _ "$@"
}
same "completion: cas-agent ca<TAB>" "cache" "$(comp cas-agent 'cas-agent ca')"
same "completion: cas-agent cache <TAB>" "list verify delete clean" "$(comp cas-agent 'cas-agent cache ')"
same "completion: cas-site policy <TAB>" "create add-advert remove-advert sign" "$(comp cas-site 'cas-site policy ')"

for f in nginx-dp.conf nginx-peer-cache.conf; do
    check "example $f installed" cmp "$top/packaging/$f" "/usr/share/doc/cas-agent/examples/$f"
done

# --- One real download through the installed programs ----------------------------------------
echo "# tests/integration/t_good_package.sh with the installed /usr/sbin/cas-agent and /usr/bin/cas-site"
rc=0
CAS_AGENT=/usr/sbin/cas-agent CAS_SITE=/usr/bin/cas-site bash "$top/tests/integration/t_good_package.sh" \
    >"$WORK/itest.log" 2>&1 || rc=$?
sed 's/^/#   /' "$WORK/itest.log" | tail -n 8
if [[ $rc -eq 0 ]]; then
    ok "a package downloaded, verified and run by the installed cas-agent (t_good_package.sh)"
else
    not_ok "a package downloaded, verified and run by the installed cas-agent (t_good_package.sh)" \
        "exit $rc" "$(grep -m5 'not ok' "$WORK/itest.log")"
fi

# --- Upgrade: the administrator's configuration, keys, cache and state stay --------------------
jq '.policy_poll_minutes = 30 | .site = "CEN"' /etc/cas-agent/agent.json >"$WORK/agent.json"
cat "$WORK/agent.json" >/etc/cas-agent/agent.json
cp /etc/cas-agent/agent.json "$WORK/agent.json.before"
openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout >/etc/cas-agent/trusted-keys/CEN.pem
# A committed cache entry in the DP layout (the agent removes a C/ folder without C.sums).
mkdir -p /var/cache/cas-agent/CEN00001.1
echo kept >/var/cache/cas-agent/CEN00001.1/file
(cd /var/cache/cas-agent/CEN00001.1 && sha256sum file) >/var/cache/cas-agent/CEN00001.1.sums
echo kept >/var/lib/cas-agent/marker
chmod 0700 /var/lib/cas-agent # an administrator's choice, which an upgrade keeps
enabled_before=$(systemctl is-enabled cas-agent.service 2>/dev/null || true)
if [[ $enabled_before == enabled ]]; then
    systemctl disable cas-agent.service >/dev/null 2>&1 # also an administrator's choice
fi
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$DEB2" >"$WORK/upgrade.log" 2>&1 ||
    die "dpkg -i --force-confold $(basename "$DEB2")" "$(tail -20 "$WORK/upgrade.log")"
same "upgrade: installed" "install ok installed $VERSION-2" "$(dpkg-query -W -f='${Status} ${Version}' "$PKG")"
check "upgrade: the changed agent.json is kept" cmp "$WORK/agent.json.before" /etc/cas-agent/agent.json
same "upgrade: no agent.json.dpkg-* left beside it" "" "$(find /etc/cas-agent -name "*.dpkg-*")"
check "upgrade: the trusted key is kept" test -s /etc/cas-agent/trusted-keys/CEN.pem
check "upgrade: the cache is kept" grep -qx kept /var/cache/cas-agent/CEN00001.1/file
check "upgrade: the state is kept" grep -qx kept /var/lib/cas-agent/marker
same "upgrade: a folder mode the administrator set is kept" "700 root:root" "$(mode_of /var/lib/cas-agent)"
if [[ $enabled_before == enabled ]]; then
    same "upgrade: a disabled service stays disabled" "disabled" \
        "$(systemctl is-enabled cas-agent.service 2>/dev/null || true)"
    systemctl enable cas-agent.service >/dev/null 2>&1 # for purge to clean up
fi
same "upgrade: the agent still lists the cache entry" "CEN00001.1" \
    "$(/usr/sbin/cas-agent cache list 2>&1 | awk 'NR > 1 { print $1 }')"

# --- Remove: everything but the programs stays ------------------------------------------------
apt_get remove "$PKG" >"$WORK/remove.log" 2>&1 || die "apt-get remove $PKG" "$(tail -20 "$WORK/remove.log")"
same "remove: configuration files remain" "deinstall ok config-files" "$(pkg_status)"
check "remove: the programs are gone" test ! -e /usr/sbin/cas-agent -a ! -e /usr/bin/cas-site -a ! -e "$UNIT"
check "remove: the changed agent.json is kept" cmp "$WORK/agent.json.before" /etc/cas-agent/agent.json
check "remove: the trusted key is kept" test -s /etc/cas-agent/trusted-keys/CEN.pem
check "remove: the cache is kept" grep -qx kept /var/cache/cas-agent/CEN00001.1/file
check "remove: the state is kept" grep -qx kept /var/lib/cas-agent/marker
check "remove: the logs are kept" test -s /var/log/cas-agent/execmgr.log

# --- Purge: nothing is left -------------------------------------------------------------------
apt_get purge "$PKG" >"$WORK/purge.log" 2>&1 || die "apt-get purge $PKG" "$(tail -20 "$WORK/purge.log")"
st=$(pkg_status)
if [[ -z $st || $st == "unknown ok not-installed" ]]; then
    ok "purge: dpkg no longer knows cas-agent"
else
    not_ok "purge: dpkg no longer knows cas-agent" "$st"
fi
for d in "${DIRS[@]}"; do
    check "purge: $d is gone" test ! -e "$d"
done
check "purge: the enable link is gone" test ! -e "$WANTS" -a ! -L "$WANTS"

if [[ $FAILED -eq 0 ]]; then
    echo "# $N passed, 0 failed"
else
    echo "# $((N - FAILED)) passed, $FAILED failed"
    exit 1
fi
