/* k2_json.h: K2 Connect webhook bodies.
 *
 * The strict parse of a body (a JSON object in UTF-8, parsed with Jansson),
 * RFC 6901 JSON Pointers into it, the binding rule of a FIELD, and the
 * event's kind, topic and audit fields (K2_TOPIC, K2_TRANSACTION_ID,
 * K2_REFERENCE, K2_AMOUNT, K2_CURRENCY).  Pure code: Jansson and libc, no
 * httpd header.
 *
 * The binding rule of a FIELD (what a statement's %s receives):
 *   string          its value, byte for byte (K2 sends amounts as strings);
 *   integer         its decimal text, exactly ("780", "-5", every digit of
 *                   a 64-bit integer);
 *   real            as JavaScript writes it (ECMAScript Number::toString,
 *                   as JSON.stringify does): the fewest digits that read
 *                   back as the same double, plain from 1e-7 to 1e21
 *                   ("100.5", "100" for 100.0 or 1e2, "0.1", "1e+21");
 *   true, false     "true", "false";
 *   null or absent  SQL NULL;
 *   object, array   its compact JSON text, keys in the order received, as
 *                   Jansson writes it (non-ASCII as is, '/' unescaped, reals
 *                   inside with 17 significant digits: 0.1 as
 *                   0.10000000000000001).
 * Jansson keeps no number's original text, so "1.50" binds "1.5" and "-0"
 * binds "0".  Integers beyond 64 bits and reals beyond a double's range
 * cannot be bound exactly, so a body holding one is refused
 * (K2_JSON_BIG_NUMBER, a 400) instead of being parsed into an approximation
 * (JSON_DECODE_INT_AS_REAL would make every integer a real and lose digits
 * past 2^53).  A real too small for a double reads as 0 ("1e-400" binds
 * "0").  K2's amounts are strings: none of this touches them.
 */
#ifndef K2_JSON_H
#define K2_JSON_H

#include <stddef.h>

#include <jansson.h>

/* The deepest nesting accepted, counting the body's own object as 1.  The
 * SDKs' fixtures nest 5 levels (webhook events, STK results) to 7 (payment
 * and transfer results: data, attributes, transfer_batches, one batch,
 * disbursements, one disbursement). */
#define K2_JSON_MAX_DEPTH 32

/* Room for the text of any number k2_json_number_text writes, with its NUL. */
#define K2_JSON_NUMBER_SIZE 32

/* Room for the reason k2_json_parse writes, with its NUL. */
#define K2_JSON_REASON_SIZE 160

/* Why a body is refused (every value but K2_JSON_OK is a 400). */
typedef enum {
    K2_JSON_OK = 0,
    K2_JSON_EMPTY,              /* no byte at all */
    K2_JSON_NUL,                /* a NUL byte, or \u0000 in a string or key */
    K2_JSON_BAD_UTF8,           /* bytes that are not UTF-8 */
    K2_JSON_TOO_DEEP,           /* nested deeper than K2_JSON_MAX_DEPTH */
    K2_JSON_DUPLICATE_KEY,      /* an object with the same key twice */
    K2_JSON_BIG_NUMBER,         /* an integer beyond 64 bits, a real beyond double */
    K2_JSON_TRAILING,           /* something after the JSON value */
    K2_JSON_SYNTAX,             /* anything else that is not JSON */
    K2_JSON_NOT_OBJECT,         /* JSON, but not an object */
    K2_JSON_NO_MEMORY
} k2_json_error_e;

/* A fixed text for each error ("the body is not valid JSON", ...). */
const char *k2_json_error_text(k2_json_error_e err);

/* Parse a webhook body of len bytes.  Returns a new reference to the JSON
 * object (json_decref it), or NULL with *err set and, when reason is not
 * NULL, a NUL-terminated reason for the log line written into reason
 * (reason_size bytes, K2_JSON_REASON_SIZE is enough): the fixed text, then
 * where (line, column, byte) and Jansson's own words, with any byte outside
 * printable ASCII shown as '?' and at most ~60 bytes of them, so that no
 * log line repeats a large or hostile body.
 *
 * Checked in this order: empty; a NUL byte; UTF-8 (the same check as form
 * values: no overlongs, surrogates or code points past U+10FFFF); nesting
 * depth (counted before Jansson sees the body); then Jansson with
 * JSON_REJECT_DUPLICATES (and its default refusal of \u0000, lone surrogate
 * escapes, control characters in strings, and anything after the value but
 * whitespace); then the type.  body need not be NUL-terminated. */
json_t *k2_json_parse(const char *body, size_t len, k2_json_error_e *err,
                      char *reason, size_t reason_size);

/* The deepest nesting of objects and arrays in the len bytes of body,
 * counting brackets outside strings (exact for any JSON text; for other
 * input a count that k2_json_parse refuses anyway). */
size_t k2_json_depth(const char *body, size_t len);

/* NULL if pointer is a valid RFC 6901 JSON Pointer ("" or a sequence of
 * "/token" where '~' only appears as "~0" or "~1"), in valid UTF-8; else
 * why not, for a configuration error.  A NULL pointer is not valid. */
const char *k2_json_pointer_check(const char *pointer);

/* The value at pointer in root (a borrowed reference), or NULL if there is
 * none: an object member by its key ("~1" is '/', "~0" is '~'), an array
 * element by a decimal index without leading zeros ("0", "7", not "07" nor
 * "-", which never resolves), "" the whole document.  An invalid pointer
 * resolves to NULL. */
json_t *k2_json_resolve(const json_t *root, const char *pointer);

/* Write the binding text of a number (integer or real, see above) into buf
 * with its NUL; returns its length, or 0 if value is not a number. */
size_t k2_json_number_text(const json_t *value, char buf[K2_JSON_NUMBER_SIZE]);

/* An allocator for bound texts: the glue passes apr_palloc's pool, tests
 * malloc.  It must return size bytes or NULL. */
typedef void *k2_json_alloc_fn(void *baton, size_t size);

/* Bind value (NULL for an absent one) by the rule above: *text is the
 * NUL-terminated text and *len its length, or *text is NULL (SQL NULL) and
 * *len 0.  A string's text is Jansson's own (valid while value lives); a
 * number's or a compound's text comes from alloc(baton, ...); true and
 * false are static.  Returns 0, or -1 if alloc returned NULL. */
int k2_json_bind(const json_t *value, k2_json_alloc_fn *alloc, void *baton,
                 const char **text, size_t *len);

/* What a body is.  The topic is /topic if it is a string, else /data/type
 * if it is a string, else "" (never NULL; borrowed from root). */
typedef enum {
    K2_JSON_KIND_OTHER = 0,     /* none of these: topic "" */
    K2_JSON_KIND_EVENT,         /* a webhook event: /topic is a string */
    K2_JSON_KIND_RESULT,        /* a result (STK incoming_payment, ...): /data/type */
    K2_JSON_KIND_DARAJA         /* enable_daraja_payload: /TransID, no topic */
} k2_json_kind_e;

k2_json_kind_e k2_json_kind(const json_t *root);
const char *k2_json_kind_name(k2_json_kind_e kind);    /* "event", ... */
const char *k2_json_topic(const json_t *root);

/* The audit fields of an event, in this order. */
typedef enum {
    K2_JSON_AUDIT_TRANSACTION_ID = 0,   /* K2_TRANSACTION_ID: the event id */
    K2_JSON_AUDIT_REFERENCE,            /* K2_REFERENCE: the M-PESA reference */
    K2_JSON_AUDIT_AMOUNT,               /* K2_AMOUNT */
    K2_JSON_AUDIT_CURRENCY,             /* K2_CURRENCY */
    K2_JSON_AUDIT_COUNT
} k2_json_audit_e;

/* The JSON pointer an audit field of this body is read from, NULL where its
 * kind has none.  The event id is /id, or /data/id when /id is absent or
 * null (whatever the kind).  Reference, amount and currency by kind:
 *   event   /event/resource/reference, /event/resource/amount,
 *           /event/resource/currency;
 *   result  with /data/type "incoming_payment" (an STK push result):
 *           /data/attributes/event/resource/{reference,amount,currency};
 *           any other result (payment, settlement_transfer): no reference,
 *           /data/attributes/amount/value, /data/attributes/amount/currency;
 *   daraja  /TransID, /TransAmount, no currency;
 *   other   none. */
const char *k2_json_audit_pointer(const json_t *root, k2_json_audit_e field);

/* The kind, the topic and the audit fields of root, each the binding (rule
 * above) of the value at its k2_json_audit_pointer, NULL when there is none
 * or it is null.  Values are not cut: the glue cuts them for its log line.
 * Returns 0, or -1 if alloc failed. */
typedef struct {
    k2_json_kind_e kind;
    const char *topic;                          /* never NULL */
    const char *value[K2_JSON_AUDIT_COUNT];     /* NULL: absent or null */
} k2_json_audit_t;

int k2_json_audit(const json_t *root, k2_json_alloc_fn *alloc, void *baton,
                  k2_json_audit_t *audit);

#endif /* K2_JSON_H */
