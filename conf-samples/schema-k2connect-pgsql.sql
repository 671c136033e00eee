-- mod_k2notify, K2 Connect webhooks: the PostgreSQL schema that
-- k2notify-k2connect-pgsql.conf expects.
--   psql -U k2notify -d k2 -f schema-k2connect-pgsql.sql
-- It can live in the same database as schema-pgsql.sql (the form API's
-- tables).  Every node of a multi-node set-up uses this one database.

CREATE TABLE IF NOT EXISTS accounts (
    ac_no   text PRIMARY KEY,
    name    text
);

-- One row per K2 Connect event (payments received, reversals, STK push
-- results); a resend of an event affects 0 rows.  See
-- schema-k2connect-sqlite.sql for what each column holds.  The amount is an
-- exact decimal (K2 writes "100.0"; mod_dbd binds every value as varchar,
-- hence CAST(%s AS numeric) in the statement).  K2's times stay text, as K2
-- wrote them: a timestamp that did not parse would refuse the payment.
CREATE TABLE IF NOT EXISTS k2_events (
    event_id          text PRIMARY KEY NOT NULL,
    topic             text NOT NULL,
    reference         text,
    amount            numeric CHECK (amount >= 0),
    currency          text,
    status            text,
    till_number       text,
    sender_phone      text,
    sender_first_name text,
    sender_last_name  text,
    origination_time  text,
    k2_created_at     text,
    raw_body          text NOT NULL,
    remote_user       text,
    received_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS k2_events_reference ON k2_events (reference);
