/* mod_k2notify_mysql.c: what MySQL and MariaDB do their own way.
 *
 * - apr-util's driver turns the client library's automatic reconnect on
 *   (DBDParams reconnect=, default 1).  mod_dbd checks a pooled connection
 *   with mysql_ping before each request, and the client library then reopens
 *   a session the server closed (a restart, wait_timeout, KILL, a proxy)
 *   without a word: the new session has none of the prepared statements,
 *   nor what DBDInitSQL set, and every statement fails in the client
 *   library before anything is sent.  The statements are prepared again,
 *   DBDInitSQL is run again, and the statement runs again.
 * - ON DUPLICATE KEY UPDATE (and IGNORE) fire on any unique key of the
 *   table: a record statement that affected no row proves no resend, and
 *   K2NotifyDuplicateQuery must find the stored payment before a 01.
 * - A deadlock (1213: also a Galera certification failure) or a lock wait
 *   timeout (1205) rolls the statement back: the record statement runs on
 *   its own (autocommit), so running it again is safe.
 * - configtest refuses the DBDParams and record statements whose effect is
 *   silently other than written (k2_mysql.c).
 *
 * The driver's codes are the client library's (2000-2999) and the
 * server's; this file does not need the client library's headers.
 */
#include "mod_k2notify_dbd.h"

#include "apr_strings.h"

#include "http_log.h"

#include "k2_mysql.h"

/* The client library's codes (errmsg.h) */
#define K2N_MY_SERVER_GONE      2006    /* the connection was gone before */
#define K2N_MY_SERVER_LOST      2013    /* lost during the call, or a
                                         * statement of a closed session */
#define K2N_MY_NO_PREPARE_STMT  2030    /* the statement is not prepared in
                                         * this session: nothing was sent */
#define K2N_MY_STMT_CLOSED      2056    /* closed by a reconnect */
/* and the server's */
#define K2N_MY_LOCK_WAIT_TIMEOUT 1205   /* ER_LOCK_WAIT_TIMEOUT */
#define K2N_MY_DEADLOCK          1213   /* ER_LOCK_DEADLOCK, and Galera's
                                         * certification failure */
#define K2N_MY_UNKNOWN_STMT      1243   /* ER_UNKNOWN_STMT_HANDLER: a
                                         * statement id of another session */

/* What a statement whose session was reopened fails with. */
static const char *k2n_my_client_meaning(int rc)
{
    switch (rc) {
    case K2N_MY_NO_PREPARE_STMT:
        return "statement not prepared in this session";
    case K2N_MY_UNKNOWN_STMT:
        return "statement unknown to this session";
    case K2N_MY_STMT_CLOSED:
        return "statement closed";
    case K2N_MY_SERVER_LOST:
        return "connection lost";
    case K2N_MY_SERVER_GONE:
        return "server gone";
    }
    return NULL;
}

/* st failed with db->rc: had the client library reopened the session, or
 * did the connection break? */
static k2n_repair_e k2n_my_repair(k2n_db_t *db, const k2n_stmt_t *st,
                                  int repeatable)
{
    const char *meaning = k2n_my_client_meaning(db->rc);
    /* these were refused before anything reached the server */
    int unsent = db->rc == K2N_MY_NO_PREPARE_STMT
                 || db->rc == K2N_MY_UNKNOWN_STMT;

    if (!meaning) {
        return K2N_GIVE_UP;             /* the statement itself failed */
    }
    /* apr_dbd_error reads the connection's message, and the client library
     * leaves a statement's own on the statement */
    db->err = apr_psprintf(db->r->pool, "%s failed (%d): %s", st->directive,
                           db->rc, meaning);
    /* With reconnect=1 (the driver's default) this reopens a closed
     * session; with reconnect=0 it fails, and mod_dbd then replaces the
     * connection at its next use. */
    if (apr_dbd_check_conn(db->dbd->driver, db->r->pool, db->dbd->handle)
        != APR_SUCCESS) {
        db->err = apr_pstrcat(db->r->pool, db->err, "; the database connection "
                              "is lost", NULL);
        return K2N_GIVE_UP;
    }
    if (k2n_db_new_session(db) != APR_SUCCESS) {
        return K2N_GIVE_UP;
    }
    if (!unsent && !repeatable) {
        db->err = apr_pstrcat(db->r->pool, db->err, "; the database connection "
                              "broke while the statement ran (it is open again, "
                              "its statements prepared again): not run again, as "
                              "it may have been committed; K2 resends", NULL);
        return K2N_GIVE_UP;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r, "%s; the client library "
                  "had reopened this database session (the server closed the "
                  "connection: a restart, wait_timeout, a kill, a proxy): %s "
                  "and the statements prepared again, running the statement "
                  "again", db->err, k2n_dbd_directives_seen()
                  ? "DBDInitSQL run"
                  /* k2n_db_new_session had no DBDInitSQL to run */
                  : "DBDInitSQL not run again (mod_k2notify is loaded before "
                    "mod_dbd, so it never saw it: load mod_dbd first)");
    return K2N_RUN_AGAIN;
}

/* -- configtest ------------------------------------------------------------- */

static const char *k2n_my_check(apr_pool_t *p, const k2n_srv_conf *sc,
                                const k2n_dir_conf *conf, const char *section)
{
    const k2n_stmt_t *queries[2];
    k2_mysql_finding_t f;
    int i;

    if (sc->dbd_params) {
        k2_mysql_params_check(sc->dbd_params, &f);
        if (f.problem == K2_MYSQL_STRAY_WORD && f.after) {
            /* maybe a piece of the password: named by where it stands */
            return apr_psprintf(p, "DBDParams (%s), used by %s: a word of %d "
                                "characters after '%.*s': %s",
                                sc->dbd_params_where, section, (int)f.len,
                                (int)f.after_len, f.after,
                                k2_mysql_problem_why(f.problem));
        }
        if (f.problem != K2_MYSQL_OK) {
            return apr_psprintf(p, "DBDParams (%s), used by %s: '%.*s': %s",
                                sc->dbd_params_where, section, (int)f.len, f.at,
                                k2_mysql_problem_why(f.problem));
        }
    }
    if (conf->record) {
        k2_mysql_record_check(conf->record->sql, &f);
        if (f.problem != K2_MYSQL_OK) {
            return apr_psprintf(p, K2N_DIR_RECORD_QUERY " (%s), in %s on DBDriver "
                                "mysql: '%.*s' in \"%s\": %s", conf->record->where,
                                section, (int)f.len, f.at, conf->record->sql,
                                k2_mysql_problem_why(f.problem));
        }
    }
    /* a query only needs its placeholders bound */
    queries[0] = conf->account;
    queries[1] = conf->duplicate;
    for (i = 0; i < 2; i++) {
        if (!queries[i]) {
            continue;
        }
        k2_mysql_record_check(queries[i]->sql, &f);
        if (f.problem == K2_MYSQL_QUOTED_PLACEHOLDER) {
            return apr_psprintf(p, "%s (%s), in %s on DBDriver mysql: \"%s\": %s",
                                queries[i]->directive, queries[i]->where, section,
                                queries[i]->sql, k2_mysql_problem_why(f.problem));
        }
    }
    return NULL;
}

static const int k2n_my_rolled_back[] = {
    K2N_MY_DEADLOCK, K2N_MY_LOCK_WAIT_TIMEOUT, 0
};

const k2n_driver_t k2n_mysql_driver = {
    .name = "mysql",
    .repair = k2n_my_repair,
    .record = NULL,                     /* autocommit, run again as above */
    .resend_unproven = "MySQL's ON DUPLICATE KEY UPDATE (and IGNORE) fires on "
                       "any unique key of the table, so 0 rows affected may be "
                       "another payment sharing a unique value (an M-PESA id) "
                       "with a stored one, recorded nowhere",
    .rereads = 5,                       /* 1 + 2 + 4 + 8 + 16 ms at most */
    .rolled_back = k2n_my_rolled_back,
    .reruns = 5,
    .check = k2n_my_check,
};
