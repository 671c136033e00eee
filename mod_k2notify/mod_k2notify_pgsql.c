/* mod_k2notify_pgsql.c: what PostgreSQL does its own way.
 *
 * A restarted server (or a failover) closes the pooled connections;
 * apr-util's driver then reopens a connection without a word, and the new
 * session has none of the prepared statements.  The drivers give no
 * portable error code (PostgreSQL's SQLSTATE is not passed on, and its
 * messages follow lc_messages), so nothing here reads a message: the
 * session itself is asked which statements it has.
 *
 * The record statement runs on its own (autocommit): it is run again only
 * when its first run provably did not happen (the session answers and
 * lacks the statement).  If the connection broke while it ran, it may have
 * been committed: 500, and K2's resend finds it.
 */
#include "mod_k2notify_dbd.h"

#include "apr_strings.h"

#include "http_log.h"


/* The names of the prepared statements of this PostgreSQL session, or NULL
 * if the connection does not answer. */
static apr_hash_t *k2n_pg_session_statements(k2n_db_t *db)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_hash_t *names;

    if (apr_dbd_select(db->dbd->driver, db->r->pool, db->dbd->handle, &res,
                       "SELECT name FROM pg_prepared_statements", 1) != 0) {
        return NULL;
    }
    names = apr_hash_make(db->r->pool);
    while (apr_dbd_get_row(db->dbd->driver, db->r->pool, res, &row, -1) == 0) {
        const char *name = apr_dbd_get_entry(db->dbd->driver, row, 0);

        if (name) {
            apr_hash_set(names, apr_pstrdup(db->r->pool, name),
                         APR_HASH_KEY_STRING, "");
        }
    }
    return names;
}

/* st failed on this connection: had the session lost it, or did the
 * connection break? */
static k2n_repair_e k2n_pg_repair(k2n_db_t *db, const k2n_stmt_t *st,
                                  int repeatable)
{
    apr_hash_t *present = k2n_pg_session_statements(db);
    int n;

    if (present) {
        if (apr_hash_get(present, st->label, APR_HASH_KEY_STRING)) {
            /* The statement itself failed (a constraint, a value the column
             * cannot hold): it would fail again. */
            return K2N_GIVE_UP;
        }
        /* The session lacks it, so it did not run. */
        n = k2n_db_prepare_again(db, present);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s; this database "
                      "session had lost its prepared statements (the database "
                      "restarted and the connection was reopened): %d prepared "
                      "again, running the statement again", db->err, n);
        return K2N_RUN_AGAIN;
    }
    /* The connection does not answer: it broke, maybe while st ran. */
    if (apr_dbd_check_conn(db->dbd->driver, db->r->pool, db->dbd->handle)
        != APR_SUCCESS) {
        db->err = apr_pstrcat(db->r->pool, db->err, " (the database connection "
                              "is lost)", NULL);
        return K2N_GIVE_UP;
    }
    n = k2n_db_prepare_again(db, NULL);
    if (!repeatable) {
        db->err = apr_psprintf(db->r->pool, "%s; the database connection broke "
                               "while the statement ran (it is open again, %d "
                               "statements prepared again): not run again, as it "
                               "may have been committed; K2 resends", db->err, n);
        return K2N_GIVE_UP;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s; the database "
                  "connection had broken and is open again (%d statements "
                  "prepared again): running the query again", db->err, n);
    return K2N_RUN_AGAIN;
}

const k2n_driver_t k2n_pgsql_driver = {
    .name = "pgsql",
    .repair = k2n_pg_repair,
    .record = NULL,                     /* autocommit, run again as above */
};
