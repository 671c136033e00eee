"""The module's version: one place (debian/changelog's first line, which the
Makefile passes to the compiler), logged once per start and per graceful
restart at level notice, in the error log of the configuration that serves."""
import os
import re
import subprocess
import time

from conftest import CONTRACT_LOCATION, HTTPD, TOP

with open(os.path.join(TOP, "debian", "changelog")) as f:
    FIRST_LINE = f.readline()
VERSION = re.match(r"libapache2-mod-k2notify \(([^)]+)\) ", FIRST_LINE).group(1)


def loaded_lines(server):
    return [l for l in server.errors_text().splitlines() if "mod_k2notify " in l]


def test_version_comes_from_debian_changelog_and_is_logged_once_per_start_and_graceful(make_httpd):
    s = make_httpd("version", CONTRACT_LOCATION, loglevel="error")
    # configtest does not run post_config: nothing is logged.
    assert s.configtest() == (0, "Syntax OK\n")
    s.start()
    # At notice level, which httpd logs whatever LogLevel says (here: error).
    line = re.compile(r"^\[[^]]+\] \[k2notify:notice\] \[pid (\d+):tid \1\] "
                      + re.escape(f"mod_k2notify {VERSION} loaded") + "$")
    assert s.wait_log(r"AH00489: .* configured -- resuming normal operations")
    lines = loaded_lines(s)
    assert len(lines) == 1 and line.match(lines[0]), lines
    parent = line.match(lines[0]).group(1)
    with open(os.path.join(s.dir, "httpd.pid")) as f:
        assert f.read().strip() == parent

    subprocess.run([HTTPD, "-f", s.conf, "-k", "graceful"], check=True,
                   env=s.httpd_env())
    deadline = time.time() + 10
    while len(loaded_lines(s)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert s.wait_log(r"AH00493: SIGUSR1 received.  Doing graceful restart")
    time.sleep(0.5)                 # and no third line comes
    lines = loaded_lines(s)
    assert len(lines) == 2 and all(line.match(l) for l in lines), lines
    assert line.match(lines[1]).group(1) == parent
