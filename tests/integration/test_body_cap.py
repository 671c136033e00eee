"""K2NotifyMaxBody caps what the handler reads, whatever the Content-Length
says and whatever input filter stands in between (issue 9, defect 6): a
body that mod_deflate inflates is read whole when it fits, and refused with
413 when it inflates past the cap; the cap itself is exact to the byte.
"""
import gzip

import pytest
import requests

from conftest import AUTH, MODULES, PASSWORD, USER, form, notification

ACCEPTED = '{"status":"01","description":"Accepted"}'
TOO_LARGE = ('{"description":"Request Entity Too Large","reason":"the body is '
             'larger than K2NotifyMaxBody (%d bytes)"}')

RECORD = ('K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
          'ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT '
          '(k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency')


def capped_server(make_httpd, name, max_body, deflate=False):
    body = f"""
<Location /k2/notify>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    {RECORD}
    K2NotifyMaxBody {max_body}
    {"SetInputFilter DEFLATE" if deflate else ""}
</Location>
"""
    return make_httpd(name, body, modules=MODULES + (["deflate"] if deflate else [])).start()


def minimal(size):
    """A notification of the four required fields, padded with an unknown
    parameter to exactly size bytes."""
    n = notification(k2_account_id=None, mm_system_id=None, mp_transaction_id=None,
                     biller_number=None, transaction_date=None,
                     transaction_time=None, transaction_type=None, sender=None,
                     first_name=None, last_name=None, middle_name=None)
    body = form(n) + "&pad="
    assert len(body) <= size
    return n, body + "x" * (size - len(body))


def post(server, data, headers=None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return requests.post(server.base + "/k2/notify", data=data, headers=h,
                         auth=(USER, PASSWORD), timeout=30)


def chunks(data, size=50):
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_of_exactly_max_body_bytes_is_read_and_one_more_is_413(make_httpd, chunked):
    s = capped_server(make_httpd, "cap-exact", 200)
    n, body = minimal(200)
    r = post(s, chunks(body.encode()) if chunked else body)
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert len(s.rows(n["k2_transaction_id"])) == 1

    n, body = minimal(201)
    r = post(s, chunks(body.encode()) if chunked else body)
    assert (r.status_code, r.text) == (413, TOO_LARGE % 200)
    assert s.rows(n["k2_transaction_id"]) == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_gzipped_body_inflated_by_mod_deflate_is_read_whole(make_httpd, chunked):
    """The spec's ~330-byte form sent gzip'd in fewer bytes, with its
    Content-Length: the handler reads what mod_deflate gives it."""
    s = capped_server(make_httpd, "gz-ok", 8192, deflate=True)
    n = notification()
    raw = form(n).encode()
    packed = gzip.compress(raw)
    assert len(packed) < len(raw)
    r = post(s, chunks(packed) if chunked else packed,
             {"Content-Encoding": "gzip"})
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert [(x["ac_no"], x["amount"]) for x in s.rows(n["k2_transaction_id"])] == [
        ("A123333", "1500")]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_gzipped_body_that_inflates_past_max_body_is_413(make_httpd, chunked):
    s = capped_server(make_httpd, "gz-big", 300, deflate=True)
    n = notification(pad="x" * 3000)
    packed = gzip.compress(form(n).encode())
    assert len(packed) < 300
    r = post(s, chunks(packed) if chunked else packed,
             {"Content-Encoding": "gzip"})
    assert (r.status_code, r.text) == (413, TOO_LARGE % 300)
    assert s.rows(n["k2_transaction_id"]) == []
