#!/bin/sh
# Install the Debian packages a make target needs, if any are missing.
# Usage: tools/deps.sh build|run|test|bench|profile|fuzz|deb|system|all
# As root it runs apt-get itself; otherwise it prints the exact command.
set -eu

build="gcc make apache2-dev libjansson-dev libssl-dev libsqlite3-dev"
run="apache2 apache2-utils libaprutil1-dbd-sqlite3 sqlite3 curl"
# The MariaDB tests start their own servers (private datadirs, loopback
# ports; a Galera cluster with galera-4): the system's mariadb service is
# neither needed nor touched.
test="python3 python3-pytest python3-requests python3-psycopg2 postgresql libaprutil1-dbd-pgsql fail2ban locales mariadb-server galera-4 libaprutil1-dbd-mysql python3-pymysql libfaketime"
fuzz="clang-14 libclang-rt-14-dev"
# make deb: dpkg-buildpackage with debhelper (dh_apache2 is in apache2-dev)
deb="dpkg-dev debhelper build-essential lintian"
# make test-system: the .deb in the system apache2 over HTTPS (ssl-cert's
# make-ssl-cert makes the certificate; openssl plays the TLS 1.1 client)
system="ssl-cert openssl"

case "${1:-all}" in
    build) want="$build" ;;
    run)   want="$build $run" ;;
    test)  want="$build $run $test" ;;
    bench) want="$build $run $test wrk" ;;
    profile) want="$build $run $test wrk linux-perf strace" ;;
    fuzz)  want="$build $fuzz" ;;
    deb)   want="$build $deb" ;;
    system) want="$build $run $test $deb $system" ;;
    all)   want="$build $run $test $fuzz $deb $system" ;;
    *) echo "usage: $0 build|run|test|bench|profile|fuzz|deb|system|all" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages:$missing" >&2
    echo "Install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "Installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
