"""make run: the README's demo, as a newcomer runs it (tools/demo.sh), with
the spec's own curl body, on a free port and a directory of its own."""
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile

import requests

from conftest import SPEC_BODY, SPEC_ROW, TOP, free_port

ACCEPTED = '{"status":"01","description":"Accepted"}'


def test_demo_answers_the_spec_example_01_and_records_every_field():
    parent = tempfile.mkdtemp(prefix="k2notify-demo-")
    os.chmod(parent, 0o755)             # as /tmp is, for the httpd user
    demo = os.path.join(parent, "demo")
    port = free_port()
    script = os.path.join(TOP, "tools", "demo.sh")
    out = subprocess.run([script, "start", demo, str(port)], capture_output=True,
                         text=True, check=True).stdout
    try:
        curl = re.search(r"^curl -d \"(.*)\" (http://\S+)$", out, re.M)
        assert curl, out
        assert curl.group(1) == SPEC_BODY
        r = requests.post(curl.group(2), data=curl.group(1), timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (r.status_code, r.text) == (200, ACCEPTED)

        con = sqlite3.connect(os.path.join(demo, "db", "k2.db"))
        con.row_factory = sqlite3.Row
        rows = [dict(x) for x in con.execute("SELECT * FROM k2_transactions")]
        con.close()
        assert len(rows) == 1
        row = rows[0]
        assert row.pop("received_at")
        assert row == SPEC_ROW

        status = re.search(r"^http://127\.0\.0\.1:\d+/server-status\b", out, re.M)
        assert status, out
        auto = requests.get(status.group(0) + "?auto", timeout=10).text
        assert re.search(r"^K2NotifyAccepted: 1$", auto, re.M), auto
    finally:
        subprocess.run([script, "stop", demo, str(port)], capture_output=True)
        shutil.rmtree(os.path.dirname(demo), ignore_errors=True)
