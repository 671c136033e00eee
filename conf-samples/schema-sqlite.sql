-- mod_k2notify: the SQLite schema the sample configuration expects.
--   sqlite3 /var/lib/k2notify/k2.db < schema-sqlite.sql
-- WAL is stored in the database file: set once here, it lets readers and the
-- writer of several httpd children work side by side.
PRAGMA journal_mode = WAL;

-- The biller's customer accounts (in a real deployment: the biller's own
-- table or a view of it; K2NotifyAccountQuery only needs one row per ac_no).
CREATE TABLE IF NOT EXISTS accounts (
    ac_no   TEXT PRIMARY KEY NOT NULL,
    name    TEXT
);

-- One row per K2 payment.  The primary key on k2_transaction_id is what
-- makes a resend a duplicate ("ON CONFLICT (k2_transaction_id) DO NOTHING"
-- affects 0 rows); NOT NULL, as SQLite's TEXT primary keys accept NULL, which
-- never conflicts.  Amounts are kept as TEXT: SQLite's NUMERIC affinity would
-- turn "1500.10" into a binary float.
CREATE TABLE IF NOT EXISTS k2_transactions (
    k2_transaction_id     TEXT PRIMARY KEY NOT NULL,
    ac_no                 TEXT NOT NULL,
    amount                TEXT NOT NULL,
    currency              TEXT NOT NULL,
    transaction_timestamp TEXT,          -- ISO 8601, K2's local time
    k2_account_id         TEXT,
    mm_system_id          TEXT,
    mp_transaction_id     TEXT,
    biller_number         TEXT,
    transaction_date      TEXT,          -- as K2 sent it, e.g. 26/4/11
    transaction_time      TEXT,          -- as K2 sent it, e.g. 1:03 PM
    transaction_type      TEXT,
    sender                TEXT,
    first_name            TEXT,
    middle_name           TEXT,
    last_name             TEXT,
    remote_user           TEXT,          -- who authenticated the POST
    received_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
