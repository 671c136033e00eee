/* mod_k2notify_sqlite.c: what SQLite does its own way.
 *
 * The record statement runs in an explicit transaction, under the
 * cross-process lock "k2notify-db" (so that the writers of several httpd
 * children never meet SQLITE_BUSY and the driver's 100 ms sleeps), and, in
 * a threaded MPM, shares it with every notification of the child that
 * queued while the previous one committed (group commit, k2_batch.c): one
 * fsync for many payments.
 *
 * SQLite's messages are fixed English strings and are read.
 */
#include "mod_k2notify_dbd.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>                      /* AT_FDCWD */
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <sqlite3.h>

#include "k2_sql.h"

#include "apr_strings.h"
#include "apr_global_mutex.h"
#include "apr_shm.h"

#include "ap_mpm.h"
#include "http_log.h"
#include "util_mutex.h"

#include "k2_batch.h"

/* apr-util's sqlite3 driver returns SQLite's own codes. */
#define K2N_SQLITE_ERROR 1
#define K2N_SQLITE_SCHEMA 17
#define K2N_SQLITE_BUSY 5
#define K2N_SQLITE_ROW 100

/* The k2notify-db lock of one database and what its writers share.  One per
 * database file (servers that write the same file share it), made in the
 * httpd parent's process pool and kept across restarts while its Mutex
 * configuration is unchanged: the children of the old and the new
 * generation of a graceful restart write the same database, and an old
 * child still finishing a notification must not find the lock destroyed
 * under it.  A changed Mutex line gives the databases new locks at the
 * restart; the old ones stay (unused once their children are gone) until
 * the parent exits. */
typedef struct {
    apr_time_t busy_since;              /* k2_clock() when a BEGIN IMMEDIATE
                                         * last failed on a lock held outside
                                         * Apache, or 0; read and written
                                         * under the lock */
    apr_time_t held_since;              /* k2_clock() when the lock's holder
                                         * took it, 0 when free */
    int files_known;                    /* the files of the last commit: */
    apr_uint64_t db_dev, db_ino;        /* the database file's and ... */
    apr_uint64_t wal_dev, wal_ino;      /* ... its WAL's (0: none) */
} k2n_db_shared_t;

struct k2n_db_lock_t {
    k2n_db_lock_t *next;
    const char *key;                    /* the database (k2n_db_key) */
    const char *params;                 /* its DBDParams, for log lines */
    const char *mech;                   /* the mutex's mechanism ... */
    const char *dir;                    /* ... and its lock file's directory
                                         * ("" for none): what the Mutex line
                                         * asked for when it was made */
    apr_global_mutex_t *mutex;
    int polls;                          /* a file lock (flock, fcntl): APR's
                                         * timed lock of those polls every
                                         * 10 ms */
    k2n_db_shared_t *shared;            /* in shared memory */
    int current;                        /* serves this generation */
};

/* Every lock the parent made, in its process pool. */
typedef struct {
    k2n_db_lock_t *locks;
    unsigned int made;                  /* locks made: each its own name */
} k2n_db_locks_t;

#define K2N_DB_LOCKS_KEY "mod_k2notify: the k2notify-db locks"

/* How long a writer waits for the lock by default (K2NotifyLockTimeout). */
#define K2N_LOCK_TIMEOUT_DEFAULT apr_time_from_sec(10)

/* The locks of this generation (the parent's list, as the child sees it). */
static k2n_db_locks_t *k2n_db_locks = NULL;

/* One record statement to commit, with its values. */
typedef struct {
    const k2n_stmt_t *st;
    const char **args;
    apr_time_t since;                   /* when it was submitted */
} k2n_write_t;

/* apr-util's driver prepares with the legacy sqlite3_prepare(),
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

/* Whether SQLite refused a write as read-only ("attempt to write a readonly
 * database": apr-util's driver returns SQLITE_ERROR, the message says). */
static int k2n_sqlite_read_only(const char *msg)
{
    return msg && strstr(msg, "readonly database") != NULL;
}

/* SQLite opens a file it cannot write read-only, silently, and mod_dbd
 * keeps that connection: say what it takes to recover. */
static const char *k2n_sqlite_hint(const char *msg)
{
    return k2n_sqlite_read_only(msg)
           ? " (this connection was opened while the database file, its "
             "directory or its -wal or -shm file was not writable by the httpd "
             "user: fix the permissions; the connection is opened again at "
             "the next notification)"
           : "";
}

static int k2n_sqlite_repair_moved(k2n_db_t *db);
static int k2n_lock(k2n_db_t *db, const k2n_db_lock_t *lock);
static void k2n_unlock(const k2n_db_lock_t *lock);

static k2n_repair_e k2n_sqlite_repair(k2n_db_t *db, const k2n_stmt_t *st,
                                      int repeatable)
{
    const char *msg;
    int n;

    (void)st;
    if (!repeatable) {
        return K2N_GIVE_UP;             /* a write is retried in its own
                                         * transaction: k2n_sqlite_run_one */
    }
    msg = k2n_db_message(db, db->rc);
    if (k2n_sqlite_repair_moved(db)) {
        return K2N_RUN_AGAIN;
    }
    db->err = apr_pstrcat(db->r->pool, db->err, k2n_sqlite_hint(msg), NULL);
    if (!k2n_sqlite_expired(db->rc, msg)) {
        return K2N_GIVE_UP;
    }
    n = k2n_db_prepare_again(db, NULL);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s; the connection's "
                  "prepared statements expired (the database schema changed): "
                  "%d prepared again, running the statement again", db->err, n);
    return K2N_RUN_AGAIN;
}

/* -- a connection whose files were replaced or removed ------------------------ */

/* What the module knows of one SQLite connection of mod_dbd's pool (in the
 * userdata of its pool): enough to tell that the files it writes are no
 * longer those the configuration names, and to open it again. */
typedef struct {
    ap_dbd_t *rec;
    dbd_cfg_t *cfg;                     /* mod_dbd's: how to open it again */
    const char *db_path;                /* sqlite3_db_filename(); NULL for a
                                         * database without a file */
    const char *wal_path;               /* db_path-wal, in WAL mode, or NULL */
    apr_uint64_t db_dev, db_ino;        /* the files it opened: the
                                         * database's ... */
    apr_uint64_t wal_dev, wal_ino;      /* ... and its WAL's */
    int wal_known;                      /* wal_dev, wal_ino are set */
    int read_only;                      /* a write on it was refused as
                                         * read-only: open it again */
} k2n_sqlite_conn_t;

#define K2N_CONN_KEY "mod_k2notify: this SQLite connection"

static void k2n_tx_forget(const ap_dbd_t *rec);

/* The device and inode of a file, and nothing else: statx() asked for the
 * inode only.  A stat() asks for the file's times too, and since Linux 6.13
 * (multigrain timestamps) a file whose times were asked for gets a
 * fine-grained time at its next change, which makes the fdatasync after it
 * write the inode as well: on the WAL, that was one more synchronous write
 * per commit (prefork, one commit per notification: 20 % fewer of them a
 * second, make profile --layout stock-prefork).  0, or -1 with errno. */
static int k2n_file_id(const char *path, apr_uint64_t *dev, apr_uint64_t *ino)
{
    struct statx stx;

    if (statx(AT_FDCWD, path, 0, STATX_INO, &stx) != 0) {
        return -1;
    }
    *dev = (apr_uint64_t)makedev(stx.stx_dev_major, stx.stx_dev_minor);
    *ino = (apr_uint64_t)stx.stx_ino;
    return 0;
}

static sqlite3 *k2n_native(const ap_dbd_t *rec)
{
    return apr_dbd_native_handle(rec->driver, rec->handle);
}

/* Note the files the connection has open: the database's (opened by
 * sqlite3_open) and, in WAL mode, its WAL (opened at the first read: mod_dbd
 * has prepared the statements, so it is open, and while it is open no
 * other connection can delete it: SQLite deletes the WAL only when it is
 * the last connection, under an exclusive lock). */
static void k2n_sqlite_note_files(k2n_sqlite_conn_t *c)
{
    sqlite3 *conn = k2n_native(c->rec);
    sqlite3_stmt *stmt = NULL;
    const char *name = sqlite3_db_filename(conn, "main");
    int wal = 0;

    c->db_path = NULL;
    c->wal_path = NULL;
    c->wal_known = 0;
    if (!name || !*name) {
        return;                         /* in memory, or a temporary file */
    }
    c->db_path = apr_pstrdup(c->rec->pool, name);
    k2n_file_id(name, &c->db_dev, &c->db_ino);
    if (sqlite3_prepare_v2(conn, "PRAGMA journal_mode", -1, &stmt, NULL)
        == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(stmt, 0);

        wal = mode && strcmp((const char *)mode, "wal") == 0;
    }
    sqlite3_finalize(stmt);
    if (!wal) {
        return;
    }
    c->wal_path = apr_pstrcat(c->rec->pool, name, "-wal", NULL);
    c->wal_known = k2n_file_id(c->wal_path, &c->wal_dev, &c->wal_ino) == 0;
}

/* Why the files this connection writes are not (or no longer) those the
 * configuration names, or NULL.  Two calls: SQLite's own
 * SQLITE_FCNTL_HAS_MOVED for the database file (the inode it opened
 * against the path's: a stat(), harmless there, as the database file is
 * synced at checkpoints only), and the WAL's inode against the one noted
 * (k2n_file_id). */
static const char *k2n_sqlite_moved(apr_pool_t *p, k2n_sqlite_conn_t *c)
{
    apr_uint64_t dev, ino;
    int moved = 0;

    if (!c || !c->db_path) {
        return NULL;
    }
    if (sqlite3_file_control(k2n_native(c->rec), "main", SQLITE_FCNTL_HAS_MOVED,
                             &moved) == SQLITE_OK && moved) {
        return apr_psprintf(p, "the database file %s is not the one this "
                            "connection opened: it was replaced (a mv or cp "
                            "onto it) or removed while the server ran",
                            c->db_path);
    }
    if (!c->wal_path) {
        return NULL;
    }
    if (k2n_file_id(c->wal_path, &dev, &ino) != 0) {
        return errno == ENOENT && c->wal_known
               ? apr_psprintf(p, "the WAL file %s was removed while the "
                              "server ran (this connection's commits went to "
                              "the removed file)", c->wal_path)
               : NULL;
    }
    if (!c->wal_known) {                /* made since: by this connection */
        c->wal_dev = dev;
        c->wal_ino = ino;
        c->wal_known = 1;
        return NULL;
    }
    if (dev != c->wal_dev || ino != c->wal_ino) {
        return apr_psprintf(p, "the WAL file %s is not the one this "
                            "connection writes: it was replaced or removed "
                            "while the server ran", c->wal_path);
    }
    return NULL;
}

static k2n_sqlite_conn_t *k2n_sqlite_conn(const k2n_db_t *db)
{
    k2n_sqlite_conn_t *c = NULL;

    apr_pool_userdata_get((void **)&c, K2N_CONN_KEY, db->dbd->pool);
    return c && c->rec == db->dbd ? c : NULL;
}

/* mod_dbd's post_connect hook: a connection was opened. */
static apr_status_t k2n_sqlite_closing(void *data);

static apr_status_t k2n_sqlite_connected(apr_pool_t *pool, dbd_cfg_t *cfg,
                                         ap_dbd_t *rec)
{
    k2n_sqlite_conn_t *c;

    (void)pool;
    if (strcmp(apr_dbd_name(rec->driver), "sqlite3") != 0) {
        return OK;
    }
    c = apr_pcalloc(rec->pool, sizeof(*c));
    c->rec = rec;
    c->cfg = cfg;
    k2n_sqlite_note_files(c);
    apr_pool_userdata_setn(c, K2N_CONN_KEY, NULL, rec->pool);
    /* runs before mod_dbd's own cleanup closes it (registered earlier) */
    apr_pool_cleanup_register(rec->pool, c, k2n_sqlite_closing,
                              apr_pool_cleanup_null);
    return OK;
}

/* A connection whose files were replaced or removed must not checkpoint
 * when it closes: that would copy the WAL's pages into the old database
 * file and mark them done for every connection sharing the WAL index (the
 * new file's connections would lose them), then delete the -wal and -shm
 * files by name, under the connections of the new file. */
static void k2n_sqlite_no_checkpoint_on_close(const ap_dbd_t *rec)
{
    sqlite3_db_config(k2n_native(rec), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
                      (int *)NULL);
}

static apr_status_t k2n_sqlite_closing(void *data)
{
    k2n_sqlite_conn_t *c = data;
    apr_pool_t *p;

    if (c->db_path && apr_pool_create(&p, NULL) == APR_SUCCESS) {
        if (k2n_sqlite_moved(p, c)) {
            k2n_sqlite_no_checkpoint_on_close(c->rec);
        }
        apr_pool_destroy(p);
    }
    return APR_SUCCESS;
}

/* Replace the connection's SQLite handle, in place in mod_dbd's pool (which
 * has no way to discard a connection from outside: its check of a sqlite3
 * connection never fails), by a new one opened, prepared and initialised
 * as mod_dbd does (cfg: DBDParams, every label's statement, DBDInitSQL), and
 * close the old one (checkpoint: whether it may checkpoint as it closes).
 * Returns 0, or -1 (logged; the old handle is kept). */
static int k2n_sqlite_reopen(k2n_db_t *db, k2n_sqlite_conn_t *c, int checkpoint)
{
    ap_dbd_t *rec = c->rec;
    apr_dbd_t *old = rec->handle, *h = NULL;
    apr_hash_t *prepared;
    apr_hash_index_t *hi;
    apr_pool_t *pool;
    const char *err = NULL;
    int i, nrows;

    if (apr_dbd_open_ex(rec->driver, rec->pool, c->cfg->params, &h, &err)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, db->r, "cannot open the "
                      "database %s again: %s", c->cfg->params,
                      err ? err : "(no message)");
        return -1;
    }
    apr_pool_create(&pool, rec->pool);
    prepared = apr_hash_make(pool);
    for (hi = apr_hash_first(pool, c->cfg->queries); hi; hi = apr_hash_next(hi)) {
        const void *label;
        void *query;
        apr_dbd_prepared_t *stmt = NULL;

        apr_hash_this(hi, &label, NULL, &query);
        if (!*(const char *)query) {
            continue;
        }
        if (apr_dbd_prepare(rec->driver, pool, h, query, label, &stmt) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, db->r, "cannot prepare "
                          "\"%s\" on the database %s opened again: %s",
                          (const char *)query, c->cfg->params,
                          apr_dbd_error(rec->driver, h, 0));
            apr_dbd_close(rec->driver, h);
            apr_pool_destroy(pool);
            return -1;
        }
        apr_hash_set(prepared, label, APR_HASH_KEY_STRING, stmt);
    }
    for (i = 0; i < c->cfg->init_queries->nelts; i++) {
        if (apr_dbd_query(rec->driver, h, &nrows, APR_ARRAY_IDX(
                              c->cfg->init_queries, i, const char *)) != 0) {
            break;                      /* as mod_dbd: the first that fails
                                         * (or returns a row) ends them */
        }
    }
    if (!checkpoint) {
        k2n_sqlite_no_checkpoint_on_close(rec);
    }
    rec->handle = h;
    rec->prepared = prepared;
    k2n_tx_forget(rec);                 /* SQLite closes no handle that has
                                         * statements left */
    apr_dbd_close(rec->driver, old);
    k2n_sqlite_note_files(c);
    return 0;
}

/* Whether the last commit of the module to this database went through the
 * files this connection writes (its identity in the shared record). */
static int k2n_sqlite_last_commit_here(const k2n_db_shared_t *shared,
                                       const k2n_sqlite_conn_t *c)
{
    return !shared || !shared->files_known
           || (shared->db_dev == c->db_dev && shared->db_ino == c->db_ino
               && shared->wal_dev == (c->wal_known ? c->wal_dev : 0)
               && shared->wal_ino == (c->wal_known ? c->wal_ino : 0));
}

static void k2n_sqlite_note_commit(k2n_db_shared_t *shared,
                                   const k2n_sqlite_conn_t *c)
{
    if (shared && c && c->db_path) {
        shared->db_dev = c->db_dev;
        shared->db_ino = c->db_ino;
        shared->wal_dev = c->wal_known ? c->wal_dev : 0;
        shared->wal_ino = c->wal_known ? c->wal_ino : 0;
        shared->files_known = 1;
    }
}

/* The connection's files were replaced or removed (why): open it again on
 * the files the configuration names.  The first connection to notice (no
 * commit of the module has gone through other files since) first
 * checkpoints its WAL completely and empties it: the pages committed before
 * the removal of a WAL reach the database file, and a database file put in
 * place of the old one is not read through the old one's WAL.  Called
 * without a transaction open, holding the database's k2notify-db lock.
 * Returns 0 once reopened. */
static int k2n_sqlite_relocate(k2n_db_t *db, k2n_sqlite_conn_t *c,
                               const k2n_db_shared_t *shared, const char *why)
{
    int tries, rc = SQLITE_OK;

    if (k2n_sqlite_last_commit_here(shared, c) && c->wal_path) {
        for (tries = 0; tries < 20; tries++) {
            rc = sqlite3_wal_checkpoint_v2(k2n_native(c->rec), "main",
                                           SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
            if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
                break;
            }
            apr_sleep(apr_time_from_msec(10));  /* a reader of the old pages */
        }
        if (rc != SQLITE_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, db->r, "%s; cannot "
                          "checkpoint its WAL before opening the database "
                          "again (%d): %s; this connection is kept, and tried "
                          "again at its next notification", why, rc,
                          sqlite3_errmsg(k2n_native(c->rec)));
            return -1;
        }
    }
    if (k2n_sqlite_reopen(db, c, 0) != 0) {
        return -1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s: the database "
                  "connection is closed and open again on %s (restore a "
                  "database with sqlite3's .restore, never by replacing or "
                  "removing its files under a running server)", why,
                  c->cfg->params);
    return 0;
}

/* A query failed: if on files no longer the configuration's (reading a
 * removed WAL fails), open the connection again, under the lock: 1 if
 * reopened (run the query again). */
static int k2n_sqlite_repair_moved(k2n_db_t *db)
{
    const k2n_srv_conf *sc = ap_get_module_config(db->r->server->module_config,
                                                  &k2notify_module);
    k2n_sqlite_conn_t *conn = k2n_sqlite_conn(db);
    const char *why;
    int locked, done = 0;

    if (!k2n_sqlite_moved(db->r->pool, conn)) {
        return 0;
    }
    locked = k2n_lock(db, sc->db_lock);
    if ((why = k2n_sqlite_moved(db->r->pool, conn)) != NULL) {
        done = k2n_sqlite_relocate(db, conn, locked ? sc->db_lock->shared : NULL,
                                   apr_pstrcat(db->r->pool, db->err, "; ", why,
                                               NULL)) == 0;
    }
    if (locked) {
        k2n_unlock(sc->db_lock);
    }
    return done;
}

/* -- the transaction, the lock and group commit ---------------------------- */

/* The transaction's own statements, but for BEGIN IMMEDIATE (which waits
 * out another writer in the driver's retries), run on the connection's
 * sqlite3 handle itself.  apr-util's driver runs every SQLite call of the
 * process under one mutex, held through a COMMIT's fsync: every lookup of the
 * child waited for the disk, and the next batch formed only after it.  It
 * also parses each text again; these are prepared once per connection
 * (kept in its pool, finalized before mod_dbd closes it).  A connection is
 * only ever used by one thread at a time, and SQLite is built thread-safe.
 * A COMMIT that meets SQLITE_BUSY (a rollback-journal database waiting for
 * its readers) goes through the driver, which retries. */
enum { K2N_TX_SAVEPOINT, K2N_TX_RELEASE, K2N_TX_ROLLBACK_TO, K2N_TX_COMMIT,
       K2N_TX_ROLLBACK, K2N_TX_COUNT };

static const char *const k2n_tx_sql[K2N_TX_COUNT] = {
    "SAVEPOINT k2notify", "RELEASE k2notify", "ROLLBACK TO k2notify",
    "COMMIT", "ROLLBACK"
};

#define K2N_TX_KEY "mod_k2notify: the transaction's statements"

typedef struct {
    sqlite3 *conn;                      /* the handle they are prepared on */
    sqlite3_stmt *stmt[K2N_TX_COUNT];
} k2n_tx_t;

static apr_status_t k2n_tx_finalize(void *data)
{
    k2n_tx_t *tx = data;
    int i;

    for (i = 0; i < K2N_TX_COUNT; i++) {
        sqlite3_finalize(tx->stmt[i]);
        tx->stmt[i] = NULL;
    }
    tx->conn = NULL;
    return APR_SUCCESS;
}

static void k2n_tx_forget(const ap_dbd_t *rec)
{
    k2n_tx_t *tx = NULL;

    apr_pool_userdata_get((void **)&tx, K2N_TX_KEY, rec->pool);
    if (tx) {
        k2n_tx_finalize(tx);
    }
}

/* 0, or SQLite's code (its message: k2n_db_message). */
static int k2n_tx(k2n_db_t *db, int which)
{
    sqlite3 *conn = apr_dbd_native_handle(db->dbd->driver, db->dbd->handle);
    apr_pool_t *pool = db->dbd->pool;   /* lives as long as the connection */
    k2n_tx_t *tx = NULL;
    int rv;

    apr_pool_userdata_get((void **)&tx, K2N_TX_KEY, pool);
    if (!tx) {
        tx = apr_pcalloc(pool, sizeof(*tx));
        apr_pool_userdata_setn(tx, K2N_TX_KEY, NULL, pool);
        /* after mod_dbd's own: run before it closes the connection */
        apr_pool_cleanup_register(pool, tx, k2n_tx_finalize,
                                  apr_pool_cleanup_null);
    }
    if (tx->conn != conn) {             /* a handle opened again in place
                                         * (k2n_sqlite_reopen) */
        k2n_tx_finalize(tx);
        tx->conn = conn;
    }
    if (!tx->stmt[which]
        && (rv = sqlite3_prepare_v2(conn, k2n_tx_sql[which], -1,
                                    &tx->stmt[which], NULL)) != SQLITE_OK) {
        return rv;
    }
    rv = sqlite3_step(tx->stmt[which]);
    sqlite3_reset(tx->stmt[which]);
    if (rv == SQLITE_BUSY && which == K2N_TX_COMMIT) {
        return k2n_db_exec(db, "COMMIT");
    }
    return rv == SQLITE_DONE ? 0 : rv;
}

/* Undo what one notification's statement did in the open transaction:
 * back to its savepoint; or, when it ran first (no savepoint: nothing else
 * is in the transaction), roll the transaction back and open a new one.
 * Returns 0, or -1 when the transaction is gone and cannot be reopened. */
static int k2n_sqlite_undo(k2n_db_t *db, int first)
{
    if (first) {
        k2n_tx(db, K2N_TX_ROLLBACK);
        return k2n_db_exec(db, "BEGIN IMMEDIATE") == 0 ? 0 : -1;
    }
    if (k2n_tx(db, K2N_TX_ROLLBACK_TO) != 0
        || k2n_tx(db, K2N_TX_RELEASE) != 0) {
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

        if (!first && (rv = k2n_tx(db, K2N_TX_SAVEPOINT)) != 0) {
            err = apr_psprintf(db->r->pool, "SAVEPOINT failed (%d): %s", rv,
                               k2n_db_message(db, rv));
            break;
        }
        stmt = k2n_db_prepared(db, w->st);
        rv = stmt ? apr_dbd_pquery(db->dbd->driver, db->r->pool, db->dbd->handle,
                                   &nrows, stmt, w->st->nfields, w->args)
                  : -1;
        if (rv == 0 && (first || (rv = k2n_tx(db, K2N_TX_RELEASE)) == 0)) {
            item->status = 0;
            item->nrows = nrows;
            return 0;
        }
        msg = stmt ? k2n_db_message(db, rv) : db->err;
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
                      k2n_db_prepare_again(db, NULL));
    }
    item->status = -1;
    apr_cpystrn(item->err, err, sizeof(item->err));
    return 0;
}

static apr_interval_time_t k2n_lock_timeout(const k2n_srv_conf *sc)
{
    return sc->lock_timeout >= 0 ? sc->lock_timeout : K2N_LOCK_TIMEOUT_DEFAULT;
}

/* Take the k2notify-db lock of the request's database: 1 if taken.  The
 * lock only spares the module's writers SQLite's busy waits (SQLite's own
 * locking keeps the data right): if it cannot be taken, or its holder does
 * not release it within K2NotifyLockTimeout (stopped, or stuck in the
 * kernel), the write goes on without it.  A file lock (Mutex flock, fcntl)
 * is waited for in the kernel, as APR's timed wait for one would poll every
 * 10 ms: a writer gives up waiting only when it finds it held for longer
 * than the timeout already (those already waiting wait on). */
static int k2n_lock(k2n_db_t *db, const k2n_db_lock_t *lock)
{
    const k2n_srv_conf *sc = ap_get_module_config(db->r->server->module_config,
                                                  &k2notify_module);
    apr_interval_time_t timeout = k2n_lock_timeout(sc);
    apr_time_t since;
    apr_status_t rv;

    if (!lock || !lock->mutex) {
        return 0;
    }
    since = lock->shared->held_since;
    if (lock->polls && since && k2_clock() - since > timeout) {
        rv = APR_TIMEUP;
    }
    else if (lock->polls) {
        rv = apr_global_mutex_lock(lock->mutex);
    }
    else {
        rv = apr_global_mutex_timedlock(lock->mutex, timeout);
    }
    if (APR_STATUS_IS_TIMEUP(rv)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "the "
                      K2N_MUTEX_NAME " lock of %s was not released within %"
                      APR_TIME_T_FMT " ms (" K2N_DIR_LOCK_TIMEOUT "; a process "
                      "holding it is stopped or stuck): writing without it",
                      lock->params, apr_time_as_msec(timeout));
        return 0;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, db->r, "cannot take the "
                      K2N_MUTEX_NAME " lock of %s: writing without it",
                      lock->params);
        return 0;
    }
    lock->shared->held_since = k2_clock();
    return 1;
}

static void k2n_unlock(const k2n_db_lock_t *lock)
{
    lock->shared->held_since = 0;
    apr_global_mutex_unlock(lock->mutex);
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
static int k2n_begin(k2n_db_t *db, k2n_db_shared_t *shared, apr_time_t since,
                     const char **failure)
{
    int rv;

    if (shared && shared->busy_since && shared->busy_since >= since) {
        *failure = apr_psprintf(db->r->pool, "the database is locked by a "
                                "program outside Apache (another notification "
                                "waited %" APR_TIME_T_FMT " ms for it in vain "
                                "meanwhile)", apr_time_as_msec(
                                    shared->busy_since - since));
        return K2N_SQLITE_BUSY;
    }
    rv = k2n_db_exec(db, "BEGIN IMMEDIATE");
    if (shared) {
        shared->busy_since = rv == K2N_SQLITE_BUSY ? k2_clock() : 0;
    }
    if (rv != 0) {
        *failure = apr_psprintf(db->r->pool, "BEGIN IMMEDIATE failed (%d): %s",
                                rv, k2n_db_message(db, rv));
    }
    return rv;
}

/* A connection SQLite opened read-only stays so: SQLite opens read-only,
 * without a word, a database whose file, -wal or -shm it cannot open for
 * writing, and mod_dbd keeps the connection pooled (its check of a sqlite3
 * connection cannot tell).  Besides the permissions, a program run as root
 * (a sqlite3 shell, a backup) that opens the database first creates its
 * -wal and -shm as root, and gives them to the database's owner only an
 * instant later: a child opening its connection in that instant (at
 * startup) has it read-only for good.  So a connection whose write was
 * refused as read-only is opened again, before its next transaction
 * (conn->read_only) or at once when BEGIN IMMEDIATE is refused (nothing is
 * open then).  If the files are still not writable, the new connection is
 * read-only too and the notification gets its 500.  1 if opened again. */
static int k2n_sqlite_reopen_read_only(k2n_db_t *db, k2n_sqlite_conn_t *conn,
                                       const char *why)
{
    if (!conn || k2n_sqlite_reopen(db, conn, 0) != 0) {
        return 0;
    }
    conn->read_only = 0;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s: SQLite had opened "
                  "this database connection read-only (its files were not all "
                  "writable by the httpd user when it opened): opened again on "
                  "%s", why, conn->cfg->params);
    return 1;
}

/* Where a transaction takes its notifications from: the group-commit queue,
 * or the lone notification of a request (prefork, K2NotifyGroupCommit Off). */
typedef struct {
    k2_batch_t *batch;
    k2_batch_item_t *single;
    const k2n_db_lock_t *lock;          /* of the database, or NULL */
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
    k2n_sqlite_conn_t *conn = k2n_sqlite_conn(db);
    k2n_db_shared_t *shared;
    const char *failure = NULL, *moved = NULL;
    apr_time_t since;
    int i, n = 0, rv, locked, reopened = 0;

    if (!(it = k2n_take(src))) {
        return;
    }
    it->status = 1;                     /* not run (yet) */
    items[n++] = it;
    locked = k2n_lock(db, src->lock);
    shared = locked ? src->lock->shared : NULL;
    since = ((const k2n_write_t *)it->data)->since;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, db->r, "a transaction begins: "
                  "this notification leads it");
    if (conn && conn->read_only) {
        reopened = k2n_sqlite_reopen_read_only(db, conn, "its last write was "
                                               "refused as read-only");
    }
    rv = k2n_begin(db, shared, since, &failure);
    if (rv != 0 && !reopened && k2n_sqlite_read_only(failure)
        && k2n_sqlite_reopen_read_only(db, conn, failure)) {
        failure = NULL;
        rv = k2n_begin(db, shared, since, &failure);
    }
    if (rv != 0) {
        /* Those waiting now waited through this failure: they fail with it
         * rather than wait for the same lock in turn. */
        while (n < K2_BATCH_MAX && (it = k2n_take(src))) {
            items[n++] = it;
        }
    }
    else if ((moved = k2n_sqlite_moved(db->r->pool, conn)) != NULL) {
        /* Checked holding SQLite's write lock: nothing is written through
         * files that are not the configuration's. */
        k2n_db_exec(db, "ROLLBACK");
        failure = apr_pstrcat(db->r->pool, moved, "; nothing was written",
                              NULL);
    }
    else {
        int held = 0;                   /* statements that ran in it */

        for (;;) {
            if (k2n_sqlite_run_one(db, it, held == 0) != 0) {
                failure = "the transaction was rolled back by a statement of "
                          "another notification of its batch";
                k2n_tx(db, K2N_TX_ROLLBACK);
                break;
            }
            held += it->status == 0;
            if (n == K2_BATCH_MAX || !(it = k2n_take(src))) {
                break;
            }
            it->status = 1;
            items[n++] = it;
        }
        if (!failure && (rv = k2n_tx(db, K2N_TX_COMMIT)) != 0) {
            failure = apr_psprintf(db->r->pool, "COMMIT failed (%d): %s", rv,
                                   k2n_db_message(db, rv));
            k2n_tx(db, K2N_TX_ROLLBACK);
        }
        else if (!failure && (moved = k2n_sqlite_moved(db->r->pool, conn))) {
            /* Replaced while the transaction ran: committed, but not in the
             * file the configuration names. */
            failure = apr_pstrcat(db->r->pool, moved, "; this transaction was "
                                  "committed to the old file, not to the one "
                                  "the configuration names", NULL);
        }
        else if (!failure) {
            k2n_sqlite_note_commit(shared, conn);
        }
    }
    if (moved && conn) {
        k2n_sqlite_relocate(db, conn, shared, moved);
    }
    else if (failure && !sqlite3_get_autocommit(k2n_native(db->dbd))) {
        /* Still inside a transaction (its COMMIT and ROLLBACK both failed):
         * every later BEGIN on this connection would fail.  Once more, then
         * drop it. */
        rv = k2n_db_exec(db, "ROLLBACK");
        if (!sqlite3_get_autocommit(k2n_native(db->dbd))) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s; the "
                          "connection is still inside its transaction (ROLLBACK "
                          "failed (%d): %s): closed and open again", failure,
                          rv, k2n_db_message(db, rv));
            if (!conn || k2n_sqlite_reopen(db, conn, 1) != 0) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, db->r, "cannot open "
                              "this database connection again: it stays "
                              "inside its transaction");
            }
        }
    }
    if (locked) {
        k2n_unlock(src->lock);
    }
    for (i = 0; failure && i < n; i++) {
        if (items[i]->status != -1) {
            /* not run, rolled back, or committed where it does not count */
            items[i]->status = -1;
            apr_cpystrn(items[i]->err, failure, sizeof(items[i]->err));
        }
    }
    for (i = 0; conn && i < n; i++) {
        if (items[i]->status == -1 && k2n_sqlite_read_only(items[i]->err)) {
            conn->read_only = 1;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, db->r, "transaction of %d "
                  "notification%s %s", n, n == 1 ? "" : "s",
                  failure ? "failed" : "committed");
}

/* k2_batch's observer: a notification waits for the transaction that runs
 * to end, to join the next. */
static void k2n_sqlite_queued(void *leader, int waiting)
{
    const k2n_db_t *db = leader;

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, db->r, "queued for the next "
                  "transaction (%d waiting)", waiting);
}

/* k2_batch's commit function. */
static void k2n_sqlite_commit(void *leader, k2_batch_t *batch, apr_pool_t *pool)
{
    k2n_db_t *db = leader;
    const k2n_srv_conf *sc = ap_get_module_config(db->r->server->module_config,
                                                  &k2notify_module);
    k2n_source_t src;

    (void)pool;
    src.batch = batch;
    src.single = NULL;
    src.lock = sc->db_lock;
    k2n_sqlite_transaction(db, &src);
}

static apr_status_t k2n_sqlite_record(k2n_db_t *db, const k2n_stmt_t *st,
                                      const char **args, int *nrows)
{
    const k2n_srv_conf *sc = ap_get_module_config(db->r->server->module_config,
                                                  &k2notify_module);
    k2n_write_t w;
    k2_batch_item_t item;

    w.st = st;
    w.args = args;
    w.since = k2_clock();
    k2_batch_item_init(&item, &w);
    if (sc->batch) {
        apr_status_t rv = k2_batch_submit(sc->batch, &item, db, db->r->pool);

        if (APR_STATUS_IS_TIMEUP(rv)) {
            db->err = apr_pstrdup(db->r->pool, item.err);
            return rv;
        }
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
        src.lock = sc->db_lock;
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

/* -- hooks: the lock, once per parent; the queues, per child --------------- */

static int k2n_sqlite_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp)
{
    (void)plog; (void)ptemp;
    k2n_db_locks = NULL;
    return ap_mutex_register(pconf, K2N_MUTEX_NAME, NULL, APR_LOCK_DEFAULT, 0);
}

/* Which database a sqlite3 DBDParams names: the file's device and inode if
 * it exists (two spellings of one path are one database), else the text. */
static const char *k2n_db_key(apr_pool_t *p, const char *params)
{
    struct stat st;

    if (params && stat(params, &st) == 0) {
        return apr_psprintf(p, "file %lu:%lu", (unsigned long)st.st_dev,
                            (unsigned long)st.st_ino);
    }
    return apr_pstrcat(p, "path ", params ? params : "", NULL);
}

/* The lock of the database key for this generation: the one kept if its
 * mechanism and directory are what the Mutex line asks for now, else a new
 * one.  What the Mutex line asks for is seen by making a lock with it (each
 * lock has its own name: instance_id). */
static k2n_db_lock_t *k2n_db_lock_for(k2n_db_locks_t *all, const char *key,
                                      const char *params, server_rec *s,
                                      apr_pool_t *pproc, apr_status_t *status)
{
    k2n_db_lock_t *lock, *kept;
    apr_pool_t *pool;
    const char *fname = NULL, *slash;
    apr_status_t rv;
    apr_shm_t *shm;

    for (lock = all->locks; lock; lock = lock->next) {
        if (lock->current && strcmp(lock->key, key) == 0) {
            return lock;                /* another server of this database */
        }
    }
    *status = APR_SUCCESS;
    apr_pool_create(&pool, pproc);
    lock = apr_pcalloc(pool, sizeof(*lock));
    rv = ap_global_mutex_create(&lock->mutex, &fname, K2N_MUTEX_NAME,
                                apr_psprintf(pool, "%u", all->made + 1), s,
                                pool, 0);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(pool);
        *status = rv;                   /* logged by httpd */
        return NULL;
    }
    lock->mech = lock->mutex ? apr_global_mutex_name(lock->mutex) : "none";
    lock->polls = strcmp(lock->mech, "flock") == 0
                  || strcmp(lock->mech, "fcntl") == 0;
    slash = fname ? strrchr(fname, '/') : NULL;
    lock->dir = slash ? apr_pstrmemdup(pool, fname, (apr_size_t)(slash - fname))
                      : "";
    for (kept = all->locks; kept; kept = kept->next) {
        if (strcmp(kept->key, key) == 0 && strcmp(kept->mech, lock->mech) == 0
            && strcmp(kept->dir, lock->dir) == 0) {
            apr_pool_destroy(pool);     /* the same as the one kept */
            kept->current = 1;
            kept->params = params;      /* in pconf: this generation's */
            return kept;
        }
    }
    rv = apr_shm_create(&shm, sizeof(k2n_db_shared_t), NULL, pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot create the "
                     "shared memory of the " K2N_MUTEX_NAME " lock of %s",
                     params);
        apr_pool_destroy(pool);
        *status = rv;
        return NULL;
    }
    lock->shared = apr_shm_baseaddr_get(shm);
    memset(lock->shared, 0, sizeof(*lock->shared));
    lock->key = apr_pstrdup(pool, key);
    lock->params = params;
    lock->current = 1;
    lock->next = all->locks;
    all->locks = lock;
    all->made++;
    return lock;
}

static int k2n_sqlite_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    k2n_db_locks_t *all = NULL;
    k2n_db_lock_t *lock;
    int seen = k2n_dbd_directives_seen();
    server_rec *srv;

    (void)pconf; (void)plog;
    if (k2n_config_statements()->nelts == 0) {
        return OK;                      /* nothing to write anywhere */
    }
    apr_pool_userdata_get((void **)&all, K2N_DB_LOCKS_KEY, pproc);
    if (!all) {
        all = apr_pcalloc(pproc, sizeof(*all));
        apr_pool_userdata_set(all, K2N_DB_LOCKS_KEY, apr_pool_cleanup_null,
                              pproc);
    }
    for (lock = all->locks; lock; lock = lock->next) {
        lock->current = 0;
    }
    for (srv = s; srv; srv = srv->next) {
        k2n_srv_conf *sc = ap_get_module_config(srv->module_config,
                                                &k2notify_module);
        apr_status_t rv;

        sc->db_lock = NULL;
        if (seen && (!sc->dbd_driver || strcmp(sc->dbd_driver, "sqlite3") != 0)) {
            continue;                   /* not written through SQLite */
        }
        /* mod_dbd's directives unseen (mod_k2notify loaded before mod_dbd):
         * one lock for every database */
        sc->db_lock = seen ? k2n_db_lock_for(all, k2n_db_key(ptemp, sc->dbd_params),
                                             sc->dbd_params, s, pproc, &rv)
                           : k2n_db_lock_for(all, "any", "the databases", s,
                                             pproc, &rv);
        if (!sc->db_lock) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    k2n_db_locks = all;
    return OK;
}

static void k2n_sqlite_child_init(apr_pool_t *p, server_rec *s)
{
    int threaded = 0;
    apr_status_t rv;
    k2n_db_lock_t *lock;

    if (!k2n_db_locks) {
        return;
    }
    for (lock = k2n_db_locks->locks; lock; lock = lock->next) {
        if (!lock->current || !lock->mutex) {
            continue;
        }
        rv = apr_global_mutex_child_init(&lock->mutex,
                                         apr_global_mutex_lockfile(lock->mutex),
                                         p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "cannot reattach the "
                         K2N_MUTEX_NAME " lock of %s in this child",
                         lock->params);
        }
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
        else if (sc->batch) {
            /* a queued notification waits for the lock and for the
             * transaction before it */
            k2_batch_patience(sc->batch, 2 * k2n_lock_timeout(sc));
            k2_batch_on_queued(sc->batch, k2n_sqlite_queued);
        }
    }
}

void k2n_sqlite_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* mod_dbd registers its mutex names in its pre_config as well */
    ap_hook_pre_config(k2n_sqlite_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(k2n_sqlite_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(k2n_sqlite_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(dbd, post_connect, k2n_sqlite_connected, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

/* configtest: a record statement whose conflict clause hides what it did.
 * The module reads 0 rows changed as a resend, and a resend is 01. */
static const char *k2n_sqlite_check(apr_pool_t *p, const k2n_srv_conf *sc,
                                    const k2n_dir_conf *conf,
                                    const char *section)
{
    const k2n_stmt_t *st = conf->record;
    const char *clause = st ? k2_sql_insert_or(st->sql) : NULL;
    const char *why;

    (void)sc;
    if (!clause) {
        return NULL;
    }
    if (strcmp(clause, "IGNORE") == 0) {
        why = "INSERT OR IGNORE skips a row that breaks any constraint (NOT "
              "NULL, CHECK, UNIQUE) without an error, 0 rows changed, which is "
              "what a resend gives: a notification recorded nowhere would be "
              "answered 01 duplicate";
    }
    else if (strcmp(clause, "REPLACE") == 0) {
        why = "OR REPLACE (REPLACE INTO) deletes the stored row that a new one "
              "conflicts with: a resend with another amount would overwrite "
              "a stored payment";
    }
    else {
        return NULL;                    /* ABORT, FAIL, ROLLBACK: an error */
    }
    return apr_psprintf(p, "%s (%s), in %s on DBDriver sqlite3: \"%s\": %s; "
                        "write INSERT INTO ... ON CONFLICT (its key column) DO "
                        "NOTHING, as the samples do", st->directive, st->where,
                        section, st->sql, why);
}

const k2n_driver_t k2n_sqlite_driver = {
    .name = "sqlite3",
    .repair = k2n_sqlite_repair,
    .record = k2n_sqlite_record,
    .check = k2n_sqlite_check,
};
