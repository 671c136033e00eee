-- mod_k2notify: the PostgreSQL schema the pgsql sample configuration expects.
--   createuser k2notify; createdb -O k2notify k2
--   psql -U k2notify -d k2 -f schema-pgsql.sql
-- Every node of a multi-node set-up uses this one database: the primary key
-- on k2_transaction_id makes each payment recorded exactly once, whichever
-- node K2 reaches and however often it resends.

CREATE TABLE IF NOT EXISTS accounts (
    ac_no   text PRIMARY KEY,
    name    text
);

CREATE TABLE IF NOT EXISTS k2_transactions (
    k2_transaction_id     text PRIMARY KEY NOT NULL,
    ac_no                 text NOT NULL,
    amount                numeric(17,2) NOT NULL CHECK (amount > 0),  -- 15 digits . 2, as the module accepts
    currency              text NOT NULL,
    transaction_timestamp timestamp,       -- K2's local time, no zone
    k2_account_id         text,
    mm_system_id          text,
    mp_transaction_id     text,
    biller_number         text,
    transaction_date      text,            -- as K2 sent it, e.g. 26/4/11
    transaction_time      text,            -- as K2 sent it, e.g. 1:03 PM
    transaction_type      text,
    sender                text,
    first_name            text,
    middle_name           text,
    last_name             text,
    remote_user           text,            -- who authenticated the POST
    received_at           timestamptz NOT NULL DEFAULT now()
);
