/* mod_k2notify_dbd.h: private header of the database files.
 *
 * mod_k2notify_dbd.c runs the statements through mod_dbd and knows nothing
 * of any one database; what differs between apr_dbd drivers (how a
 * connection that failed is repaired, how the record statement is
 * committed) lives in one file per driver, behind a table of functions, as
 * apr_dbd's own drivers do:
 *
 *   mod_k2notify_sqlite.c   the transaction, the k2notify-db lock, group commit
 *   mod_k2notify_pgsql.c    a session that lost its prepared statements
 *   mod_k2notify_mysql.c    a session reopened by the client library, a
 *                           0-row result that proves nothing, deadlocks
 *
 * A driver without a table (odbc, oracle, ...) runs every statement as it
 * is and never repairs a connection.
 */
#ifndef MOD_K2NOTIFY_DBD_H
#define MOD_K2NOTIFY_DBD_H

#include "apr_hash.h"

#include "mod_k2notify.h"

typedef enum { K2N_GIVE_UP = 0, K2N_RUN_AGAIN } k2n_repair_e;

typedef struct k2n_db_lock_t k2n_db_lock_t;    /* mod_k2notify_sqlite.c */

/* What one apr_dbd driver does its own way. */
struct k2n_driver_t {
    const char *name;                   /* apr_dbd_name() of the driver */
    /* st failed on db (db->rc and db->err say how): repair the connection
     * if it lost st or broke, and say whether to run st again
     * (repeatable: st is safe to run twice, a query).  NULL: give up. */
    k2n_repair_e (*repair)(k2n_db_t *db, const k2n_stmt_t *st,
                           int repeatable);
    /* Run the record statement and commit it; *nrows is the number of rows
     * it affected.  NULL: run it on its own (autocommit), and again only
     * when repair says its first run provably did not happen. */
    apr_status_t (*record)(k2n_db_t *db, const k2n_stmt_t *st,
                           const char **args, int *nrows);
    /* NULL when a record statement that affected no row proves a resend
     * (ON CONFLICT names the transaction's key); else why it does not, for
     * the log and configtest: 0 rows must then be verified by
     * K2NotifyDuplicateQuery before a 01. */
    const char *resend_unproven;
    /* A record statement that affected no row because its row is there may
     * not find it in a read that follows at once: the stored row's lock was
     * released before its commit could be seen by a new read (MariaDB 10.11:
     * 2 of 144,000 racing resends on a loaded machine, seen 1 ms later; 1 of
     * 1,200 posts in a CI run).  Its K2NotifyDuplicateQuery is read again up to this many
     * times, 1, 2, 4 ... ms apart, before the row counts as absent.  0:
     * read once (PostgreSQL's snapshot sees every commit whose lock is
     * released; SQLite commits under the k2notify-db lock). */
    int rereads;
    /* The driver's codes of a statement the server rolled back whole (a
     * deadlock, a lock wait timeout, a cluster's certification failure),
     * 0-terminated: safe to run again, up to reruns times.  NULL: none. */
    const int *rolled_back;
    int reruns;
    /* Why configtest refuses section (conf merged as a request sees it) of
     * a server whose mod_dbd directives sc notes (k2n_dbd_directives_seen)
     * name this driver, or NULL.  NULL: no check of its own. */
    const char *(*check)(apr_pool_t *p, const k2n_srv_conf *sc,
                         const k2n_dir_conf *conf, const char *section);
};

extern const k2n_driver_t k2n_sqlite_driver;
extern const k2n_driver_t k2n_pgsql_driver;
extern const k2n_driver_t k2n_mysql_driver;

/* -- for the drivers (mod_k2notify_dbd.c) ---------------------------------- */

/* The driver's message for the last failure (rv), without a trailing
 * newline, in the request's pool. */
const char *k2n_db_message(k2n_db_t *db, int rv);

/* Note that st failed with the driver's code rv: db->rc and db->err. */
void k2n_db_failed(k2n_db_t *db, const k2n_stmt_t *st, int rv);

/* st's statement on this connection, or NULL (db->rc = -1, db->err) when
 * mod_dbd could not prepare it. */
apr_dbd_prepared_t *k2n_db_prepared(k2n_db_t *db, const k2n_stmt_t *st);

/* Prepare again, on this connection, the module's statements that mod_dbd
 * prepared on it and that the session does not have (present: the labels
 * it still has; NULL: it has none).  Returns how many were prepared. */
int k2n_db_prepare_again(k2n_db_t *db, apr_hash_t *present);

/* The connection is a new session (its client library reopened it): prepare
 * every statement mod_dbd gave it again and run the server's DBDInitSQL
 * statements again, as mod_dbd does on a connection it opens.  Returns
 * APR_SUCCESS, or an error with db->err set (what failed, and the
 * statement's first failure before it). */
apr_status_t k2n_db_new_session(k2n_db_t *db);

/* A statement without parameters (BEGIN, COMMIT...): 0 or the driver's
 * code. */
int k2n_db_exec(k2n_db_t *db, const char *sql);

/* Run a prepared statement that returns no rows once: *nrows affected. */
apr_status_t k2n_db_query(k2n_db_t *db, const k2n_stmt_t *st,
                          const char **args, int *nrows);

/* The SQLite driver's hooks: the k2notify-db lock and the group-commit
 * queues. */
void k2n_sqlite_register_hooks(apr_pool_t *p);

#endif /* MOD_K2NOTIFY_DBD_H */
