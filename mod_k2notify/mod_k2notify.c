/* mod_k2notify.c: receive Kopo Kopo (K2) payment notifications.
 *
 * Two formats: K2's HTTP POST notification API (a form, answered with the
 * JSON status K2 expects) and K2 Connect webhooks (signed JSON, answered
 * 200).  The handler runs the format's list of steps: reading, parsing and
 * authenticating differ (the pure code, k2_*.c, decodes, validates and
 * verifies), finding the account, recording the payment through mod_dbd
 * (mod_k2notify_dbd.c) and telling a resend are shared.  Each notification
 * leaves one decision in the error log (LogLevel k2notify:info) and K2_*
 * variables in the request environment for the access log.
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
#include "k2_json.h"

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

/* A notification on its way through the steps of the handler. */
typedef struct {
    request_rec *r;
    const k2n_dir_conf *conf;
    k2n_format_e format;
    char *body;                         /* as received, NUL-terminated */
    apr_size_t body_len;
    /* the form API */
    k2_notification_t n;                /* the fields, decoded */
    k2_reason_e malformed;              /* decoding's verdict, answered once
                                         * the location is known to work */
    apr_array_header_t *pairs;          /* every k2_pair_t, when signed */
    apr_size_t base_size;               /* room their base string needs */
    /* K2 Connect */
    json_t *doc;                        /* the webhook's body, parsed */
    k2_json_audit_t audit;              /* its kind, topic, id, reference... */
    int account_missing;                /* K2NotifyAccountQuery found none */
    /* shared */
    k2n_db_t db;                        /* the database work */
    int nrows;                          /* rows the record statement affected */
} k2n_request_t;

/* A step of the handler returns K2N_NEXT to let the next step go on, or
 * what the handler returns (the reply is then written). */
#define K2N_NEXT (-1000)
typedef int k2n_step_fn(k2n_request_t *q);

/* A field's value for the decision line: "-" when absent, and cut short
 * (at a character boundary, with its full size) when long, so that httpd's
 * 8 KiB limit on a log message never cuts the outcome off the line. */
#define K2N_LOG_VALUE_MAX 64

static const char *k2n_cut(const k2n_request_t *q, const char *v)
{
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

static const char *k2n_value(const k2n_request_t *q, int field)
{
    return k2n_cut(q, q->n.value[field]);
}

static const char *k2n_audit(const k2n_request_t *q, k2_json_audit_e field)
{
    return k2n_cut(q, q->audit.value[field]);
}

static void k2n_setenv(request_rec *r, const char *var, const char *value)
{
    if (value) {
        apr_table_setn(r->subprocess_env, var, value);
    }
}

/* Put the K2_* variables in the environment and log the decision: at info
 * level, a refused signature and a webhook for an unknown account at warn,
 * an error and a conflict at error. */
static void k2n_conclude(k2n_request_t *q, k2n_outcome_e outcome,
                         const char *status, const char *detail)
{
    request_rec *r = q->r;
    int level = outcome == K2N_ERROR || outcome == K2N_CONFLICT ? APLOG_ERR
              : outcome == K2N_BAD_SIGNATURE
                || (outcome == K2N_ACCOUNT_NOT_FOUND
                    && q->format == K2N_FORMAT_K2CONNECT)
                || (outcome == K2N_BAD_REQUEST && q->doc) ? APLOG_WARNING
              : APLOG_INFO;                 /* q->doc: a signed event refused */
    const char *sep = detail ? ": " : "";

    detail = detail ? detail : "";
    apr_table_setn(r->subprocess_env, "K2_FORMAT",
                   q->format == K2N_FORMAT_K2CONNECT ? "k2connect" : "form");
    apr_table_setn(r->subprocess_env, "K2_STATUS", status ? status : "");
    apr_table_setn(r->subprocess_env, "K2_OUTCOME", k2n_outcome_names[outcome]);
    k2n_status_count(r, outcome);
    if (q->format == K2N_FORMAT_K2CONNECT) {
        k2n_setenv(r, "K2_TOPIC", q->doc ? q->audit.topic : NULL);
        k2n_setenv(r, "K2_TRANSACTION_ID",
                   q->audit.value[K2_JSON_AUDIT_TRANSACTION_ID]);
        k2n_setenv(r, "K2_REFERENCE", q->audit.value[K2_JSON_AUDIT_REFERENCE]);
        k2n_setenv(r, "K2_AMOUNT", q->audit.value[K2_JSON_AUDIT_AMOUNT]);
        k2n_setenv(r, "K2_CURRENCY", q->audit.value[K2_JSON_AUDIT_CURRENCY]);
        ap_log_rerror(APLOG_MARK, level, 0, r, "webhook topic=%s id=%s "
                      "reference=%s amount=%s outcome=%s%s%s",
                      q->doc ? k2n_cut(q, q->audit.topic) : "-",
                      k2n_audit(q, K2_JSON_AUDIT_TRANSACTION_ID),
                      k2n_audit(q, K2_JSON_AUDIT_REFERENCE),
                      k2n_audit(q, K2_JSON_AUDIT_AMOUNT),
                      k2n_outcome_names[outcome], sep, detail);
        return;
    }
    k2n_setenv(r, "K2_TRANSACTION_ID", q->n.value[K2_F_K2_TRANSACTION_ID]);
    k2n_setenv(r, "K2_AC_NO", q->n.value[K2_F_AC_NO]);
    k2n_setenv(r, "K2_AMOUNT", q->n.value[K2_F_AMOUNT]);
    k2n_setenv(r, "K2_CURRENCY", q->n.value[K2_F_CURRENCY]);
    if (level == APLOG_ERR) {
        ap_log_rerror(APLOG_MARK, level, 0, r,
                      "notification k2_transaction_id=%s ac_no=%s outcome=%s%s%s",
                      k2n_value(q, K2_F_K2_TRANSACTION_ID), k2n_value(q, K2_F_AC_NO),
                      k2n_outcome_names[outcome], sep, detail);
    }
    else {
        ap_log_rerror(APLOG_MARK, level, 0, r,
                      "notification k2_transaction_id=%s ac_no=%s amount=%s "
                      "outcome=%s%s%s",
                      k2n_value(q, K2_F_K2_TRANSACTION_ID), k2n_value(q, K2_F_AC_NO),
                      k2n_value(q, K2_F_AMOUNT), k2n_outcome_names[outcome],
                      sep, detail);
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

/* What the format answers for a decided outcome: for K2's form, the K2
 * status of the outcome; for a webhook, 200 and the outcome (K2 Connect
 * cannot be told a payment was refused: it is complete). */
static int k2n_settle(k2n_request_t *q, k2n_outcome_e outcome, const char *detail)
{
    char body[96];
    apr_size_t len;

    if (q->format == K2N_FORMAT_FORM) {
        k2_status_e status = outcome == K2N_ACCOUNT_NOT_FOUND
                             ? K2_STATUS_ACCOUNT_NOT_FOUND
                             : outcome == K2N_INVALID_PAYMENT
                               || outcome == K2N_CONFLICT
                             ? K2_STATUS_INVALID_PAYMENT : K2_STATUS_ACCEPTED;

        return k2n_reply(q, status, outcome, detail);
    }
    k2n_conclude(q, outcome, NULL, detail);
    len = k2_reply_webhook(k2n_outcome_names[outcome], body, sizeof(body));
    return k2n_write(q->r, HTTP_OK, body, len);
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

/* 1 if the request's Content-Type is type (parameters allowed; when
 * missing, 1 if missing_ok). */
static int k2n_content_type_is(request_rec *r, const char *type, int missing_ok)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t n = strlen(type);

    if (!ct) {
        return missing_ok;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, type, n) != 0) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/* 1 if an input filter may change the body (mod_deflate's inflate, a
 * charset or sed filter): its Content-Length then says nothing of what the
 * handler reads. */
static int k2n_body_transformed(request_rec *r)
{
    ap_filter_t *f;

    for (f = r->input_filters; f; f = f->next) {
        if (f->frec->ftype < AP_FTYPE_PROTOCOL) {
            return 1;
        }
    }
    return 0;
}

/* Read the whole body, at most max bytes, into *buf (NUL-terminated).
 * Returns OK, an HTTP status to answer, or AP_FILTER_ERROR when an input
 * filter has already answered (e.g. LimitRequestBody).  The cap is on the
 * bytes read; a Content-Length over it is refused at once only when no
 * filter stands between it and what is read. */
static int k2n_read_body(request_rec *r, apr_off_t max, char **buf,
                         apr_size_t *len)
{
    const char *clen = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    apr_size_t room = 1024;
    int seen_eos = 0;

    *len = 0;
    *buf = NULL;
    if (clen) {
        apr_off_t cl;
        char *end;

        if (apr_strtoff(&cl, clen, &end, 10) != APR_SUCCESS || *end || cl < 0) {
            return HTTP_BAD_REQUEST;
        }
        if (!k2n_body_transformed(r)) {
            if (cl > max) {
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            room = (apr_size_t)cl;
        }
    }
    if (!ap_request_has_body(r)) {
        return OK;
    }
    if ((apr_off_t)room > max) {
        room = (apr_size_t)max;
    }
    *buf = apr_palloc(r->pool, room + 1);
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
            if ((apr_off_t)(*len + n) > max) {
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            if (*len + n > room) {      /* grow, up to max */
                char *bigger;

                while (room < *len + n) {
                    room *= 2;
                }
                if ((apr_off_t)room > max) {
                    room = (apr_size_t)max;
                }
                bigger = apr_palloc(r->pool, room + 1);
                memcpy(bigger, *buf, *len);
                *buf = bigger;
            }
            memcpy(*buf + *len, data, n);
            *len += n;
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    (*buf)[*len] = '\0';
    return OK;
}

/* k2_json's allocator: the request's pool. */
static void *k2n_palloc(void *baton, size_t size)
{
    return apr_palloc(baton, size);
}

/* The value bound to a FIELD (NULL: SQL NULL). */
static const char *k2n_arg(k2n_request_t *q, const k2n_field_t *f)
{
    const char *text = NULL;
    size_t len;

    switch (f->kind) {
    case K2N_FIELD_REMOTE_USER:
        return q->r->user;
    case K2N_FIELD_RAW_BODY:
        return q->body ? q->body : "";
    case K2N_FIELD_DEFAULT:
        if (q->format == K2N_FORMAT_K2CONNECT) {
            return q->audit.value[K2_JSON_AUDIT_TRANSACTION_ID];
        }
        return q->n.value[f->form_field];
    case K2N_FIELD_FORM:
        return q->n.value[f->form_field];
    case K2N_FIELD_POINTER:
        if (q->doc && k2_json_bind(k2_json_resolve(q->doc, f->name), k2n_palloc,
                                   q->r->pool, &text, &len) == 0) {
            return text;
        }
        return NULL;
    }
    return NULL;
}

/* The values bound to a statement's %s placeholders. */
static const char **k2n_args(k2n_request_t *q, const k2n_stmt_t *st)
{
    const char **args = apr_palloc(q->r->pool, sizeof(char *) * (apr_size_t)st->nfields);
    int i;

    for (i = 0; i < st->nfields; i++) {
        args[i] = k2n_arg(q, &st->fields[i]);
    }
    return args;
}

/* -- the steps of both formats ------------------------------------------- */

static int k2n_allow_post_only(k2n_request_t *q)
{
    request_rec *r = q->r;

    if (r->method_number == M_POST) {
        return K2N_NEXT;
    }
    apr_table_setn(r->headers_out, "Allow", "POST");
    return k2n_refuse(q, HTTP_METHOD_NOT_ALLOWED, K2N_BAD_REQUEST,
                      apr_pstrcat(r->pool, "method ", r->method,
                                  " not allowed: K2 notifications are POSTed",
                                  NULL));
}

/* Read the body, at most the location's K2NotifyMaxBody. */
static int k2n_read(k2n_request_t *q, apr_off_t default_max)
{
    request_rec *r = q->r;
    apr_off_t max = q->conf->max_body > 0 ? q->conf->max_body : default_max;
    int rc = k2n_read_body(r, max, &q->body, &q->body_len);

    if (rc == OK) {
        return K2N_NEXT;
    }
    if (rc == AP_FILTER_ERROR) {
        k2n_conclude(q, K2N_BAD_REQUEST, NULL, "the request body was refused "
                     "by an input filter");
        return rc;
    }
    /* The rest of the body is not worth reading: close the connection
     * instead (ap_discard_request_body() then reads nothing). */
    r->connection->keepalive = AP_CONN_CLOSE;
    return k2n_refuse(q, rc, K2N_BAD_REQUEST,
                      rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                      ? apr_psprintf(r->pool, "the body is larger than "
                                     K2N_DIR_MAX_BODY " (%" APR_OFF_T_FMT
                                     " bytes)", max)
                      : "the request body could not be read");
}

/* The account: for K2's form, none found is 02; a K2 Connect payment is
 * complete when it is notified and cannot be refused, so it is recorded
 * all the same and its outcome says account_not_found. */
static int k2n_find_account(k2n_request_t *q)
{
    const k2n_stmt_t *st = q->conf->account;
    int found;

    if (!k2n_db_open(&q->db, q->r)) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, q->db.err);
    }
    if (!st) {
        return K2N_NEXT;                /* optional for K2 Connect */
    }
    if (k2n_db_exists(&q->db, st, k2n_args(q, st), &found) != APR_SUCCESS) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, q->db.err);
    }
    if (found) {
        return K2N_NEXT;
    }
    if (q->format == K2N_FORMAT_FORM) {
        return k2n_settle(q, K2N_ACCOUNT_NOT_FOUND, NULL);
    }
    q->account_missing = 1;
    return K2N_NEXT;
}

/* The FIELDs of a key column of st whose values are all NULL in args (the
 * column would be NULL: on SQLite a NULL never conflicts, so every resend
 * would be recorded again), as "/id /data/id", or NULL. */
static const char *k2n_null_key(k2n_request_t *q, const k2n_stmt_t *st,
                                const char **args)
{
    int k, i;

    for (k = 1; k <= st->nkeys; k++) {
        const char *names = NULL;

        for (i = 0; i < st->nfields; i++) {
            if (st->key[i] != k) {
                continue;
            }
            if (args[i]) {
                break;
            }
            names = names ? apr_pstrcat(q->r->pool, names, " ",
                                        st->fields[i].name, NULL)
                          : st->fields[i].name;
        }
        if (i == st->nfields && names) {
            return names;
        }
    }
    return NULL;
}

/* Answered once the row is committed; a resend (0 rows) goes on. */
static int k2n_record(k2n_request_t *q)
{
    const k2n_stmt_t *st = q->conf->record;
    k2n_outcome_e accepted = q->account_missing ? K2N_ACCOUNT_NOT_FOUND
                                                : K2N_ACCEPTED;
    const char **args, *missing;

    if (!st) {
        return k2n_settle(q, accepted, NULL);
    }
    args = k2n_args(q, st);
    if ((missing = k2n_null_key(q, st, args)) != NULL) {
        /* It can never be recorded exactly once: K2 must not be told it
         * was (200), nor that trying again may help (500). */
        return k2n_refuse_logged(q, HTTP_BAD_REQUEST, K2N_BAD_REQUEST,
                                 apr_pstrcat(q->r->pool, "no value for the "
                                             "deduplication key (", missing,
                                             ")", NULL),
                                 apr_psprintf(q->r->pool, "the deduplication "
                                              "key of " K2N_DIR_RECORD_QUERY
                                              " (%s; its ON CONFLICT column) "
                                              "would be NULL: %s absent or null "
                                              "in this %s, which could not be "
                                              "recorded exactly once", st->where,
                                              missing, q->format ==
                                              K2N_FORMAT_K2CONNECT ? "event"
                                              : "notification"));
    }
    if (k2n_db_record(&q->db, st, args, &q->nrows) != APR_SUCCESS) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, q->db.err);
    }
    if (q->nrows == 0) {
        return K2N_NEXT;
    }
    if (q->nrows != 1) {
        /* committed as it is: the statement changed more than one row */
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          apr_psprintf(q->r->pool, K2N_DIR_RECORD_QUERY " affected "
                                       "%d rows, where a payment recorded now "
                                       "affects 1 and a resend 0: what it did "
                                       "is committed, check the stored row (an "
                                       "UPDATE clause that changed it, a REPLACE "
                                       "or a statement that writes several rows)",
                                       q->nrows));
    }
    return k2n_settle(q, accepted, q->account_missing
                      ? "recorded, but " K2N_DIR_ACCOUNT_QUERY " finds no such "
                        "account" : NULL);
}

/* Already recorded: a true resend, or another payment reusing the id?  The
 * stored amount is compared as a decimal (PostgreSQL gives 1500.00 back for
 * 1500): for K2's form the query's second column (its first is the stored
 * ac_no, compared too); for a webhook its first, against the event's. */
static int k2n_check_resend(k2n_request_t *q)
{
    const k2n_stmt_t *st = q->conf->duplicate;
    const char *stored[2] = { NULL, NULL }, *amount;
    const char *unproven = k2n_db_resend_unproven(&q->db);
    int found, same;

    if (!st && unproven) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          apr_pstrcat(q->r->pool, K2N_DIR_RECORD_QUERY " recorded "
                                      "nothing, and without "
                                      K2N_DIR_DUPLICATE_QUERY " that proves no "
                                      "resend: ", unproven, NULL));
    }
    if (!st) {
        return k2n_settle(q, K2N_DUPLICATE, "already recorded");
    }
    if (k2n_db_stored_row(&q->db, st, k2n_args(q, st), 2, stored, &found)
        != APR_SUCCESS) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, q->db.err);
    }
    if (!found) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          apr_pstrcat(q->r->pool, K2N_DIR_RECORD_QUERY " recorded "
                                      "nothing but " K2N_DIR_DUPLICATE_QUERY
                                      " finds no stored transaction",
                                      unproven ? " (" : "", unproven ? unproven : "",
                                      unproven ? ")" : "", NULL));
    }
    if (q->format == K2N_FORMAT_FORM) {
        same = stored[0] && stored[1]
               && strcmp(stored[0], q->n.value[K2_F_AC_NO]) == 0
               && k2_amount_equal(stored[1], q->n.value[K2_F_AMOUNT]);
        if (!same) {
            return k2n_settle(q, K2N_CONFLICT, apr_psprintf(q->r->pool,
                              "this transaction id is already recorded with "
                              "ac_no=%s amount=%s", stored[0] ? stored[0] : "NULL",
                              stored[1] ? stored[1] : "NULL"));
        }
        return k2n_settle(q, K2N_DUPLICATE, "already recorded");
    }
    amount = q->audit.value[K2_JSON_AUDIT_AMOUNT];
    same = !amount || (stored[0] && k2_amount_equal(stored[0], amount));
    if (!same) {
        return k2n_settle(q, K2N_CONFLICT, apr_psprintf(q->r->pool,
                          "this event id is already recorded with amount=%s",
                          stored[0] ? k2n_cut(q, stored[0]) : "NULL"));
    }
    return k2n_settle(q, K2N_DUPLICATE, "already recorded");
}

/* -- K2's form API ----------------------------------------------------------- */

static int k2n_read_form_body(k2n_request_t *q)
{
    /* K2's curl line sends a form without a Content-Type: read it as one */
    if (ap_request_has_body(q->r)
        && !k2n_content_type_is(q->r, "application/x-www-form-urlencoded", 1)) {
        return k2n_refuse(q, HTTP_UNSUPPORTED_MEDIA_TYPE, K2N_BAD_REQUEST,
                          "the body must be application/x-www-form-urlencoded");
    }
    return k2n_read(q, K2N_DEFAULT_MAX_BODY);
}

/* The spec shows the parameters both in the query string and in the body:
 * both are read, and a parameter in both must repeat its value.  A
 * signature covers every parameter received, known or not.  What is wrong
 * is answered by k2n_refuse_malformed, after k2n_check_location. */
static int k2n_parse_form(k2n_request_t *q)
{
    request_rec *r = q->r;
    k2_pair_fn *on_pair = NULL;

    if (q->conf->key) {
        q->pairs = apr_array_make(r->pool, 24, sizeof(k2_pair_t));
        on_pair = k2n_keep_pair;
    }
    q->malformed = K2_OK;
    if (r->args && *r->args) {
        apr_size_t n = strlen(r->args);

        q->malformed = k2_form_parse(&q->n, r->args, n,
                                     apr_palloc(r->pool, n + 1), on_pair, q);
    }
    if (q->malformed == K2_OK && q->body_len > 0) {
        q->malformed = k2_form_parse(&q->n, q->body, q->body_len,
                                     apr_palloc(r->pool, q->body_len + 1),
                                     on_pair, q);
    }
    q->n.value[K2_F_REMOTE_USER] = r->user;
    return K2N_NEXT;
}

/* Mistakes of the configuration come before those of the request; they are
 * checked once the notification is parsed, so that the log line says which
 * payment got the 500. */
static int k2n_check_location(k2n_request_t *q)
{
    const k2n_dir_conf *conf = q->conf;
    const char *why;

    if (!conf->account || !k2n_dbd_acquire) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          "this location has 'SetHandler k2notify' but no "
                          K2N_DIR_ACCOUNT_QUERY);
    }
    if ((why = k2n_conf_problem(q->r->pool, conf, "this location", 1)) != NULL) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, why);
    }
    /* With a key, the signature authenticates the notification: one without
     * a valid signature is refused with 401 (k2n_check_form_signature),
     * user or not. */
    if (conf->require_user != 0 && !q->r->user && !conf->key) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          "this location has no authentication (no user was "
                          "authenticated): add 'AuthType Basic' and 'Require "
                          "valid-user', set " K2N_DIR_SIGNATURE_KEY ", or set "
                          K2N_DIR_REQUIRE_USER " Off");
    }
    return K2N_NEXT;
}

/* Malformed input is a 400 before anything is verified. */
static int k2n_refuse_malformed(k2n_request_t *q)
{
    return q->malformed == K2_OK ? K2N_NEXT : k2n_bad_request(q, q->malformed);
}

static int k2n_check_form_signature(k2n_request_t *q)
{
    const char *why;

    if (!q->conf->key || !(why = k2n_check_signature(q, q->conf->key))) {
        return K2N_NEXT;
    }
    return k2n_refuse_logged(q, HTTP_UNAUTHORIZED, K2N_BAD_SIGNATURE,
                             K2N_BAD_SIGNATURE_REASON, why);
}

static int k2n_validate_payment(k2n_request_t *q)
{
    k2_reason_e reason = k2_notification_validate(&q->n,
                                                  k2n_conf_currencies(q->conf),
                                                  k2n_conf_billers(q->conf));

    if (reason == K2_OK) {
        return K2N_NEXT;
    }
    if (!k2_reason_is_invalid_payment(reason)) {
        return k2n_bad_request(q, reason);
    }
    return k2n_settle(q, K2N_INVALID_PAYMENT, k2_reason(reason));
}

/* A notification of K2's form API, in the order of the README's "checks":
 * each step either answers (which ends the request) or lets the next go. */
static k2n_step_fn *const k2n_form_steps[] = {
    k2n_allow_post_only,                /* 405 */
    k2n_read_form_body,                 /* 415, 413 */
    k2n_parse_form,                     /* (answered by k2n_refuse_malformed) */
    k2n_check_location,                 /* 500: no account query, no auth */
    k2n_refuse_malformed,               /* 400 */
    k2n_check_form_signature,           /* 401 */
    k2n_validate_payment,               /* 400, 03 */
    k2n_find_account,                   /* 02 */
    k2n_record,                         /* 01 accepted */
    k2n_check_resend,                   /* 01 duplicate, 03 conflict */
    NULL
};

/* -- K2 Connect webhooks ---------------------------------------------------- */

static int k2n_read_webhook_body(k2n_request_t *q)
{
    if (!k2n_content_type_is(q->r, "application/json", 0)) {
        return k2n_refuse(q, HTTP_UNSUPPORTED_MEDIA_TYPE, K2N_BAD_REQUEST,
                          "the body must be application/json");
    }
    return k2n_read(q, K2N_K2CONNECT_MAX_BODY);
}

static int k2n_check_webhook_location(k2n_request_t *q)
{
    const char *why = k2n_conf_problem(q->r->pool, q->conf, "this location", 1);

    return why ? k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR, why)
               : K2N_NEXT;
}

/* The signature covers the body exactly as received: checked before the
 * body is parsed (a re-serialised body is another body). */
static int k2n_check_webhook_signature(k2n_request_t *q)
{
    const k2n_key_t *key = q->conf->key;
    const char *sig = apr_table_get(q->r->headers_in,
                                    K2_CONNECT_SIGNATURE_HEADER);
    const char *why;

    if (!sig || !*sig) {
        why = "no " K2_CONNECT_SIGNATURE_HEADER " header";
    }
    else if (strlen(sig) != K2_CONNECT_SIGNATURE_LEN) {
        why = apr_psprintf(q->r->pool, "the signature has %" APR_SIZE_T_FMT
                           " characters, not %d", strlen(sig),
                           K2_CONNECT_SIGNATURE_LEN);
    }
    else if (!k2_connect_signature_valid(q->body ? q->body : "", q->body_len,
                                         key->bytes, key->len, sig)) {
        why = "the signature does not match";
    }
    else {
        return K2N_NEXT;
    }
    return k2n_refuse_logged(q, HTTP_UNAUTHORIZED, K2N_BAD_SIGNATURE,
                             K2N_BAD_SIGNATURE_REASON, why);
}

static apr_status_t k2n_json_release(void *doc)
{
    json_decref(doc);
    return APR_SUCCESS;
}

static int k2n_parse_webhook(k2n_request_t *q)
{
    k2_json_error_e err;
    char reason[K2_JSON_REASON_SIZE];

    q->doc = k2_json_parse(q->body ? q->body : "", q->body_len, &err, reason,
                           sizeof(reason));
    if (!q->doc) {
        return k2n_refuse_logged(q, HTTP_BAD_REQUEST, K2N_BAD_REQUEST,
                                 k2_json_error_text(err),
                                 apr_pstrdup(q->r->pool, reason));
    }
    /* Bound strings point into the document: it lives with the request. */
    apr_pool_cleanup_register(q->r->pool, q->doc, k2n_json_release,
                              apr_pool_cleanup_null);
    if (k2_json_audit(q->doc, k2n_palloc, q->r->pool, &q->audit) != 0) {
        return k2n_refuse(q, HTTP_INTERNAL_SERVER_ERROR, K2N_ERROR,
                          "out of memory");
    }
    return K2N_NEXT;
}

/* K2NotifyTopics: a signed event of another topic is answered 200 and not
 * recorded (K2 would resend one it was refused). */
static int k2n_select_topic(k2n_request_t *q)
{
    const apr_array_header_t *topics = q->conf->topics;
    int i;

    if (!topics) {
        return K2N_NEXT;
    }
    for (i = 0; i < topics->nelts; i++) {
        const char *t = APR_ARRAY_IDX(topics, i, const char *);

        if (t && strcmp(t, q->audit.topic) == 0) {
            return K2N_NEXT;
        }
    }
    return k2n_settle(q, K2N_IGNORED, apr_psprintf(q->r->pool, "topic '%s' "
                      "is not in " K2N_DIR_TOPICS, k2n_cut(q, q->audit.topic)));
}

/* A K2 Connect webhook: the signature on the bytes received, then the JSON,
 * the topic, and the same account, record and resend steps as a form. */
static k2n_step_fn *const k2n_webhook_steps[] = {
    k2n_allow_post_only,                /* 405 */
    k2n_read_webhook_body,              /* 415, 413 */
    k2n_check_webhook_location,         /* 500: no key, no record query */
    k2n_check_webhook_signature,        /* 401 */
    k2n_parse_webhook,                  /* 400 */
    k2n_select_topic,                   /* 200 ignored */
    k2n_find_account,                   /* (account_not_found, still recorded) */
    k2n_record,                         /* 200 accepted */
    k2n_check_resend,                   /* 200 duplicate, conflict */
    NULL
};

/* A k2notify location serves no file.  As mod_proxy does for its own,
 * its requests skip the core's directory and file walks, which stat every
 * directory of DocumentRoot + URL and look for a .htaccess in each (nine
 * system calls a notification, to find nothing): <Directory>, <Files> and
 * .htaccess never apply to it, its <Location> (and <If>) sections do.  The
 * location walk is httpd's own, run again (from its cache) after this hook.
 * TRACE and OPTIONS stay httpd's: mod_http's hooks run before this one. */
static int k2n_map_to_storage(request_rec *r)
{
    ap_conf_vector_t *defaults = r->per_dir_config;
    const k2n_dir_conf *conf;

    if (ap_location_walk(r) == OK && ap_if_walk(r) == OK) {
        conf = ap_get_module_config(r->per_dir_config, &k2notify_module);
        if (conf->handler == 1) {
            return OK;
        }
    }
    r->per_dir_config = defaults;       /* the core walks from the defaults */
    return DECLINED;
}

static int k2n_handler(request_rec *r)
{
    k2n_step_fn *const *step;
    k2n_request_t q;
    int rc = K2N_NEXT;

    if (!r->handler || strcmp(r->handler, K2N_HANDLER) != 0) {
        return DECLINED;
    }
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.conf = ap_get_module_config(r->per_dir_config, &k2notify_module);
    q.format = k2n_conf_format(q.conf);
    q.audit.topic = "";
    k2_notification_init(&q.n);

    step = q.format == K2N_FORMAT_K2CONNECT ? k2n_webhook_steps : k2n_form_steps;
    for (; *step && rc == K2N_NEXT; step++) {
        rc = (*step)(&q);
    }
    return rc;
}

static int k2n_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    (void)pconf; (void)plog; (void)ptemp;
    k2n_config_forget();
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
    static const char *const after_http[] = { "http_core.c", NULL };

    ap_hook_pre_config(k2n_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(k2n_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(k2n_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(k2n_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_map_to_storage(k2n_map_to_storage, after_http, NULL,
                           APR_HOOK_MIDDLE);
    ap_hook_handler(k2n_handler, NULL, NULL, APR_HOOK_MIDDLE);
    k2n_dbd_register_hooks(p);
    k2n_status_register_hooks(p);
}

/* APLOG_USE_MODULE(k2notify) is in mod_k2notify.h, so AP_DECLARE_MODULE's
 * copy of it is not repeated here. */
module AP_MODULE_DECLARE_DATA k2notify_module = {
    STANDARD20_MODULE_STUFF,
    k2n_create_dir_conf,        /* per-directory config creator */
    k2n_merge_dir_conf,         /* per-directory config merger */
    k2n_create_srv_conf,        /* server config creator */
    k2n_merge_srv_conf,         /* server config merger */
    k2n_cmds,                   /* command table */
    k2n_register_hooks,         /* hook registration */
    AP_MODULE_FLAG_NONE         /* flags */
};
