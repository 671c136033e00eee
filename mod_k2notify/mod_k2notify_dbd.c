/* mod_k2notify_dbd.c: the module's statements, through mod_dbd.
 *
 * - Queries (the account and duplicate lookups) run on the request's pooled
 *   connection.  When one fails, the connection's driver examines it: if it
 *   had lost its prepared statements or had broken, it is repaired and the
 *   query run again (a query is safe to repeat).
 * - The record statement is committed the driver's way (a transaction and
 *   group commit on SQLite), or run on its own and run again only when its
 *   first run provably did not happen.
 * - A statement the server rolled back whole (a deadlock, a cluster's
 *   certification failure: the driver says which codes) is run again, a
 *   few times.
 *
 * What differs between drivers is in their own files (mod_k2notify_dbd.h);
 * nothing here names a driver.
 */
#include "mod_k2notify_dbd.h"

#include <string.h>

#include "apr_strings.h"
#include "apr_hash.h"

#include "http_log.h"
#include "http_request.h"

#include "k2_batch.h"                 /* k2_clock */


/* The drivers that do something their own way; any other runs statements
 * as they are and is never repaired. */
static const k2n_driver_t *const k2n_drivers[] = {
    &k2n_sqlite_driver,
    &k2n_pgsql_driver,
    &k2n_mysql_driver,
    NULL
};

static const k2n_driver_t k2n_other_driver = { .name = "(any other)" };

/* The table of the apr_dbd driver called name (DBDriver's argument). */
static const k2n_driver_t *k2n_driver_named(const char *name)
{
    int i;

    for (i = 0; k2n_drivers[i]; i++) {
        if (strcmp(k2n_drivers[i]->name, name) == 0) {
            return k2n_drivers[i];
        }
    }
    return &k2n_other_driver;
}

static const k2n_driver_t *k2n_driver_of(const apr_dbd_driver_t *driver)
{
    return k2n_driver_named(apr_dbd_name(driver));
}

/* libpq ends its messages with a newline; mysql's of a prepared statement
 * are on the statement, where apr_dbd_error does not look. */
const char *k2n_db_message(k2n_db_t *db, int rv)
{
    const char *msg = apr_dbd_error(db->dbd->driver, db->dbd->handle, rv);
    apr_size_t len;

    len = msg ? strlen(msg) : 0;
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'
                       || msg[len - 1] == ' ')) {
        len--;
    }
    return len ? apr_pstrmemdup(db->r->pool, msg, len) : "(no message)";
}

void k2n_db_failed(k2n_db_t *db, const k2n_stmt_t *st, int rv)
{
    db->rc = rv;
    db->err = apr_psprintf(db->r->pool, "%s failed (%d): %s", st->directive, rv,
                           k2n_db_message(db, rv));
}

apr_dbd_prepared_t *k2n_db_prepared(k2n_db_t *db, const k2n_stmt_t *st)
{
    apr_dbd_prepared_t *stmt = apr_hash_get(db->dbd->prepared, st->label,
                                            APR_HASH_KEY_STRING);

    if (!stmt) {
        db->rc = -1;
        db->err = apr_psprintf(db->r->pool, "the %s statement is not prepared "
                               "on this database connection (see mod_dbd's "
                               "errors): %s", st->directive, st->sql);
    }
    return stmt;
}

/* A query with random=1: the drivers then fetch the whole result inside
 * pselect, so a failed query is reported there (pgsql's sequential mode
 * reports a server error as "no more rows": an account not found), and
 * nothing is left open: SQLite's statement is reset (an open read cursor
 * makes the next write fail with "database is locked"), pgsql has no result
 * pending, mysql has stored it client-side.  Its rows are read by number
 * (k2n_row). */
static apr_status_t k2n_select(k2n_db_t *db, const k2n_stmt_t *st,
                               const char **args, apr_dbd_results_t **res)
{
    apr_dbd_prepared_t *stmt = k2n_db_prepared(db, st);
    int rv;

    *res = NULL;
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pselect(db->dbd->driver, db->r->pool, db->dbd->handle, res,
                         stmt, 1, st->nfields, args);
    if (rv != 0) {
        k2n_db_failed(db, st, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t k2n_db_query(k2n_db_t *db, const k2n_stmt_t *st,
                              const char **args, int *nrows)
{
    apr_dbd_prepared_t *stmt = k2n_db_prepared(db, st);
    int rv;

    *nrows = 0;
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pquery(db->dbd->driver, db->r->pool, db->dbd->handle, nrows,
                        stmt, st->nfields, args);
    if (rv != 0) {
        k2n_db_failed(db, st, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Row n (counted from 1) of a result of k2n_select: 0, or -1 past the last.
 * Numbered rows are what every driver reads in a random-access result:
 * mysql's answers "no row" to the -1 ("the next one") that SQLite and pgsql
 * also take. */
static int k2n_row(k2n_db_t *db, apr_dbd_results_t *res, apr_dbd_row_t **row,
                   int n)
{
    return apr_dbd_get_row(db->dbd->driver, db->r->pool, res, row, n) == 0
           ? 0 : -1;
}

/* -- repairing a connection ------------------------------------------------ */

/* Statements live as long as the connection, in its pool. */
int k2n_db_prepare_again(k2n_db_t *db, apr_hash_t *present)
{
    const apr_array_header_t *all = k2n_config_statements();
    int i, n = 0;

    for (i = 0; i < all->nelts; i++) {
        const k2n_stmt_t *st = APR_ARRAY_IDX(all, i, const k2n_stmt_t *);
        apr_dbd_prepared_t *stmt = NULL;
        int rv;

        if (!apr_hash_get(db->dbd->prepared, st->label, APR_HASH_KEY_STRING)
            || (present && apr_hash_get(present, st->label, APR_HASH_KEY_STRING))) {
            continue;                   /* not this server's, or still there */
        }
        rv = apr_dbd_prepare(db->dbd->driver, db->dbd->pool, db->dbd->handle,
                             st->sql, st->label, &stmt);
        if (rv != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, db->r, "cannot prepare the "
                          "%s statement again (%d): %s", st->directive, rv,
                          k2n_db_message(db, rv));
            continue;
        }
        apr_hash_set(db->dbd->prepared, st->label, APR_HASH_KEY_STRING, stmt);
        n++;
    }
    return n;
}

apr_status_t k2n_db_new_session(k2n_db_t *db)
{
    const k2n_srv_conf *sc = ap_get_module_config(db->r->server->module_config,
                                                  &k2notify_module);
    const apr_array_header_t *init = k2n_dbd_directives_seen()
                                     ? sc->dbd_init_sql : NULL;
    int i;

    /* in mod_dbd's order: DBDInitSQL, then the statements */
    for (i = 0; init && i < init->nelts; i++) {
        const char *sql = APR_ARRAY_IDX(init, i, const char *);
        int rv = k2n_db_exec(db, sql);

        if (rv != 0) {
            db->err = apr_psprintf(db->r->pool, "%s; then DBDInitSQL \"%s\" "
                                   "failed on the reopened session (%d): %s",
                                   db->err, sql, rv, k2n_db_message(db, rv));
            return APR_EGENERAL;
        }
    }
    k2n_db_prepare_again(db, NULL);
    return APR_SUCCESS;
}

/* st failed with db->err: repair the connection if it lost st or broke, and
 * say whether to run st again (repeatable: st is safe to run twice). */
static k2n_repair_e k2n_repair(k2n_db_t *db, const k2n_stmt_t *st, int repeatable)
{
    if (db->rc == -1 || !db->drv->repair) {
        return K2N_GIVE_UP;             /* never prepared: nothing ran */
    }
    return db->drv->repair(db, st, repeatable);
}

/* A statement the server rolled back is run again only while this long has
 * not passed since its first run: a lock wait timeout comes after the
 * server's own wait (innodb_lock_wait_timeout, 50 s by default), and K2
 * waits for no reply that long. */
#define K2N_RERUN_WITHIN apr_time_from_sec(5)

/* st failed with db->rc: 1 if the server rolled it back whole and it may
 * run again (*reruns: how often it did already, since: its first run; the
 * n-th waits 2^(n-1) ms, so that what it met, a cluster's write or a lock
 * holder, can finish). */
static int k2n_rolled_back(k2n_db_t *db, const k2n_stmt_t *st, int *reruns,
                           apr_time_t since)
{
    const int *code;

    for (code = db->drv->rolled_back; code && *code; code++) {
        if (*code != db->rc || *reruns >= db->drv->reruns) {
            continue;
        }
        if (k2_clock() - since >= K2N_RERUN_WITHIN) {
            db->err = apr_psprintf(db->r->pool, "%s; rolled back by the "
                                   "database, but not run again: its first run "
                                   "was %" APR_TIME_T_FMT " s ago", db->err,
                                   apr_time_sec(k2_clock() - since));
            return 0;
        }
        ++*reruns;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, db->r, "%s; rolled back by the "
                      "database: running %s again (%d of at most %d)", db->err,
                      st->directive, *reruns, db->drv->reruns);
        apr_sleep(apr_time_from_msec(1) << (*reruns - 1));
        return 1;
    }
    return 0;
}

/* Run st, a query (res) or a statement that returns no rows (*nrows): again
 * when the server rolled it back, and once more when the connection is
 * repaired. */
static apr_status_t k2n_run(k2n_db_t *db, const k2n_stmt_t *st,
                            const char **args, apr_dbd_results_t **res,
                            int *nrows)
{
    apr_time_t since = k2_clock();
    int reruns = 0, repaired = 0;

    for (;;) {
        if ((res ? k2n_select(db, st, args, res)
                 : k2n_db_query(db, st, args, nrows)) == APR_SUCCESS) {
            return APR_SUCCESS;
        }
        if (k2n_rolled_back(db, st, &reruns, since)) {
            continue;
        }
        if (repaired++ || k2n_repair(db, st, res != NULL) != K2N_RUN_AGAIN) {
            return APR_EGENERAL;
        }
    }
}

/* A query: safe to run again. */
static apr_status_t k2n_read(k2n_db_t *db, const k2n_stmt_t *st,
                             const char **args, apr_dbd_results_t **res)
{
    return k2n_run(db, st, args, res, NULL);
}

int k2n_db_exec(k2n_db_t *db, const char *sql)
{
    int nrows = 0;

    return apr_dbd_query(db->dbd->driver, db->dbd->handle, &nrows, sql);
}

/* -- the calls of the handler -------------------------------------------- */

/* A connection taken with ap_dbd_open() goes back to mod_dbd's pool with
 * the request. */
typedef struct {
    server_rec *s;
    ap_dbd_t *dbd;
} k2n_opened_t;

static apr_status_t k2n_db_release(void *data)
{
    k2n_opened_t *o = data;

    k2n_dbd_close(o->s, o->dbd);
    return APR_SUCCESS;
}

/* mod_dbd opens a connection, and prepares every statement on it, when a
 * child starts and when its pool grows.  SQLite refuses that with "database
 * is locked" while another process sets up the database's WAL index (the
 * first to open it after the last one closed it: on every graceful restart
 * of a prefork server, five new children at once), and mod_dbd then gives
 * the request no connection.  A failure that came fast is tried again, a
 * few times, a few ms apart; one that took long (a database server that
 * does not answer) is not. */
#define K2N_OPEN_TRIES 4
#define K2N_OPEN_FAST apr_time_from_msec(100)

int k2n_db_open(k2n_db_t *db, request_rec *r)
{
    apr_time_t t0 = k2_clock();
    int tries = 1;

    memset(db, 0, sizeof(*db));
    db->r = r;
    db->dbd = k2n_dbd_acquire ? k2n_dbd_acquire(r) : NULL;
    while (!db->dbd && k2n_dbd_open && tries < K2N_OPEN_TRIES
           && k2_clock() - t0 < K2N_OPEN_FAST) {
        apr_sleep(apr_time_from_msec(10) << tries);     /* 20, 40, 80 ms */
        t0 = k2_clock();
        tries++;
        if ((db->dbd = k2n_dbd_open(r->pool, r->server)) != NULL) {
            /* A once-only connection (DBDPersist Off) is made in a subpool
             * of the pool given, and goes with the request as mod_dbd's own
             * do: closing it too would destroy that subpool twice.  A pooled
             * one goes back to mod_dbd's pool after the request's other
             * cleanups (its results) have run. */
            if (!apr_pool_is_ancestor(r->pool, db->dbd->pool)) {
                k2n_opened_t *o = apr_palloc(r->pool, sizeof(*o));

                o->s = r->server;
                o->dbd = db->dbd;
                apr_pool_cleanup_register(r->pool, o, k2n_db_release,
                                          apr_pool_cleanup_null);
            }
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "a database "
                          "connection at the %d%s attempt (mod_dbd's error about "
                          "the first is logged above)", tries,
                          tries == 2 ? "nd" : tries == 3 ? "rd" : "th");
        }
    }
    if (!db->dbd) {
        db->err = "no database connection (mod_dbd's own error is logged above)";
        return 0;
    }
    db->drv = k2n_driver_of(db->dbd->driver);
    return 1;
}

apr_status_t k2n_db_exists(k2n_db_t *db, const k2n_stmt_t *st,
                           const char **args, int *found)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    int ntuples;

    *found = 0;
    if (k2n_read(db, st, args, &res) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    ntuples = apr_dbd_num_tuples(db->dbd->driver, res);
    if (ntuples >= 0) {
        *found = ntuples > 0;
        return APR_SUCCESS;
    }
    /* A driver that cannot count: is there a first row? */
    *found = k2n_row(db, res, &row, 1) == 0;
    return APR_SUCCESS;
}

apr_status_t k2n_db_first_row(k2n_db_t *db, const k2n_stmt_t *st,
                              const char **args, int ncols, const char **cols,
                              int *found)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    int i, n;

    *found = 0;
    if (k2n_read(db, st, args, &res) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (k2n_row(db, res, &row, 1) != 0) {
        return APR_SUCCESS;
    }
    *found = 1;
    for (i = 0; i < ncols; i++) {
        const char *v = apr_dbd_get_entry(db->dbd->driver, row, i);

        cols[i] = v ? apr_pstrdup(db->r->pool, v) : NULL;
    }
    /* read to the end, keep the first (pgsql clears the result then) */
    for (n = 2; k2n_row(db, res, &row, n) == 0; n++) {
    }
    return APR_SUCCESS;
}

apr_status_t k2n_db_stored_row(k2n_db_t *db, const k2n_stmt_t *st,
                               const char **args, int ncols, const char **cols,
                               int *found)
{
    int reread;

    for (reread = 0;; reread++) {
        if (k2n_db_first_row(db, st, args, ncols, cols, found) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (*found || reread == db->drv->rereads) {
            break;
        }
        apr_sleep(apr_time_from_msec(1) << reread);
    }
    if (*found && reread) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, db->r, "%s found the stored "
                      "row at its read number %d: the record statement had "
                      "met it before its commit could be read", st->directive,
                      reread + 1);
    }
    return APR_SUCCESS;
}

apr_status_t k2n_db_record(k2n_db_t *db, const k2n_stmt_t *st,
                           const char **args, int *nrows)
{
    db->batch_size = 1;
    if (db->drv->record) {
        return db->drv->record(db, st, args, nrows);
    }
    return k2n_run(db, st, args, NULL, nrows);
}

const char *k2n_db_resend_unproven(const k2n_db_t *db)
{
    return db->drv->resend_unproven;
}

const char *k2n_dbd_conf_problem(apr_pool_t *p, server_rec *s,
                                 const k2n_dir_conf *conf, const char *section)
{
    const k2n_srv_conf *sc = ap_get_module_config(s->module_config,
                                                  &k2notify_module);
    const k2n_driver_t *drv;
    const k2n_stmt_t *st = conf->account ? conf->account
                         : conf->record ? conf->record : conf->duplicate;

    if (!k2n_dbd_directives_seen() || conf->handler != 1) {
        return NULL;                    /* unknown, or not served here */
    }
    if (!sc->dbd_driver) {              /* every notification would be 500 */
        return st ? apr_psprintf(p, "%s has 'SetHandler k2notify' and %s (%s), "
                                 "but its server, %s, has no DBDriver: name the "
                                 "database with DBDriver and DBDParams (mod_dbd) "
                                 "in that server, or in the main server",
                                 section, st->directive, st->where,
                                 k2n_server_name(p, s))
                  : NULL;
    }
    drv = k2n_driver_named(sc->dbd_driver);
    if (drv->resend_unproven && conf->record && !conf->duplicate) {
        return apr_psprintf(p, "%s has " K2N_DIR_RECORD_QUERY " (%s) but no "
                            K2N_DIR_DUPLICATE_QUERY ", which DBDriver %s needs: "
                            "%s; add " K2N_DIR_DUPLICATE_QUERY " %s", section,
                            conf->record->where, drv->name, drv->resend_unproven,
                            k2n_conf_format(conf) == K2N_FORMAT_FORM
                            ? "\"SELECT ac_no, amount FROM k2_transactions WHERE "
                              "k2_transaction_id = %s\""
                            : "(the stored amount of the event whose id is bound)");
    }
    return drv->check ? drv->check(p, sc, conf, section) : NULL;
}

void k2n_dbd_register_hooks(apr_pool_t *p)
{
    k2n_sqlite_register_hooks(p);
}
