"""DBDPersist Off: mod_dbd opens a connection for each request and closes it
with the request (a once-only connection lives in a subpool of the request's
pool).  The module's own second attempt at a connection (k2n_db_open, when
mod_dbd's first one failed fast) must leave such a connection to go with the
request: closing it as well destroyed its pool twice, and the child died
(seen as a segfault within a few hundred posts with DBDPersist Off)."""
import os

import pytest

from conftest import (CONTRACT_LOCATION, ONE_CONNECTION, fault_library,
                      notification, wait_access)
from test_faults import children, parent_pid

ACCEPTED_TEXT = '{"status":"01","description":"Accepted"}'
PERSIST_OFF = "DBDPersist Off\n"



@pytest.fixture
def fail_open_once(tmp_path):
    """The fault library: one sqlite3_open fails when its trigger exists."""
    return fault_library(tmp_path, "fail_open_once")


def test_once_only_connections_record_every_notification(make_httpd):
    s = make_httpd("persist-off", CONTRACT_LOCATION, dbd_extra=PERSIST_OFF).start()
    notes = [notification() for _ in range(50)]
    for n in notes:
        assert s.post(n).text == ACCEPTED_TEXT
    assert s.count() == 50
    for n in notes:
        assert [e[6] for e in wait_access(s, n["k2_transaction_id"])] == ["accepted"]


def test_once_only_connection_got_at_a_later_attempt_goes_with_the_request_once(
        make_httpd, fail_open_once):
    """mod_dbd's connection fails to open, once (the fault library); the
    module tries again 20 ms later and gets one: the notification is 01, and
    the child lives on (closing that connection as well as letting it go
    with the request destroyed its pool twice: the child died at the end of
    the request)."""
    s = make_httpd("persist-off-retry", ONE_CONNECTION + CONTRACT_LOCATION,
                   dbd_extra=PERSIST_OFF)
    trigger = os.path.join(s.db_dir, "fail-next-open")
    s.env.update({"LD_PRELOAD": fail_open_once,
                        "K2N_TEST_FAIL_OPEN": trigger})
    s.start()
    s.expect_error(r"\[dbd:error\] .*AH00629: Can't connect to sqlite3")
    assert s.post(notification()).text == ACCEPTED_TEXT
    pids_before = children(parent_pid(s))
    for _ in range(3):
        off = s.log_offset()
        with open(trigger, "w"):
            pass
        n = notification()
        assert s.post(n).text == ACCEPTED_TEXT
        assert not os.path.exists(trigger)      # the first attempt failed
        assert s.wait_log(r"\[k2notify:warn\] .* a database connection at the "
                          r"2nd attempt", offset=off)
        assert [r["amount"] for r in s.rows(n["k2_transaction_id"])] == ["1500"]
        assert s.post(notification()).text == ACCEPTED_TEXT  # the child serves on
    assert "exit signal" not in s.errors_text()
    assert sorted(children(parent_pid(s))) == sorted(pids_before)
