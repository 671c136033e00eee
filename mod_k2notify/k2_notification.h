/* k2_notification.h: the pure logic of a K2 HTTP POST notification.
 *
 * Decoding of the form body, the notification's fields, their validation,
 * the transaction timestamp and the JSON replies.  Nothing here includes an
 * httpd header: these functions work over plain (buffer, length) pairs so
 * that they can be unit-tested and fuzzed without a server or a pool.
 */
#ifndef K2_NOTIFICATION_H
#define K2_NOTIFICATION_H

#include <stddef.h>

/* The notification fields a statement may bind: the 15 parameters of the
 * K2 spec (v1.0, section 2) in the spec's order, then the derived ones. */
typedef enum {
    K2_F_K2_ACCOUNT_ID = 0,
    K2_F_K2_TRANSACTION_ID,
    K2_F_MM_SYSTEM_ID,
    K2_F_MP_TRANSACTION_ID,
    K2_F_BILLER_NUMBER,
    K2_F_TRANSACTION_DATE,
    K2_F_TRANSACTION_TIME,
    K2_F_TRANSACTION_TYPE,
    K2_F_AC_NO,
    K2_F_SENDER,
    K2_F_FIRST_NAME,
    K2_F_LAST_NAME,
    K2_F_MIDDLE_NAME,
    K2_F_AMOUNT,
    K2_F_CURRENCY,
    K2_F_NPARAMS,                          /* parameters K2 sends end here */
    K2_F_TRANSACTION_TIMESTAMP = K2_F_NPARAMS, /* from date + time */
    K2_F_REMOTE_USER,                      /* set by the glue from r->user */
    K2_F_COUNT
} k2_field_e;

/* Field name (as K2 sends it, or the derived field's name), NULL if out of range. */
const char *k2_field_name(int field);

/* Field index for a name of len bytes, or -1.  Parameters only when
 * params_only, else every field (for the directives' FIELD lists). */
int k2_field_lookup(const char *name, size_t len, int params_only);

/* Why a request is refused: every value but K2_OK has a fixed text
 * (k2_reason) and maps to 400 (K2_BAD_*) or to K2 status 03 (K2_INVALID_*). */
typedef enum {
    K2_OK = 0,
    K2_BAD_ESCAPE,          /* % not followed by two hex digits */
    K2_BAD_NUL,             /* %00 or a raw NUL byte */
    K2_BAD_CONTROL,         /* a control character in a name or value */
    K2_BAD_UTF8,            /* a name or value is not valid UTF-8 */
    K2_BAD_EMPTY_NAME,      /* "=value" */
    K2_BAD_CONFLICT,        /* the same parameter twice, different values */
    K2_BAD_MISSING,         /* a required parameter is missing or empty */
    K2_BAD_DATE,            /* transaction_date present but not D/M/YY[YY] */
    K2_BAD_TIME,            /* transaction_time present but not H:MM AM|PM */
    K2_INVALID_AMOUNT,      /* not a plain positive decimal, <= 2 decimals */
    K2_INVALID_CURRENCY,    /* currency not in K2NotifyCurrencies */
    K2_INVALID_BILLER       /* biller_number not in K2NotifyBillerNumbers */
} k2_reason_e;

const char *k2_reason(k2_reason_e reason);
int k2_reason_is_invalid_payment(k2_reason_e reason);

/* A notification: one value per field, NULL when absent.  Values are
 * NUL-terminated, decoded, valid UTF-8 without control characters. */
typedef struct {
    const char *value[K2_F_COUNT];
    int conflict_field;                    /* field of K2_BAD_CONFLICT, or -1 */
    int missing_field;                     /* field of K2_BAD_MISSING, or -1 */
    char timestamp[20];                    /* storage of the derived timestamp */
} k2_notification_t;

void k2_notification_init(k2_notification_t *n);

/* Decode one application/x-www-form-urlencoded component of len bytes into
 * out (room for len + 1 bytes; the result is NUL-terminated, *outlen set).
 * '+' is a space.  Strict: a bad escape, %00 or a raw NUL, a control
 * character (any byte below 0x20, TAB included, and 0x7F) or invalid UTF-8
 * is refused. */
k2_reason_e k2_form_decode(const char *in, size_t len, char *out, size_t *outlen);

/* Called by k2_form_parse for every decoded pair, known or unknown, in the
 * order received; name and value point into the scratch buffer. */
typedef void k2_pair_fn(void *baton, const char *name, const char *value);

/* Parse a form (a query string or a request body) of len bytes into n.
 * scratch must hold len + 1 bytes and outlive n: values point into it.
 * Unknown parameters are ignored; a repeated parameter must repeat its
 * value; empty "&&" segments are skipped.  When on_pair is not NULL it is
 * called with baton for every pair decoded (the signature's base string
 * includes unknown parameters), up to the first error. */
k2_reason_e k2_form_parse(k2_notification_t *n, const char *buf, size_t len,
                          char *scratch, k2_pair_fn *on_pair, void *baton);

/* The value of the hex digit c (either case), or -1. */
int k2_hex_value(unsigned char c);

/* 1 if s is valid UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF), else 0. */
int k2_utf8_valid(const char *s, size_t len);

/* 1 if s is a plain positive decimal with at most two decimals
 * ("1500", "1500.5", "0.01"), else 0 ("0", "-5", "1e3", "1,500", "1.234",
 * " 1", ".5", "5."). */
int k2_amount_valid(const char *s);

/* 1 if a and b are the same amount written as plain decimals, whatever
 * their leading or trailing zeros ("1500" and "1500.00", as a database gives
 * back what it stored); 0 otherwise, also when either is not a plain
 * decimal (digits, optionally '.' and digits). */
int k2_amount_equal(const char *a, const char *b);

/* Build "YYYY-MM-DDTHH:MM:SS" from K2's transaction_date (D/M/YY or D/M/YYYY,
 * two-digit years are 20YY) and transaction_time (H:MM AM|PM, 12-hour).
 * Either may be NULL (then only that one is checked and out is left empty).
 * Returns K2_OK, K2_BAD_DATE or K2_BAD_TIME. */
k2_reason_e k2_timestamp(const char *date, const char *time, char out[20]);

/* Validate a parsed notification: required fields, date/time (fills
 * value[K2_F_TRANSACTION_TIMESTAMP] when both are present), amount, then
 * currency and biller number against NULL-terminated lists (billers NULL
 * means any biller).  Optional fields that are empty are treated as absent. */
k2_reason_e k2_notification_validate(k2_notification_t *n,
                                     const char *const *currencies,
                                     const char *const *billers);

/* The K2 status of a reply. */
typedef enum {
    K2_STATUS_ACCEPTED = 1,                /* "01" Accepted */
    K2_STATUS_ACCOUNT_NOT_FOUND = 2,       /* "02" Account not Found */
    K2_STATUS_INVALID_PAYMENT = 3          /* "03" Invalid Payment */
} k2_status_e;

const char *k2_status_code(k2_status_e status);        /* "01" */
const char *k2_status_description(k2_status_e status); /* "Accepted" */

/* Write the JSON body of a 200 reply, {"status":"01","description":"Accepted"},
 * into buf (NUL-terminated).  Returns its length, or 0 if it did not fit. */
size_t k2_reply_status(k2_status_e status, char *buf, size_t size);

/* Write the JSON body of a non-200 reply, {"description":"Bad Request",
 * "reason":"..."} (reason omitted when NULL).  Returns its length, or 0. */
size_t k2_reply_error(const char *description, const char *reason,
                      char *buf, size_t size);

/* Write the JSON body of a 200 reply to a K2 Connect webhook,
 * {"description":"OK","outcome":"accepted"}.  Returns its length, or 0. */
size_t k2_reply_webhook(const char *outcome, char *buf, size_t size);

#endif /* K2_NOTIFICATION_H */
