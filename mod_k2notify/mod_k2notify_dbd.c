/* mod_k2notify_dbd.c: the module's statements, through mod_dbd.
 *
 * - Queries (the account and duplicate lookups) run on the request's pooled
 *   connection.  When one fails, the connection is examined: if it had lost
 *   its prepared statements or had broken, it is repaired and the query run
 *   again (a query is safe to repeat).
 * - The record statement on PostgreSQL (and any server database) runs the
 *   same way, but is run again only when its first run provably did not
 *   happen: the session answers and lacks the statement.  If the connection
 *   broke while it ran, it may have been committed: 500, and K2 resends.
 * - The record statement on SQLite runs in an explicit transaction, under
 *   the cross-process lock "k2notify-db" (so that the writers of several
 *   httpd children never meet SQLITE_BUSY and the driver's 100 ms sleeps),
 *   and, in a threaded MPM, shares it with every notification of the child
 *   that queued while the previous one committed (group commit, k2_batch.c):
 *   one fsync for many payments.
 *
 * The drivers give no portable error code (PostgreSQL's SQLSTATE is not
 * passed on, and its messages follow lc_messages), so nothing here reads a
 * PostgreSQL message: the session itself is asked which statements it has.
 * SQLite's messages are fixed English strings and are read.
 */
#include <string.h>

#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_global_mutex.h"
#include "apr_shm.h"

#include "ap_mpm.h"
#include "http_request.h"
#include "util_mutex.h"

#include "mod_k2notify.h"
#include "k2_batch.h"

/* apr-util's sqlite3 driver returns SQLite's own codes. */
#define K2N_SQLITE_ERROR 1
#define K2N_SQLITE_SCHEMA 17
#define K2N_SQLITE_ROW 100

#define K2N_SQLITE_BUSY 5

/* The k2notify-db lock and what its holders share.  Both are made once per
 * httpd parent, in its process pool, and outlive graceful restarts: the
 * children of the old and the new generation write the same database
 * (and an old child still finishing a notification must not find the lock
 * destroyed under it). */
typedef struct {
    apr_time_t busy_since;              /* when a BEGIN IMMEDIATE last failed
                                         * on a lock held outside Apache, or 0;
                                         * read and written under the lock */
} k2n_db_shared_t;

typedef struct {
    apr_global_mutex_t *mutex;
    apr_shm_t *shm;
} k2n_db_lock_t;

#define K2N_DB_LOCK_KEY "mod_k2notify: the k2notify-db lock"

static apr_global_mutex_t *k2n_db_mutex = NULL;
static k2n_db_shared_t *k2n_db_shared = NULL;

typedef enum { K2N_GIVE_UP = 0, K2N_RUN_AGAIN } k2n_repair_e;

/* One record statement to commit, with its values. */
typedef struct {
    const k2n_stmt_t *st;
    const char **args;
    apr_time_t since;                   /* when it was submitted */
} k2n_write_t;

static int k2n_is(const k2n_db_t *db, const char *driver)
{
    return strcmp(apr_dbd_name(db->dbd->driver), driver) == 0;
}

/* The driver's message for the last failure, without a trailing newline
 * (libpq ends its messages with one). */
static const char *k2n_message(k2n_db_t *db, int rv)
{
    const char *msg = apr_dbd_error(db->dbd->driver, db->dbd->handle, rv);
    apr_size_t len;

    if (!msg) {
        return "(no message)";
    }
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'
                       || msg[len - 1] == ' ')) {
        len--;
    }
    return apr_pstrmemdup(db->r->pool, msg, len);
}

static void k2n_failed(k2n_db_t *db, const k2n_stmt_t *st, int rv)
{
    db->rc = rv;
    db->err = apr_psprintf(db->r->pool, "%s failed (%d): %s", st->directive, rv,
                           k2n_message(db, rv));
}

static apr_dbd_prepared_t *k2n_prepared(k2n_db_t *db, const k2n_stmt_t *st)
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

/* A query with random=1: both drivers then fetch the whole result inside
 * pselect, so a failed query is reported there (pgsql's sequential mode
 * reports a server error as "no more rows": an account not found), and
 * nothing is left open: SQLite's statement is reset (an open read cursor
 * makes the next write fail with "database is locked"), pgsql has no result
 * pending. */
static apr_status_t k2n_select(k2n_db_t *db, const k2n_stmt_t *st,
                               const char **args, apr_dbd_results_t **res)
{
    apr_dbd_prepared_t *stmt = k2n_prepared(db, st);
    int rv;

    *res = NULL;
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pselect(db->dbd->driver, db->r->pool, db->dbd->handle, res,
                         stmt, 1, st->nfields, args);
    if (rv != 0) {
        k2n_failed(db, st, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t k2n_query(k2n_db_t *db, const k2n_stmt_t *st,
                              const char **args, int *nrows)
{
    apr_dbd_prepared_t *stmt = k2n_prepared(db, st);
    int rv;

    *nrows = 0;
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pquery(db->dbd->driver, db->r->pool, db->dbd->handle, nrows,
                        stmt, st->nfields, args);
    if (rv != 0) {
        k2n_failed(db, st, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* -- repairing a connection ------------------------------------------------ */

/* Prepare again, on this connection, the module's statements that mod_dbd
 * prepared on it (this server's, all of them) and that the session does
 * not have: present lists those it has (NULL: it has none).  Statements
 * live as long as the connection, in its pool. */
static int k2n_prepare_again(k2n_db_t *db, apr_hash_t *present)
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
                          k2n_message(db, rv));
            continue;
        }
        apr_hash_set(db->dbd->prepared, st->label, APR_HASH_KEY_STRING, stmt);
        n++;
    }
    return n;
}

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

/* PostgreSQL: st failed on this connection.  A restarted server (or a
 * failover) closes the pooled connections; apr-util's driver then reopens
 * a connection without a word, and the new session has none of the
 * prepared statements. */
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
        n = k2n_prepare_again(db, present);
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
    n = k2n_prepare_again(db, NULL);
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

/* SQLite: apr-util's driver prepares with the legacy sqlite3_prepare(),
 * whose statements expire for good when the schema changes (a CREATE
 * TABLE, VACUUM or ALTER by anyone): "database schema has changed", then
 * "not an error" (with SQLITE_ERROR) on every later use.  "not an error"
 * with SQLITE_ROW is a statement that returned a row: not this. */
static int k2n_sqlite_expired(int rc, const char *msg)
{
    return rc == K2N_SQLITE_SCHEMA
           || (rc == K2N_SQLITE_ERROR && (strstr(msg, "schema has changed")
                                          || strcmp(msg, "not an error") == 0));
}

/* SQLite opens a file it cannot write read-only, silently, and mod_dbd
 * keeps that connection: say what it takes to recover. */
static const char *k2n_sqlite_hint(const char *msg)
{
    return strstr(msg, "readonly database")
           ? " (this pooled connection was opened while the database file or "
             "its directory was not writable by the httpd user, and stays "
             "read-only: fix the permissions, then apachectl graceful)"
           : "";
}

static k2n_repair_e k2n_sqlite_repair(k2n_db_t *db)
{
    const char *msg = k2n_message(db, db->rc);
    int n;

    db->err = apr_pstrcat(db->r->pool, db->err, k2n_sqlite_hint(msg), NULL);
    if (!k2n_sqlite_expired(db->rc, msg)) {
        return K2N_GIVE_UP;
    }
    n = k2n_prepare_again(db, NULL);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s; the connection's "
                  "prepared statements expired (the database schema changed): "
                  "%d prepared again, running the statement again", db->err, n);
    return K2N_RUN_AGAIN;
}

/* st failed with db->err: repair the connection if it lost st or broke, and
 * say whether to run st again (repeatable: st is safe to run twice). */
static k2n_repair_e k2n_repair(k2n_db_t *db, const k2n_stmt_t *st, int repeatable)
{
    if (db->rc == -1) {
        return K2N_GIVE_UP;             /* never prepared: nothing ran */
    }
    if (k2n_is(db, "pgsql")) {
        return k2n_pg_repair(db, st, repeatable);
    }
    if (k2n_is(db, "sqlite3")) {
        return repeatable ? k2n_sqlite_repair(db) : K2N_GIVE_UP;
    }
    return K2N_GIVE_UP;
}

/* A query, run again once when the connection is repaired. */
static apr_status_t k2n_read(k2n_db_t *db, const k2n_stmt_t *st,
                             const char **args, apr_dbd_results_t **res)
{
    if (k2n_select(db, st, args, res) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (k2n_repair(db, st, 1) != K2N_RUN_AGAIN) {
        return APR_EGENERAL;
    }
    return k2n_select(db, st, args, res);
}

/* -- SQLite: the transaction, the lock and group commit ------------------- */

/* A statement of the transaction itself: 0, or the driver's code. */
static int k2n_exec(k2n_db_t *db, const char *sql)
{
    int nrows = 0;

    return apr_dbd_query(db->dbd->driver, db->dbd->handle, &nrows, sql);
}

/* Undo what one notification's statement did in the open transaction:
 * back to its savepoint; or, when it ran first (no savepoint: nothing else
 * is in the transaction), roll the transaction back and open a new one.
 * Returns 0, or -1 when the transaction is gone and cannot be reopened. */
static int k2n_sqlite_undo(k2n_db_t *db, int first)
{
    if (first) {
        k2n_exec(db, "ROLLBACK");
        return k2n_exec(db, "BEGIN IMMEDIATE") == 0 ? 0 : -1;
    }
    if (k2n_exec(db, "ROLLBACK TO k2notify") != 0
        || k2n_exec(db, "RELEASE k2notify") != 0) {
        return -1;                      /* a RAISE(ROLLBACK) ended it */
    }
    return 0;
}

/* Run one notification's statement inside the open transaction so that
 * whatever it did is undone if it fails (SQLite itself only backs out the
 * failing statement, and not always all of it): the first statement of a
 * transaction alone, rolled back with the transaction; any later one
 * between a savepoint and its release.  Returns 0, or -1 when the
 * transaction itself is gone (a trigger's RAISE(ROLLBACK) ends it): what it
 * held then fails whole. */
static int k2n_sqlite_run_one(k2n_db_t *db, k2_batch_item_t *item, int first)
{
    const k2n_write_t *w = item->data;
    const char *err = NULL;
    int attempt, rv;

    for (attempt = 0; attempt < 2; attempt++) {
        apr_dbd_prepared_t *stmt;
        const char *msg;
        int nrows = 0;

        if (!first && (rv = k2n_exec(db, "SAVEPOINT k2notify")) != 0) {
            err = apr_psprintf(db->r->pool, "SAVEPOINT failed (%d): %s", rv,
                               k2n_message(db, rv));
            break;
        }
        stmt = k2n_prepared(db, w->st);
        rv = stmt ? apr_dbd_pquery(db->dbd->driver, db->r->pool, db->dbd->handle,
                                   &nrows, stmt, w->st->nfields, w->args)
                  : -1;
        if (rv == 0 && (first || (rv = k2n_exec(db, "RELEASE k2notify")) == 0)) {
            item->status = 0;
            item->nrows = nrows;
            return 0;
        }
        msg = stmt ? k2n_message(db, rv) : db->err;
        if (k2n_sqlite_undo(db, first) != 0) {
            apr_snprintf(item->err, sizeof(item->err), "%s failed (%d): %s; "
                         "then the transaction was gone (rolled back by the "
                         "database)", w->st->directive, rv, msg);
            item->status = -1;
            return -1;
        }
        if (rv == K2N_SQLITE_ROW) {
            err = apr_psprintf(db->r->pool, "%s returned a row: a record "
                               "statement must not return rows; what it did is "
                               "rolled back", w->st->directive);
            break;
        }
        if (!stmt || attempt > 0 || !k2n_sqlite_expired(rv, msg)) {
            err = stmt ? apr_psprintf(db->r->pool, "%s failed (%d): %s%s",
                                      w->st->directive, rv, msg,
                                      k2n_sqlite_hint(msg))
                       : msg;
            break;
        }
        /* Rolled back: it did not happen.  Prepare the expired statements
         * again and run it once more. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s failed (%d): %s; "
                      "the connection's prepared statements expired (the "
                      "database schema changed): %d prepared again, running "
                      "the statement again", w->st->directive, rv, msg,
                      k2n_prepare_again(db, NULL));
    }
    item->status = -1;
    apr_cpystrn(item->err, err, sizeof(item->err));
    return 0;
}

/* Take the k2notify-db lock: 1 if taken.  The lock only spares the
 * module's writers SQLite's busy waits (SQLite's own locking keeps the data
 * right): if it cannot be taken, the write goes on without it. */
static int k2n_lock(k2n_db_t *db)
{
    apr_status_t rv;

    if (!k2n_db_mutex) {
        return 0;
    }
    if ((rv = apr_global_mutex_lock(k2n_db_mutex)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, db->r, "cannot take the "
                      K2N_MUTEX_NAME " lock: writing without it");
        return 0;
    }
    return 1;
}

/* BEGIN IMMEDIATE: 0, or the driver's code with *failure.
 *
 * While a program outside Apache holds SQLite's write lock, the holder of
 * the k2notify-db lock waits in BEGIN IMMEDIATE for the driver's 15 retries
 * (about 1.6 s) and the other writers wait for the k2notify-db lock behind
 * it.  If they then waited 1.6 s each in turn, the n-th would get its 500
 * after n x 1.6 s: so a writer that was already waiting when such a wait
 * ended in vain (since: the earliest submission of its batch) fails at
 * once, and one that came later waits in BEGIN IMMEDIATE itself.  Once the
 * lock is gone, the first BEGIN IMMEDIATE succeeds and everyone writes. */
static int k2n_begin(k2n_db_t *db, int locked, apr_time_t since,
                     const char **failure)
{
    int rv;

    if (locked && k2n_db_shared->busy_since
        && k2n_db_shared->busy_since >= since) {
        *failure = apr_psprintf(db->r->pool, "the database is locked by a "
                                "program outside Apache (another notification "
                                "waited %" APR_TIME_T_FMT " ms for it in vain "
                                "meanwhile)", apr_time_as_msec(
                                    k2n_db_shared->busy_since - since));
        return K2N_SQLITE_BUSY;
    }
    rv = k2n_exec(db, "BEGIN IMMEDIATE");
    if (locked) {
        k2n_db_shared->busy_since = rv == K2N_SQLITE_BUSY ? apr_time_now() : 0;
    }
    if (rv != 0) {
        *failure = apr_psprintf(db->r->pool, "BEGIN IMMEDIATE failed (%d): %s",
                                rv, k2n_message(db, rv));
    }
    return rv;
}

/* Where a transaction takes its notifications from: the group-commit queue,
 * or the lone notification of a request (prefork, K2NotifyGroupCommit Off). */
typedef struct {
    k2_batch_t *batch;
    k2_batch_item_t *single;
} k2n_source_t;

static k2_batch_item_t *k2n_take(k2n_source_t *src)
{
    k2_batch_item_t *it = src->single;

    if (src->batch) {
        return k2_batch_next(src->batch);
    }
    src->single = NULL;
    return it;
}

/* One transaction on the leader's connection: every notification the
 * source gives while it runs, then one COMMIT.  The first notification
 * taken is the oldest one waiting (the queue is in order). */
static void k2n_sqlite_transaction(k2n_db_t *db, k2n_source_t *src)
{
    k2_batch_item_t *items[K2_BATCH_MAX], *it;
    const char *failure = NULL;
    int i, n = 0, rv, locked;

    if (!(it = k2n_take(src))) {
        return;
    }
    it->status = 1;                     /* not run (yet) */
    items[n++] = it;
    locked = k2n_lock(db);
    if (k2n_begin(db, locked, ((const k2n_write_t *)it->data)->since,
                  &failure) == 0) {
        int held = 0;                   /* statements that ran in it */

        for (;;) {
            if (k2n_sqlite_run_one(db, it, held == 0) != 0) {
                failure = "the transaction was rolled back by a statement of "
                          "another notification of its batch";
                k2n_exec(db, "ROLLBACK");
                break;
            }
            held += it->status == 0;
            if (n == K2_BATCH_MAX || !(it = k2n_take(src))) {
                break;
            }
            it->status = 1;
            items[n++] = it;
        }
        if (!failure && (rv = k2n_exec(db, "COMMIT")) != 0) {
            failure = apr_psprintf(db->r->pool, "COMMIT failed (%d): %s", rv,
                                   k2n_message(db, rv));
            k2n_exec(db, "ROLLBACK");
        }
    }
    else {
        /* Those waiting now waited through this failure: they fail with it
         * rather than wait for the same lock in turn. */
        while (n < K2_BATCH_MAX && (it = k2n_take(src))) {
            items[n++] = it;
        }
    }
    if (locked) {
        apr_global_mutex_unlock(k2n_db_mutex);
    }
    for (i = 0; failure && i < n; i++) {
        if (items[i]->status != -1) {
            /* nothing of this transaction is on disk */
            items[i]->status = -1;
            apr_cpystrn(items[i]->err, failure, sizeof(items[i]->err));
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, db->r, "transaction of %d "
                  "notification%s %s", n, n == 1 ? "" : "s",
                  failure ? "failed" : "committed");
}

/* k2_batch's commit function. */
static void k2n_sqlite_commit(void *leader, k2_batch_t *batch, apr_pool_t *pool)
{
    k2n_source_t src;

    (void)pool;
    src.batch = batch;
    src.single = NULL;
    k2n_sqlite_transaction(leader, &src);
}

static apr_status_t k2n_sqlite_record(k2n_db_t *db, const k2n_stmt_t *st,
                                      const char **args, int *nrows)
{
    const k2n_srv_conf *sc = ap_get_module_config(db->r->server->module_config,
                                                  &k2notify_module);
    k2n_write_t w;
    k2_batch_item_t item;

    memset(&item, 0, sizeof(item));
    w.st = st;
    w.args = args;
    w.since = apr_time_now();
    item.data = &w;
    if (sc->batch) {
        apr_status_t rv = k2_batch_submit(sc->batch, &item, db, db->r->pool);

        if (rv != APR_SUCCESS) {
            char buf[120];

            db->err = apr_psprintf(db->r->pool, "cannot join a group commit: %s",
                                   apr_strerror(rv, buf, sizeof(buf)));
            return rv;
        }
    }
    else {
        k2n_source_t src;

        src.batch = NULL;
        src.single = &item;
        k2n_sqlite_transaction(db, &src);
        item.batch_size = 1;
    }
    db->batch_size = item.batch_size;
    if (item.status != 0) {
        db->err = apr_pstrdup(db->r->pool, item.err);
        return APR_EGENERAL;
    }
    *nrows = item.nrows;
    return APR_SUCCESS;
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
    apr_time_t t0 = apr_time_now();
    int tries = 1;

    memset(db, 0, sizeof(*db));
    db->r = r;
    db->dbd = k2n_dbd_acquire ? k2n_dbd_acquire(r) : NULL;
    while (!db->dbd && k2n_dbd_open && tries < K2N_OPEN_TRIES
           && apr_time_now() - t0 < K2N_OPEN_FAST) {
        apr_sleep(apr_time_from_msec(10) << tries);     /* 20, 40, 80 ms */
        t0 = apr_time_now();
        tries++;
        if ((db->dbd = k2n_dbd_open(r->pool, r->server)) != NULL) {
            k2n_opened_t *o = apr_palloc(r->pool, sizeof(*o));

            o->s = r->server;
            o->dbd = db->dbd;
            apr_pool_cleanup_register(r->pool, o, k2n_db_release,
                                      apr_pool_cleanup_null);
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
    /* A driver that cannot count: read to the end of the result set. */
    while (apr_dbd_get_row(db->dbd->driver, db->r->pool, res, &row, -1) == 0) {
        *found = 1;
    }
    return APR_SUCCESS;
}

apr_status_t k2n_db_first_row(k2n_db_t *db, const k2n_stmt_t *st,
                              const char **args, int ncols, const char **cols,
                              int *found)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    int i;

    *found = 0;
    if (k2n_read(db, st, args, &res) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    while (apr_dbd_get_row(db->dbd->driver, db->r->pool, res, &row, -1) == 0) {
        if (*found) {
            continue;                   /* read to the end, keep the first */
        }
        *found = 1;
        for (i = 0; i < ncols; i++) {
            const char *v = apr_dbd_get_entry(db->dbd->driver, row, i);

            cols[i] = v ? apr_pstrdup(db->r->pool, v) : NULL;
        }
    }
    return APR_SUCCESS;
}

apr_status_t k2n_db_record(k2n_db_t *db, const k2n_stmt_t *st,
                           const char **args, int *nrows)
{
    db->batch_size = 1;
    if (k2n_is(db, "sqlite3")) {
        return k2n_sqlite_record(db, st, args, nrows);
    }
    if (k2n_query(db, st, args, nrows) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (k2n_repair(db, st, 0) != K2N_RUN_AGAIN) {
        return APR_EGENERAL;
    }
    return k2n_query(db, st, args, nrows);
}

/* -- hooks ----------------------------------------------------------------- */

static int k2n_dbd_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp)
{
    (void)plog; (void)ptemp;
    k2n_db_mutex = NULL;
    k2n_db_shared = NULL;
    return ap_mutex_register(pconf, K2N_MUTEX_NAME, NULL, APR_LOCK_DEFAULT, 0);
}

static int k2n_dbd_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    k2n_db_lock_t *lock = NULL;
    apr_status_t rv;

    (void)pconf; (void)plog; (void)ptemp;
    if (k2n_config_statements()->nelts == 0) {
        return OK;                      /* nothing to write anywhere */
    }
    apr_pool_userdata_get((void **)&lock, K2N_DB_LOCK_KEY, pproc);
    if (!lock) {
        lock = apr_pcalloc(pproc, sizeof(*lock));
        if (ap_global_mutex_create(&lock->mutex, NULL, K2N_MUTEX_NAME, NULL, s,
                                   pproc, 0) != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;  /* logged by httpd */
        }
        rv = apr_shm_create(&lock->shm, sizeof(k2n_db_shared_t), NULL, pproc);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot create the "
                         "shared memory of the " K2N_MUTEX_NAME " lock");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        memset(apr_shm_baseaddr_get(lock->shm), 0, sizeof(k2n_db_shared_t));
        apr_pool_userdata_set(lock, K2N_DB_LOCK_KEY, apr_pool_cleanup_null, pproc);
    }
    k2n_db_mutex = lock->mutex;
    k2n_db_shared = apr_shm_baseaddr_get(lock->shm);
    return OK;
}

static void k2n_dbd_child_init(apr_pool_t *p, server_rec *s)
{
    int threaded = 0;
    apr_status_t rv;

    if (!k2n_db_mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&k2n_db_mutex,
                                     apr_global_mutex_lockfile(k2n_db_mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot reattach the "
                     K2N_MUTEX_NAME " lock in this child");
    }
    /* Group commit needs threads to group: prefork commits one at a time. */
    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS
        || threaded == AP_MPMQ_NOT_SUPPORTED) {
        return;
    }
    for (; s; s = s->next) {
        k2n_srv_conf *sc = ap_get_module_config(s->module_config,
                                                &k2notify_module);

        if (sc->group_commit != 0
            && (rv = k2_batch_create(&sc->batch, k2n_sqlite_commit, p))
               != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot create the "
                         "group-commit queue: committing one at a time");
            sc->batch = NULL;
        }
    }
}

void k2n_dbd_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* mod_dbd registers its mutex names in its pre_config as well */
    ap_hook_pre_config(k2n_dbd_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(k2n_dbd_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(k2n_dbd_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
