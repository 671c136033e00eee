-- mod_k2notify: the MySQL / MariaDB schema the mysql sample configuration
-- expects (docs/mysql.md).  As an administrator, in the database k2:
--   mariadb k2 < schema-mysql.sql
-- It stops (error 1644) on a server that is not in strict mode: without it
-- MariaDB and MySQL store a value that does not fit its column cut or
-- clipped, with a warning, and the payment would be answered 01 for a row
-- that is not what K2 sent.  (The IF block is MariaDB's; on MySQL 8, check
-- SELECT @@GLOBAL.sql_mode by hand and delete the block.)

DELIMITER //
IF @@GLOBAL.sql_mode NOT LIKE '%STRICT_TRANS_TABLES%'
   AND @@GLOBAL.sql_mode NOT LIKE '%STRICT_ALL_TABLES%' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'mod_k2notify: this server is not in strict mode (sql_mode has neither STRICT_TRANS_TABLES nor STRICT_ALL_TABLES): set it in the server configuration first';
END IF //
DELIMITER ;

-- The biller's customer accounts (in a real deployment: the biller's own
-- table or a view of it; K2NotifyAccountQuery only needs one row per ac_no).
CREATE TABLE IF NOT EXISTS accounts (
    ac_no   VARCHAR(64) NOT NULL PRIMARY KEY,
    name    VARCHAR(255)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per K2 payment.  The primary key on k2_transaction_id is what
-- makes a resend a duplicate: "ON DUPLICATE KEY UPDATE k2_transaction_id =
-- k2_transaction_id" affects 0 rows.  It must be the table's only unique
-- key: MySQL's ON DUPLICATE KEY fires on any of them (docs/mysql.md).
-- k2_transaction_id compares byte for byte (utf8mb4_nopad_bin): under a _ci
-- collation "t1" and "T1" would be one key, and under any PAD SPACE one
-- (utf8mb4_bin too) "t1 " and "t1" (on MySQL 8: utf8mb4_0900_bin).  amount
-- is DECIMAL(17,2): every amount the module accepts (15 digits before the
-- point, 2 after), exact.
CREATE TABLE IF NOT EXISTS k2_transactions (
    k2_transaction_id     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY,
    ac_no                 VARCHAR(64) NOT NULL,
    amount                DECIMAL(17,2) NOT NULL CHECK (amount > 0),
    currency              VARCHAR(8) NOT NULL,
    transaction_timestamp DATETIME,                 -- K2's local time, no zone
    k2_account_id         VARCHAR(64),
    mm_system_id          VARCHAR(64),
    mp_transaction_id     VARCHAR(64),
    biller_number         VARCHAR(64),
    transaction_date      VARCHAR(32),              -- as K2 sent it, e.g. 26/4/11
    transaction_time      VARCHAR(32),              -- as K2 sent it, e.g. 1:03 PM
    transaction_type      VARCHAR(64),
    sender                VARCHAR(64),
    first_name            VARCHAR(255),
    middle_name           VARCHAR(255),
    last_name             VARCHAR(255),
    remote_user           VARCHAR(255),             -- who authenticated the POST
    received_at           TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
