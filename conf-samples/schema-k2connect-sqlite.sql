-- mod_k2notify, K2 Connect webhooks: the SQLite schema that
-- k2notify-k2connect.conf expects.
--   sqlite3 /var/lib/k2notify/k2.db < schema-k2connect-sqlite.sql
-- It can live in the same database file as schema-sqlite.sql (the form API's
-- tables): the table names differ.
PRAGMA journal_mode = WAL;

-- The biller's customer accounts, as in schema-sqlite.sql (only used by the
-- optional K2NotifyAccountQuery of the sample).
CREATE TABLE IF NOT EXISTS accounts (
    ac_no   TEXT PRIMARY KEY NOT NULL,
    name    TEXT
);

-- One row per K2 Connect event: payments received (buygoods, b2b, m2m,
-- card), their reversals (an event of its own, with its own id and the
-- reversed payment's reference), and STK push results (incoming_payment,
-- successful or not).  The primary key on the event id is what makes a
-- resend a duplicate ("ON CONFLICT (event_id) DO NOTHING" affects 0 rows):
-- K2 may deliver an event twice, and out of order.  NOT NULL: in SQLite a
-- TEXT primary key accepts NULL, and NULLs never conflict, so an event
-- without an id would be recorded again at every delivery (the module
-- refuses such an event with 400 before it gets here).
-- Values are K2's text as received (amounts are strings in K2's JSON:
-- "100.0"); SQLite's NUMERIC affinity would turn them into binary floats.
CREATE TABLE IF NOT EXISTS k2_events (
    event_id          TEXT PRIMARY KEY NOT NULL,  -- /id, or /data/id for an STK result; TransID (Daraja)
    topic             TEXT NOT NULL,     -- /topic, or /data/type (incoming_payment)
    reference         TEXT,              -- the M-PESA reference (none for m2m)
    amount            TEXT,              -- as K2 wrote it; NULL for a failed STK push
    currency          TEXT,
    status            TEXT,              -- Received, Complete, Reversed; STK: Success, Failed
    till_number       TEXT,
    sender_phone      TEXT,
    sender_first_name TEXT,
    sender_last_name  TEXT,
    origination_time  TEXT,              -- when M-PESA took the payment (K2's ISO 8601)
    k2_created_at     TEXT,              -- when K2 made the event (STK: initiation time)
    raw_body          TEXT NOT NULL,     -- the request body exactly as received and signed
    remote_user       TEXT,              -- NULL: K2 Connect authenticates by signature
    received_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- A reversal names the payment it reverses by its M-PESA reference.
CREATE INDEX IF NOT EXISTS k2_events_reference ON k2_events (reference);
