/* mod_k2notify.h: private header of the httpd glue (config and handler). */
#ifndef MOD_K2NOTIFY_H
#define MOD_K2NOTIFY_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_optional.h"
#include "apr_dbd.h"
#include "mod_dbd.h"

#include "k2_notification.h"
#include "k2_signature.h"

APLOG_USE_MODULE(k2notify);

/* Directive names, defined once so that a misspelling is a compile error. */
#define K2N_DIR_ACCOUNT_QUERY   "K2NotifyAccountQuery"
#define K2N_DIR_RECORD_QUERY    "K2NotifyRecordQuery"
#define K2N_DIR_DUPLICATE_QUERY "K2NotifyDuplicateQuery"
#define K2N_DIR_CURRENCIES      "K2NotifyCurrencies"
#define K2N_DIR_BILLER_NUMBERS  "K2NotifyBillerNumbers"
#define K2N_DIR_REQUIRE_USER    "K2NotifyRequireUser"
#define K2N_DIR_MAX_BODY        "K2NotifyMaxBody"
#define K2N_DIR_SIGNATURE_KEY   "K2NotifySignatureKeyFile"
#define K2N_DIR_GROUP_COMMIT    "K2NotifyGroupCommit"
#define K2N_DIR_FORMAT          "K2NotifyFormat"
#define K2N_DIR_TOPICS          "K2NotifyTopics"
#define K2N_DIR_LOCK_TIMEOUT    "K2NotifyLockTimeout"

/* The cross-process lock of the module's SQLite writes, for the Mutex
 * directive ("Mutex fcntl:/run/apache2 k2notify-db"). */
#define K2N_MUTEX_NAME          "k2notify-db"

#define K2N_HANDLER             "k2notify"

/* The release, logged at startup: the Makefile passes the version of
 * debian/changelog's first line (-DK2N_VERSION=\"0.3.0\"). */
#ifndef K2N_VERSION
#define K2N_VERSION             "unknown"
#endif
#define K2N_DEFAULT_MAX_BODY    8192    /* the spec's body is ~330 bytes */
#define K2N_K2CONNECT_MAX_BODY  65536   /* K2 Connect's largest events (a
                                         * settlement with its disbursements)
                                         * are a few KiB */
#define K2N_MAX_KEY_FILE        4096    /* an API key is tens of bytes */

/* What became of a notification: K2_OUTCOME in the request environment,
 * and a counter of the server-status section. */
typedef enum {
    K2N_ACCEPTED = 0,
    K2N_DUPLICATE,
    K2N_ACCOUNT_NOT_FOUND,
    K2N_INVALID_PAYMENT,
    K2N_BAD_REQUEST,
    K2N_BAD_SIGNATURE,
    K2N_CONFLICT,
    K2N_ERROR,
    K2N_IGNORED,                        /* K2 Connect: a topic not recorded */
    K2N_OUTCOME_COUNT
} k2n_outcome_e;

/* "accepted", "duplicate", ... indexed by k2n_outcome_e. */
extern const char *const k2n_outcome_names[K2N_OUTCOME_COUNT];

/* What a notification is: K2's form API (the spec's POST), or a K2 Connect
 * webhook (signed JSON). */
typedef enum {
    K2N_FORMAT_FORM = 0,
    K2N_FORMAT_K2CONNECT
} k2n_format_e;

/* Which statement a query directive defines. */
typedef enum {
    K2N_Q_ACCOUNT = 1,
    K2N_Q_RECORD,
    K2N_Q_DUPLICATE
} k2n_query_e;

/* What a statement's %s is bound to. */
typedef enum {
    K2N_FIELD_FORM = 0,                 /* a form field (form_field) */
    K2N_FIELD_POINTER,                  /* a JSON pointer into the webhook */
    K2N_FIELD_RAW_BODY,                 /* the body, exactly as received */
    K2N_FIELD_REMOTE_USER,              /* the authenticated user */
    K2N_FIELD_DEFAULT                   /* none named: ac_no (account) or
                                         * k2_transaction_id (duplicate) of a
                                         * form, the event id of a webhook */
} k2n_field_kind_e;

typedef struct {
    k2n_field_kind_e kind;
    int form_field;                     /* k2_field_e, for K2N_FIELD_FORM */
    const char *name;                   /* as written: field name, pointer */
} k2n_field_t;

/* A statement prepared through mod_dbd at config time. */
typedef struct {
    const char *directive;              /* the directive that defined it */
    k2n_query_e query;                  /* which one */
    const char *sql;                    /* as written, for log messages */
    const char *label;                  /* key in ap_dbd_t.prepared */
    int nfields;                        /* number of %s placeholders */
    const k2n_field_t *fields;          /* what each %s is bound to */
    const char *where;                  /* "line N of FILE", for messages */
    int nkeys;                          /* record statement: the columns of
                                         * its ON CONFLICT key known (0:
                                         * unknown) ... */
    const int *key;                     /* ... and, for each %s, the key
                                         * column it makes (1..nkeys) or 0
                                         * (k2_sql_conflict_key) */
} k2n_stmt_t;

/* The API key K2 signs notifications with, read from its file at startup
 * (by root, before httpd drops privileges). */
typedef struct {
    const unsigned char *bytes;         /* the key, without trailing CR/LF */
    apr_size_t len;                     /* its length, > 0 */
    const char *path;                   /* the file it came from */
} k2n_key_t;

/* Per-directory configuration; every field has an "unset" value and a
 * merge rule in k2n_merge_dir_conf. */
typedef struct {
    const k2n_stmt_t *account;          /* K2NotifyAccountQuery, NULL unset */
    const k2n_stmt_t *record;           /* K2NotifyRecordQuery, NULL unset */
    const k2n_stmt_t *duplicate;        /* K2NotifyDuplicateQuery, NULL unset */
    apr_array_header_t *currencies;     /* NULL-terminated list, NULL unset */
    apr_array_header_t *billers;        /* NULL-terminated list, NULL = any */
    int require_user;                   /* K2NotifyRequireUser, -1 unset */
    apr_off_t max_body;                 /* K2NotifyMaxBody, -1 unset */
    const k2n_key_t *key;               /* K2NotifySignatureKeyFile, NULL unset */
    int handler;                        /* this section's own SetHandler: 1
                                         * k2notify, 0 another, -1 unset */
    int status_slot;                    /* its server-status row, -1 none */
    int format;                         /* K2NotifyFormat, -1 unset (form) */
    apr_array_header_t *topics;         /* K2NotifyTopics (NULL-terminated),
                                         * NULL unset: every topic */
    const char *topics_where;           /* "line N of FILE" of K2NotifyTopics */
    int duplicate_format;               /* the format duplicate was written
                                         * for: -1 the location's own, else
                                         * that of the sections it was set in,
                                         * when a section below them changes
                                         * K2NotifyFormat */
} k2n_dir_conf;

/* Per-server configuration. */
typedef struct {
    int group_commit;                   /* K2NotifyGroupCommit, -1 unset */
    apr_interval_time_t lock_timeout;   /* K2NotifyLockTimeout, -1 unset */
    struct k2_batch_t *batch;           /* this child's group-commit queue
                                         * (set at child init), or NULL */
    struct k2n_db_lock_t *db_lock;      /* the k2notify-db lock of its SQLite
                                         * database (set at post_config), or
                                         * NULL */
    /* mod_dbd's directives, read as it reads them (k2n_note_dbd) and
     * merged as it merges them: which database this server writes */
    const char *dbd_driver;             /* DBDriver, NULL unset */
    const char *dbd_params;             /* DBDParams, NULL unset */
    const char *dbd_params_where;       /* "line N of FILE" of DBDParams */
    apr_array_header_t *dbd_init_sql;   /* DBDInitSQL (const char *), in the
                                         * order mod_dbd runs them; NULL none */
} k2n_srv_conf;

/* 1 if mod_k2notify sees mod_dbd's directives before mod_dbd does (its
 * LoadModule comes after mod_dbd's, as Debian's a2enmod orders them), so
 * that k2n_srv_conf's dbd_* fields say what mod_dbd was told; 0 if they are
 * unknown. */
int k2n_dbd_directives_seen(void);

extern const command_rec k2n_cmds[];
void *k2n_create_dir_conf(apr_pool_t *p, char *dir);
void *k2n_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
void *k2n_create_srv_conf(apr_pool_t *p, server_rec *s);
void *k2n_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);

/* Every statement of the configuration (k2n_stmt_t *), in the order read:
 * a connection that lost them prepares those mod_dbd gave it again. */
const apr_array_header_t *k2n_config_statements(void);

/* mod_dbd's functions, found when the first statement is configured. */
extern APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *k2n_dbd_acquire;
extern APR_OPTIONAL_FN_TYPE(ap_dbd_open) *k2n_dbd_open;
extern APR_OPTIONAL_FN_TYPE(ap_dbd_close) *k2n_dbd_close;

extern module AP_MODULE_DECLARE_DATA k2notify_module;

/* What reading the configuration collected (the statements, warnings such
 * as a key file other users can read): forgotten at pre_config; warnings
 * are logged once the error log is open. */
void k2n_config_forget(void);
void k2n_config_log_warnings(void);

/* The server-status section (mod_k2notify_status.c). */
void k2n_status_register_hooks(apr_pool_t *p);
/* Count the outcome of a notification in its location's row. */
void k2n_status_count(request_rec *r, k2n_outcome_e outcome);
/* SetHandler, seen before core's own handler reads it (DECLINE_CMD): which
 * sections have a row. */
const char *k2n_status_note_handler(cmd_parms *cmd, void *dconf,
                                    const char *args);

/* Effective values of a merged configuration. */
const char *const *k2n_conf_currencies(const k2n_dir_conf *conf);
const char *const *k2n_conf_billers(const k2n_dir_conf *conf);
k2n_format_e k2n_conf_format(const k2n_dir_conf *conf);

/* Why conf (merged) cannot serve a notification of its format, or NULL:
 * the check_config hook refuses such a configuration at startup and
 * configtest, and the handler answers 500 if one gets through.  serving:
 * a request is being served with it (else only a section that says
 * SetHandler k2notify must be complete). */
const char *k2n_conf_problem(apr_pool_t *p, const k2n_dir_conf *conf,
                             const char *section, int serving);
int k2n_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s);

/* The database work of one request (mod_k2notify_dbd.c).  Each call
 * returns APR_SUCCESS, or an error with err set to a line for the log that
 * names the directive and carries the database's own message. */
typedef struct k2n_driver_t k2n_driver_t;   /* mod_k2notify_dbd.h */

typedef struct {
    request_rec *r;
    ap_dbd_t *dbd;                      /* mod_dbd's pooled connection */
    const k2n_driver_t *drv;            /* what its driver does its own way */
    int rc;                             /* the driver's code of the failure */
    const char *err;                    /* why the last call failed */
    int batch_size;                     /* of the transaction that recorded */
} k2n_db_t;

/* Acquire the request's connection: 0 when there is none (mod_dbd has
 * logged why). */
int k2n_db_open(k2n_db_t *db, request_rec *r);

/* Run a query: *found is 1 when it returned a row.  Safe to repeat, so run
 * again once when the connection had lost the statement or broken. */
apr_status_t k2n_db_exists(k2n_db_t *db, const k2n_stmt_t *st,
                           const char **args, int *found);

/* Run a query and copy the first ncols columns of its first row into cols
 * (NULL for SQL NULL); *found is 0 when it returned no row. */
apr_status_t k2n_db_first_row(k2n_db_t *db, const k2n_stmt_t *st,
                              const char **args, int ncols, const char **cols,
                              int *found);

/* k2n_db_first_row for the stored row of a record statement that affected
 * no row: on a driver whose reads may not yet see a row the statement met
 * (k2n_driver_t's rereads), read again a few times before *found is 0. */
apr_status_t k2n_db_stored_row(k2n_db_t *db, const k2n_stmt_t *st,
                               const char **args, int ncols, const char **cols,
                               int *found);

/* Run the record statement; *nrows is the number of rows it affected.  On
 * SQLite it is committed in a transaction of its own or shared with the
 * notifications queued meanwhile (group commit), under the k2notify-db
 * lock; it returns once that transaction has committed.  It is run again
 * only when its first run provably did not happen. */
apr_status_t k2n_db_record(k2n_db_t *db, const k2n_stmt_t *st,
                           const char **args, int *nrows);

/* NULL when, on db's driver, a record statement that affected no row
 * proves a resend; else why it does not (K2NotifyDuplicateQuery must then
 * find the stored payment before a 01). */
const char *k2n_db_resend_unproven(const k2n_db_t *db);

/* "the main server", or "the virtual host NAME (line N of FILE)". */
const char *k2n_server_name(apr_pool_t *p, const server_rec *s);

/* Why configtest refuses section (conf, merged) of server s for what its
 * database driver (DBDriver, as mod_dbd reads it) cannot do, or because it
 * serves notifications and its server has no DBDriver; or NULL (also when
 * mod_dbd's directives are unknown: k2n_dbd_directives_seen). */
const char *k2n_dbd_conf_problem(apr_pool_t *p, server_rec *s,
                                 const k2n_dir_conf *conf, const char *section);

void k2n_dbd_register_hooks(apr_pool_t *p);

#endif /* MOD_K2NOTIFY_H */
