/* mod_k2notify.c: receive Kopo Kopo (K2) HTTP POST payment notifications.
 *
 * The handler reads the form, lets the pure code (k2_*.c) decode and
 * validate it, finds the account and records the payment through mod_dbd,
 * and answers the JSON K2 expects.  Each notification leaves one decision
 * in the error log (LogLevel k2notify:info) and K2_* variables in the
 * request environment for the access log.
 */
#include <string.h>

#include "apr_strings.h"
#include "apr_buckets.h"
#include "apr_dbd.h"
#include "apr_hash.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

#include "mod_k2notify.h"

const char *const k2n_outcome_names[K2N_OUTCOME_COUNT] = {
    "accepted", "duplicate", "account_not_found", "invalid_payment",
    "bad_request", "bad_signature", "conflict", "error", "ignored"
};

/* The reply to a missing or wrong signature: the same for both, so that a
 * client learns nothing from it (the error log says which). */
#define K2N_BAD_SIGNATURE_REASON "missing or invalid signature"

/* The 200 replies never change: written once, at startup, by Jansson. */
static char k2n_reply_body[4][64];
static apr_size_t k2n_reply_len[4];

typedef struct {
    request_rec *r;
    k2_notification_t n;
    apr_array_header_t *pairs;          /* every k2_pair_t, when signed */
    apr_size_t base_size;               /* room their base string needs */
    const char *stored_ac_no;           /* of a duplicate, as stored */
    const char *stored_amount;
} k2n_request_t;

/* A field's value for the decision line: "-" when absent, and cut short
 * (at a character boundary, with its full size) when long, so that httpd's
 * 8 KiB limit on a log message never cuts the outcome off the line. */
#define K2N_LOG_VALUE_MAX 64

static const char *k2n_value(const k2n_request_t *q, int field)
{
    const char *v = q->n.value[field];
    apr_size_t len, cut;

    if (!v) {
        return "-";
    }
    len = strlen(v);
    if (len <= K2N_LOG_VALUE_MAX) {
        return v;
    }
    cut = K2N_LOG_VALUE_MAX;
    while (cut > 0 && ((unsigned char)v[cut] & 0xC0) == 0x80) {
        cut--;                          /* not inside a UTF-8 sequence */
    }
    return apr_psprintf(q->r->pool, "%.*s...(%" APR_SIZE_T_FMT " bytes)",
                        (int)cut, v, len);
}

/* Put the K2_* variables in the environment and log the decision. */
static void k2n_conclude(k2n_request_t *q, k2n_outcome_e outcome,
                         const char *status, const char *detail)
{
    request_rec *r = q->r;
    static const struct { const char *var; int field; } vars[] = {
        { "K2_TRANSACTION_ID", K2_F_K2_TRANSACTION_ID },
        { "K2_AC_NO", K2_F_AC_NO },
        { "K2_AMOUNT", K2_F_AMOUNT },
        { "K2_CURRENCY", K2_F_CURRENCY }
    };
    apr_size_t i;

    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (q->n.value[vars[i].field]) {
            apr_table_setn(r->subprocess_env, vars[i].var,
                           q->n.value[vars[i].field]);
        }
    }
    apr_table_setn(r->subprocess_env, "K2_STATUS", status ? status : "");
    apr_table_setn(r->subprocess_env, "K2_OUTCOME", k2n_outcome_names[outcome]);

    if (outcome == K2N_ERROR || outcome == K2N_CONFLICT) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "notification k2_transaction_id=%s ac_no=%s outcome=%s: %s",
                      k2n_value(q, K2_F_K2_TRANSACTION_ID), k2n_value(q, K2_F_AC_NO),
                      k2n_outcome_names[outcome], detail);
    }
    else {
        /* A refused signature is worth a look at the default LogLevel. */
        ap_log_rerror(APLOG_MARK, outcome == K2N_BAD_SIGNATURE ? APLOG_WARNING
                                                               : APLOG_INFO, 0, r,
                      "notification k2_transaction_id=%s ac_no=%s amount=%s "
                      "outcome=%s%s%s",
                      k2n_value(q, K2_F_K2_TRANSACTION_ID), k2n_value(q, K2_F_AC_NO),
                      k2n_value(q, K2_F_AMOUNT), k2n_outcome_names[outcome],
                      detail ? ": " : "", detail ? detail : "");
    }
}

static int k2n_write(request_rec *r, int http_status, const char *body,
                     apr_size_t len)
{
    r->status = http_status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    ap_rwrite(body, (int)len, r);
    return OK;
}

/* A 200 reply with a K2 status. */
static int k2n_reply(k2n_request_t *q, k2_status_e status, k2n_outcome_e outcome,
                     const char *detail)
{
    k2n_conclude(q, outcome, k2_status_code(status), detail);
    return k2n_write(q->r, HTTP_OK, k2n_reply_body[status], k2n_reply_len[status]);
}

/* A non-200 reply: a JSON body with the HTTP description and a reason;
 * detail is what the error log says. */
static int k2n_refuse_logged(k2n_request_t *q, int http_status,
                             k2n_outcome_e outcome, const char *reason,
                             const char *detail)
{
    char body[512];
    const char *line = ap_get_status_line(http_status);
    apr_size_t len;

    k2n_conclude(q, outcome, NULL, detail);
    /* "400 Bad Request" -> "Bad Request" */
    len = k2_reply_error(line + 4, outcome == K2N_ERROR ? NULL : reason,
                         body, sizeof(body));
    if (len == 0) {
        len = k2_reply_error(line + 4, NULL, body, sizeof(body));
    }
    return k2n_write(q->r, http_status, body, len);
}

/* A non-200 reply whose reason is also the error log's detail. */
static int k2n_refuse(k2n_request_t *q, int http_status, k2n_outcome_e outcome,
                      const char *reason)
{
    return k2n_refuse_logged(q, http_status, outcome, reason, reason);
}

/* 400 for a notification the pure code refused. */
static int k2n_bad_request(k2n_request_t *q, k2_reason_e reason)
{
    int field = reason == K2_BAD_CONFLICT ? q->n.conflict_field
              : reason == K2_BAD_MISSING ? q->n.missing_field : -1;

    return k2n_refuse(q, HTTP_BAD_REQUEST, K2N_BAD_REQUEST,
                      field < 0 ? k2_reason(reason)
                      : apr_pstrcat(q->r->pool, k2_reason(reason), ": ",
                                    k2_field_name(field), NULL));
}

/* k2_form_parse's callback: keep every pair for the signature's base
 * string, and count the room it needs (name '=' value, then '&' or NUL). */
static void k2n_keep_pair(void *baton, const char *name, const char *value)
{
    k2n_request_t *q = baton;
    k2_pair_t *pair = apr_array_push(q->pairs);

    pair->name = name;
    pair->value = value;
    q->base_size += strlen(name) + strlen(value) + 2;
}

/* NULL if the notification's signature is valid under key, else why not,
 * for the error log.  Never the key, the digest or the signature itself. */
static const char *k2n_check_signature(k2n_request_t *q, const k2n_key_t *key)
{
    const k2_pair_t *pairs = (const k2_pair_t *)q->pairs->elts;
    apr_size_t n = (apr_size_t)q->pairs->nelts, i, len;
    const char *signature = NULL;
    char *base;

    for (i = 0; i < n; i++) {
        if (strcmp(pairs[i].name, K2_SIGNATURE_PARAM) != 0) {
            continue;
        }
        if (signature && strcmp(signature, pairs[i].value) != 0) {
            return "signature given twice with different values";
        }
        signature = pairs[i].value;
    }
    if (!signature || !*signature) {
        return "no signature";
    }
    if (strlen(signature) != K2_SIGNATURE_LEN) {
        return apr_psprintf(q->r->pool, "the signature has %" APR_SIZE_T_FMT
                            " characters, not %d", strlen(signature),
                            K2_SIGNATURE_LEN);
    }
    base = apr_palloc(q->r->pool, q->base_size + 1);
    len = k2_signature_base(pairs, n, base, q->base_size + 1);
    if (len == 0) {
        return "no parameter besides the signature";
    }
    if (!k2_signature_valid(base, len, key->bytes, key->len, signature)) {
        return "the signature does not match";
    }
    return NULL;
}

/* 1 if the request's Content-Type (if any) is a form. */
static int k2n_is_form(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    static const char form[] = "application/x-www-form-urlencoded";
    apr_size_t n = sizeof(form) - 1;

    if (!ct) {
        return 1;       /* K2's curl line sends a form; read it as one */
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, form, n) != 0) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/* Read the whole body, at most max bytes, into *buf (NUL-terminated).
 * Returns OK, an HTTP status to answer, or AP_FILTER_ERROR when an input
 * filter has already answered (e.g. LimitRequestBody). */
static int k2n_read_body(request_rec *r, apr_off_t max, char **buf,
                         apr_size_t *len)
{
    const char *clen = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    apr_off_t cl = -1, size = max;
    int seen_eos = 0;

    *len = 0;
    *buf = NULL;
    if (clen) {
        char *end;

        if (apr_strtoff(&cl, clen, &end, 10) != APR_SUCCESS || *end || cl < 0) {
            return HTTP_BAD_REQUEST;
        }
        if (cl > max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        size = cl;
    }
    if (!ap_request_has_body(r)) {
        return OK;
    }
    *buf = apr_palloc(r->pool, (apr_size_t)size + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    do {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                                         APR_BLOCK_READ, HUGE_STRING_LEN);

        if (rv == AP_FILTER_ERROR) {
            return AP_FILTER_ERROR;
        }
        if (rv != APR_SUCCESS) {
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            }
            if ((apr_off_t)(*len + n) > size) {
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(*buf + *len, data, n);
            *len += n;
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    (*buf)[*len] = '\0';
    return OK;
}

/* The values bound to a statement's %s placeholders (NULL: SQL NULL). */
static const char **k2n_args(k2n_request_t *q, const k2n_stmt_t *st)
{
    const char **args = apr_palloc(q->r->pool, sizeof(char *) * (apr_size_t)st->nfields);
    int i;

    for (i = 0; i < st->nfields; i++) {
        args[i] = q->n.value[st->fields[i]];
    }
    return args;
}

static apr_dbd_prepared_t *k2n_prepared(k2n_request_t *q, ap_dbd_t *dbd,
                                        const k2n_stmt_t *st, const char **err)
{
    apr_dbd_prepared_t *stmt = apr_hash_get(dbd->prepared, st->label,
                                            APR_HASH_KEY_STRING);

    if (!stmt) {
        *err = apr_psprintf(q->r->pool, "the %s statement is not prepared on "
                            "this database connection (see mod_dbd's errors): "
                            "%s", st->directive, st->sql);
    }
    return stmt;
}

/* Run a query of st with random=1: both drivers then fetch the whole result
 * inside pselect, so a failed query is reported there (pgsql's sequential
 * mode reports a server error as "no more rows": an account not found), and
 * nothing is left open: SQLite's statement is reset (an open read cursor
 * makes the next write fail with "database is locked" under load), pgsql has
 * no results pending. */
static apr_status_t k2n_select(k2n_request_t *q, ap_dbd_t *dbd,
                               const k2n_stmt_t *st, apr_dbd_results_t **res,
                               const char **err)
{
    apr_dbd_prepared_t *stmt = k2n_prepared(q, dbd, st, err);
    int rv;

    *res = NULL;
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pselect(dbd->driver, q->r->pool, dbd->handle, res, stmt, 1,
                         st->nfields, k2n_args(q, st));
    if (rv != 0) {
        *err = apr_psprintf(q->r->pool, "%s failed (%d): %s", st->directive, rv,
                            apr_dbd_error(dbd->driver, dbd->handle, rv));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Run the account query; *found is 1 when it returned a row. */
static apr_status_t k2n_find_account(k2n_request_t *q, ap_dbd_t *dbd,
                                     const k2n_stmt_t *st, int *found,
                                     const char **err)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    int ntuples;

    *found = 0;
    if (k2n_select(q, dbd, st, &res, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    ntuples = apr_dbd_num_tuples(dbd->driver, res);
    if (ntuples >= 0) {
        *found = ntuples > 0;
        return APR_SUCCESS;
    }
    /* A driver that cannot count: read to the end of the result set. */
    while (apr_dbd_get_row(dbd->driver, q->r->pool, res, &row, -1) == 0) {
        *found = 1;
    }
    return APR_SUCCESS;
}

/* Run the duplicate query: *same is 1 when the stored transaction has the
 * notification's ac_no and amount, 0 when it differs (a conflict), -1 when
 * the query finds no stored row.  Its first column is the stored ac_no, the
 * second the stored amount; every row is read, the first one counts. */
static apr_status_t k2n_find_duplicate(k2n_request_t *q, ap_dbd_t *dbd,
                                       const k2n_stmt_t *st, int *same,
                                       const char **err)
{
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;

    *same = -1;
    if (k2n_select(q, dbd, st, &res, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    while (apr_dbd_get_row(dbd->driver, q->r->pool, res, &row, -1) == 0) {
        const char *ac_no, *amount;

        if (*same >= 0) {
            continue;                   /* read to the end, keep the first */
        }
        ac_no = apr_dbd_get_entry(dbd->driver, row, 0);
        amount = apr_dbd_get_entry(dbd->driver, row, 1);
        q->stored_ac_no = ac_no ? apr_pstrdup(q->r->pool, ac_no) : "NULL";
        q->stored_amount = amount ? apr_pstrdup(q->r->pool, amount) : "NULL";
        *same = ac_no && amount
                && strcmp(ac_no, q->n.value[K2_F_AC_NO]) == 0
                && k2_amount_equal(amount, q->n.value[K2_F_AMOUNT]);
    }
    return APR_SUCCESS;
}

/* Run the record statement; *nrows is the number of rows it affected. */
static apr_status_t k2n_record(k2n_request_t *q, ap_dbd_t *dbd,
                               const k2n_stmt_t *st, int *nrows, const char **err)
{
    apr_dbd_prepared_t *stmt = k2n_prepared(q, dbd, st, err);
    int rv;

    *nrows = 0;
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pquery(dbd->driver, q->r->pool, dbd->handle, nrows, stmt,
                        st->nfields, k2n_args(q, st));
    if (rv != 0) {
        *err = apr_psprintf(q->r->pool, "%s failed (%d): %s", st->directive, rv,
                            apr_dbd_error(dbd->driver, dbd->handle, rv));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Did the statement fail because the connection lost it?  The drivers give
 * no portable error code, only their own messages:
 * - pgsql: a restarted server forgets every prepared statement; once the
 *   driver has reset the connection, each use fails "prepared statement
 *   ... does not exist" (mod_dbd keeps handing that connection out);
 * - sqlite3: the driver prepares with the legacy sqlite3_prepare(), whose
 *   statements expire for good when the schema changes (a CREATE TABLE,
 *   VACUUM or ALTER by anyone): "database schema has changed", then
 *   "not an error" on every later use. */
static int k2n_statement_lost(ap_dbd_t *dbd, const char *err)
{
    const char *driver = apr_dbd_name(dbd->driver);

    if (strcmp(driver, "pgsql") == 0) {
        return strstr(err, "prepared statement") && strstr(err, "does not exist");
    }
    if (strcmp(driver, "sqlite3") == 0) {
        return strstr(err, "schema has changed") || strstr(err, "not an error");
    }
    return 0;
}

/* Prepare this location's statements again on this connection, in the
 * connection's pool (they live as long as it). */
static int k2n_reprepare(k2n_request_t *q, ap_dbd_t *dbd,
                         const k2n_dir_conf *conf)
{
    const k2n_stmt_t *stmts[3];
    int i;

    stmts[0] = conf->account;
    stmts[1] = conf->record;
    stmts[2] = conf->duplicate;
    for (i = 0; i < 3; i++) {
        apr_dbd_prepared_t *stmt = NULL;
        int ret;

        if (!stmts[i]) {
            continue;
        }
        ret = apr_dbd_prepare(dbd->driver, dbd->pool, dbd->handle,
                              stmts[i]->sql, stmts[i]->label, &stmt);
        if (ret != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, q->r, "cannot prepare the "
                          "%s statement again (%d): %s", stmts[i]->directive,
                          ret, apr_dbd_error(dbd->driver, dbd->handle, ret));
            return 0;
        }
        apr_hash_set(dbd->prepared, stmts[i]->label, APR_HASH_KEY_STRING, stmt);
    }
    return 1;
}

typedef apr_status_t k2n_stmt_fn(k2n_request_t *q, ap_dbd_t *dbd,
                                 const k2n_stmt_t *st, int *out,
                                 const char **err);

/* Run a statement; when it fails because the connection dropped or lost
 * it, repair the connection and run it again.  Both statements are safe to
 * run twice: a lookup, and an insert that does nothing on a duplicate. */
static apr_status_t k2n_run(k2n_request_t *q, ap_dbd_t *dbd,
                            const k2n_dir_conf *conf, k2n_stmt_fn *fn,
                            const k2n_stmt_t *st, int *out, const char **err)
{
    request_rec *r = q->r;
    apr_status_t rv = fn(q, dbd, st, out, err);

    if (rv == APR_SUCCESS) {
        return rv;
    }
    if (strcmp(apr_dbd_name(dbd->driver), "sqlite3") == 0
        && strstr(*err, "readonly database")) {
        /* SQLite opens a file it cannot write read-only, silently, and
         * mod_dbd keeps that connection: say what it takes to recover. */
        *err = apr_pstrcat(r->pool, *err, " (this pooled connection was opened "
                           "while the database file or its directory was not "
                           "writable by the httpd user, and stays read-only: "
                           "fix the permissions, then apachectl graceful)", NULL);
        return rv;
    }
    if (!k2n_statement_lost(dbd, *err)) {
        /* pgsql: a connection the server closed is reset by check_conn
         * (its prepared statements are then gone: see above). */
        if (strcmp(apr_dbd_name(dbd->driver), "pgsql") != 0
            || apr_dbd_check_conn(dbd->driver, r->pool, dbd->handle) != APR_SUCCESS) {
            return rv;
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "%s; the database "
                      "connection was checked: retrying", *err);
        rv = fn(q, dbd, st, out, err);
        if (rv == APR_SUCCESS || !k2n_statement_lost(dbd, *err)) {
            return rv;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "%s; the database "
                  "connection lost its prepared statements: preparing them "
                  "again", *err);
    if (!k2n_reprepare(q, dbd, conf)) {
        return rv;
    }
    return fn(q, dbd, st, out, err);
}

static int k2n_handler(request_rec *r)
{
    const k2n_dir_conf *conf;
    k2n_request_t q;
    k2_reason_e reason;
    apr_off_t max_body;
    char *body;
    apr_size_t body_len;
    ap_dbd_t *dbd;
    const char *err = NULL;
    k2_pair_fn *on_pair = NULL;
    int rc, found, nrows, same;

    if (!r->handler || strcmp(r->handler, K2N_HANDLER) != 0) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &k2notify_module);
    k2_notification_init(&q.n);
    q.r = r;
    q.pairs = NULL;
    q.base_size = 0;
    q.stored_ac_no = q.stored_amount = NULL;

    if (r->method_number != M_POST) {
        apr_table_setn(r->headers_out, "Allow", "POST");
        return k2n_refuse(&q, HTTP_METHOD_NOT_ALLOWED, K2N_BAD_REQUEST,
                          apr_pstrcat(r->pool, "method ", r->method,
                                      " not allowed: K2 notifications are POSTed",
                                      NULL));
    }
    if (ap_request_has_body(r) && !k2n_is_form(r)) {
        return k2n_refuse(&q, HTTP_UNSUPPORTED_MEDIA_TYPE, K2N_BAD_REQUEST,
                          "the body must be application/x-www-form-urlencoded");
    }

    max_body = conf->max_body > 0 ? conf->max_body : K2N_DEFAULT_MAX_BODY;
    rc = k2n_read_body(r, max_body, &body, &body_len);
    if (rc == AP_FILTER_ERROR) {
        k2n_conclude(&q, K2N_BAD_REQUEST, NULL, "the request body was refused "
                     "by an input filter");
        return rc;
    }
    if (rc != OK) {
        /* The rest of the body is not worth reading: close the connection
         * instead (ap_discard_request_body() then reads nothing). */
        r->connection->keepalive = AP_CONN_CLOSE;
        return k2n_refuse(&q, rc, K2N_BAD_REQUEST,
                          rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                          ? apr_psprintf(r->pool, "the body is larger than "
                                         K2N_DIR_MAX_BODY " (%" APR_OFF_T_FMT
                                         " bytes)", max_body)
                          : "the request body could not be read");
    }

    /* The spec shows the parameters both in the query string and in the
     * body: both are read, and a parameter in both must repeat its value.
     * A signature covers every parameter received, known or not. */
    if (conf->key) {
        q.pairs = apr_array_make(r->pool, 24, sizeof(k2_pair_t));
        on_pair = k2n_keep_pair;
    }
    reason = K2_OK;
    if (r->args && *r->args) {
        apr_size_t n = strlen(r->args);

        reason = k2_form_parse(&q.n, r->args, n, apr_palloc(r->pool, n + 1),
                               on_pair, &q);
    }
    if (reason == K2_OK && body_len > 0) {
        reason = k2_form_parse(&q.n, body, body_len,
                               apr_palloc(r->pool, body_len + 1), on_pair, &q);
    }
    q.n.value[K2_F_REMOTE_USER] = r->user;

    /* Mistakes of the configuration come before those of the request; they
     * are checked once the notification is parsed, so that the log line
     * says which payment got the 500. */
    if (!conf->account || !k2n_dbd_acquire) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          "this location has 'SetHandler k2notify' but no "
                          K2N_DIR_ACCOUNT_QUERY);
    }
    /* With a key, the signature authenticates the notification: one without
     * a valid signature is refused with 401 below, user or not. */
    if (conf->require_user != 0 && !r->user && !conf->key) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          "this location has no authentication (no user was "
                          "authenticated): add 'AuthType Basic' and 'Require "
                          "valid-user', set " K2N_DIR_SIGNATURE_KEY ", or set "
                          K2N_DIR_REQUIRE_USER " Off");
    }
    /* Malformed input is a 400 before anything is verified. */
    if (reason != K2_OK) {
        return k2n_bad_request(&q, reason);
    }
    if (conf->key) {
        const char *why = k2n_check_signature(&q, conf->key);

        if (why) {
            return k2n_refuse_logged(&q, HTTP_UNAUTHORIZED, K2N_BAD_SIGNATURE,
                                     K2N_BAD_SIGNATURE_REASON, why);
        }
    }
    reason = k2_notification_validate(&q.n, k2n_conf_currencies(conf),
                                      k2n_conf_billers(conf));
    if (reason != K2_OK && !k2_reason_is_invalid_payment(reason)) {
        return k2n_bad_request(&q, reason);
    }
    if (reason != K2_OK) {
        return k2n_reply(&q, K2_STATUS_INVALID_PAYMENT, K2N_INVALID_PAYMENT,
                         k2_reason(reason));
    }

    dbd = k2n_dbd_acquire(r);
    if (!dbd) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          "no database connection (mod_dbd's own error is "
                          "logged above)");
    }
    if (k2n_run(&q, dbd, conf, k2n_find_account, conf->account, &found, &err)
        != APR_SUCCESS) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, err);
    }
    if (!found) {
        return k2n_reply(&q, K2_STATUS_ACCOUNT_NOT_FOUND, K2N_ACCOUNT_NOT_FOUND,
                         NULL);
    }
    if (!conf->record) {
        return k2n_reply(&q, K2_STATUS_ACCEPTED, K2N_ACCEPTED, NULL);
    }
    if (k2n_run(&q, dbd, conf, k2n_record, conf->record, &nrows, &err)
        != APR_SUCCESS) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, err);
    }
    if (nrows > 0) {
        return k2n_reply(&q, K2_STATUS_ACCEPTED, K2N_ACCEPTED, NULL);
    }
    if (!conf->duplicate) {
        return k2n_reply(&q, K2_STATUS_ACCEPTED, K2N_DUPLICATE, "already recorded");
    }
    /* Already recorded: a true resend, or another payment reusing the id? */
    if (k2n_run(&q, dbd, conf, k2n_find_duplicate, conf->duplicate, &same, &err)
        != APR_SUCCESS) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, err);
    }
    if (same < 0) {
        return k2n_refuse(&q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          K2N_DIR_RECORD_QUERY " recorded nothing but "
                          K2N_DIR_DUPLICATE_QUERY " finds no stored transaction");
    }
    if (!same) {
        return k2n_reply(&q, K2_STATUS_INVALID_PAYMENT, K2N_CONFLICT,
                         apr_psprintf(r->pool, "this transaction id is already "
                                      "recorded with ac_no=%s amount=%s",
                                      q.stored_ac_no, q.stored_amount));
    }
    return k2n_reply(&q, K2_STATUS_ACCEPTED, K2N_DUPLICATE, "already recorded");
}

static int k2n_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    (void)pconf; (void)plog; (void)ptemp;
    k2n_config_forget_warnings();
    return OK;
}

/* apachectl configtest: the configuration's warnings on its output. */
static void k2n_test_config(apr_pool_t *pconf, server_rec *s)
{
    (void)pconf; (void)s;
    k2n_config_log_warnings();
}

static int k2n_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    int status;

    (void)pconf; (void)plog; (void)ptemp;
    /* Once per start or graceful restart (not in the first of the two
     * passes httpd makes at startup), in the error log that serves. */
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "mod_k2notify " K2N_VERSION " loaded");
    }
    /* httpd reads its configuration twice at startup: warn once, in the
     * error log of the configuration that will serve. */
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        k2n_config_log_warnings();
    }
    for (status = K2_STATUS_ACCEPTED; status <= K2_STATUS_INVALID_PAYMENT; status++) {
        k2n_reply_len[status] = k2_reply_status((k2_status_e)status,
                                                k2n_reply_body[status],
                                                sizeof(k2n_reply_body[status]));
        if (k2n_reply_len[status] == 0) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         "cannot build the JSON reply for status %d", status);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static void k2n_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(k2n_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(k2n_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(k2n_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(k2n_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

/* APLOG_USE_MODULE(k2notify) is in mod_k2notify.h, so AP_DECLARE_MODULE's
 * copy of it is not repeated here. */
module AP_MODULE_DECLARE_DATA k2notify_module = {
    STANDARD20_MODULE_STUFF,
    k2n_create_dir_conf,        /* per-directory config creator */
    k2n_merge_dir_conf,         /* per-directory config merger */
    NULL,                       /* server config creator */
    NULL,                       /* server config merger */
    k2n_cmds,                   /* command table */
    k2n_register_hooks,         /* hook registration */
    AP_MODULE_FLAG_NONE         /* flags */
};
