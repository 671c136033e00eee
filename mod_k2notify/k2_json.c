/* k2_json.c: K2 Connect webhook bodies: strict parse, JSON Pointers
 * (RFC 6901), the binding rule of a FIELD, the event's audit fields.
 *
 * Jansson does the parsing; what it cannot be told (a depth limit below its
 * compiled-in 2048, a reason that names the byte at fault) is checked here
 * before it sees the body.  The rules are in k2_json.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k2_json.h"
#include "k2_notification.h"

const char *k2_json_error_text(k2_json_error_e err)
{
    switch (err) {
    case K2_JSON_OK:            return "ok";
    case K2_JSON_EMPTY:         return "the body is empty";
    case K2_JSON_NUL:           return "the body contains a NUL character";
    case K2_JSON_BAD_UTF8:      return "the body is not valid UTF-8";
    case K2_JSON_TOO_DEEP:      return "the JSON nests more than 32 levels deep";
    case K2_JSON_DUPLICATE_KEY: return "a JSON object has the same key twice";
    case K2_JSON_BIG_NUMBER:    return "a JSON number is out of range "
                                       "(integers beyond 64 bits, reals beyond "
                                       "a double)";
    case K2_JSON_TRAILING:      return "the body has data after the JSON value";
    case K2_JSON_SYNTAX:        return "the body is not valid JSON";
    case K2_JSON_NOT_OBJECT:    return "the body is not a JSON object";
    case K2_JSON_NO_MEMORY:     return "out of memory";
    }
    return "?";
}

/* ---- the checks before Jansson --------------------------------------- */

/* Offset of the first byte that is not part of well-formed UTF-8, or len.
 * Each sequence is checked by k2_utf8_valid, the rule form values follow. */
static size_t k2_json_utf8_error_at(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : c >= 0xC0 && c < 0xE0 ? 2
                 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF8 ? 4 : 0;

        if (n == 0 || n > len - i || !k2_utf8_valid(s + i, n)) {
            return i;
        }
        i += n;
    }
    return len;
}

size_t k2_json_depth(const char *body, size_t len)
{
    size_t i, depth = 0, deepest = 0;
    int in_string = 0;

    for (i = 0; i < len; i++) {
        char c = body[i];

        if (in_string) {
            if (c == '\\') {
                i++;                            /* the escaped byte */
            }
            else if (c == '"') {
                in_string = 0;
            }
        }
        else if (c == '"') {
            in_string = 1;
        }
        else if (c == '{' || c == '[') {
            if (++depth > deepest) {
                deepest = depth;
            }
        }
        else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

/* ---- parse ------------------------------------------------------------ */

/* Append Jansson's text to out: printable ASCII only, at most max bytes. */
static void k2_json_tame(char *out, size_t size, const char *text, size_t max)
{
    size_t o = strlen(out), i;

    for (i = 0; text[i] && o + 4 < size; i++) {
        if (i == max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        out[o++] = text[i] >= 0x20 && text[i] < 0x7F ? text[i] : '?';
    }
    out[o] = '\0';
}

static k2_json_error_e k2_json_fail(k2_json_error_e err, char *reason,
                                    size_t size, const char *fmt, size_t at)
{
    if (reason && size > 0) {
        int n = snprintf(reason, size, "%s", k2_json_error_text(err));

        if (fmt && n >= 0 && (size_t)n < size) {
            snprintf(reason + n, size - (size_t)n, fmt, at);
        }
    }
    return err;
}

json_t *k2_json_parse(const char *body, size_t len, k2_json_error_e *err,
                      char *reason, size_t reason_size)
{
    json_error_t jerr;
    json_t *root;
    const char *nul;
    size_t at;
    k2_json_error_e e;

    if (reason && reason_size > 0) {
        reason[0] = '\0';
    }
    if (len == 0) {
        *err = k2_json_fail(K2_JSON_EMPTY, reason, reason_size, NULL, 0);
        return NULL;
    }
    /* A NUL byte would be "control character 0x0" or "end of file" to
     * Jansson; the body is bytes, so say what it is. */
    if ((nul = memchr(body, '\0', len)) != NULL) {
        *err = k2_json_fail(K2_JSON_NUL, reason, reason_size, " (byte %zu)",
                            (size_t)(nul - body));
        return NULL;
    }
    if ((at = k2_json_utf8_error_at(body, len)) < len) {
        *err = k2_json_fail(K2_JSON_BAD_UTF8, reason, reason_size,
                            " (byte %zu)", at);
        return NULL;
    }
    /* Jansson's own limit is 2048 levels of recursion; K2 uses 7. */
    if (k2_json_depth(body, len) > K2_JSON_MAX_DEPTH) {
        *err = k2_json_fail(K2_JSON_TOO_DEEP, reason, reason_size, NULL, 0);
        return NULL;
    }

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &jerr);
    if (!root) {
        switch (json_error_code(&jerr)) {
        case json_error_out_of_memory:     e = K2_JSON_NO_MEMORY; break;
        case json_error_stack_overflow:    e = K2_JSON_TOO_DEEP; break;
        case json_error_invalid_utf8:      e = K2_JSON_BAD_UTF8; break;
        case json_error_end_of_input_expected: e = K2_JSON_TRAILING; break;
        case json_error_null_character:
        case json_error_null_byte_in_key:  e = K2_JSON_NUL; break;
        case json_error_duplicate_key:     e = K2_JSON_DUPLICATE_KEY; break;
        case json_error_numeric_overflow:  e = K2_JSON_BIG_NUMBER; break;
        default:                           e = K2_JSON_SYNTAX; break;
        }
        *err = e;
        if (reason && reason_size > 0) {
            snprintf(reason, reason_size, "%s (line %d, column %d): ",
                     k2_json_error_text(e), jerr.line, jerr.column);
            k2_json_tame(reason, reason_size, jerr.text, 60);
        }
        return NULL;
    }
    if (!json_is_object(root)) {
        static const char *const names[] = {
            "an object", "an array", "a string", "an integer", "a real",
            "true", "false", "null"
        };
        json_type t = json_typeof(root);

        *err = K2_JSON_NOT_OBJECT;
        if (reason && reason_size > 0) {
            snprintf(reason, reason_size, "%s: it is %s",
                     k2_json_error_text(K2_JSON_NOT_OBJECT),
                     (unsigned)t < sizeof(names) / sizeof(names[0])
                         ? names[t] : "?");
        }
        json_decref(root);
        return NULL;
    }
    *err = K2_JSON_OK;
    return root;
}

/* ---- JSON Pointer ----------------------------------------------------- */

const char *k2_json_pointer_check(const char *pointer)
{
    size_t i, len;

    if (!pointer) {
        return "no JSON pointer";
    }
    len = strlen(pointer);
    if (len > 0 && pointer[0] != '/') {
        return "a JSON pointer is empty or starts with '/'";
    }
    for (i = 0; i < len; i++) {
        if (pointer[i] == '~' && pointer[i + 1] != '0' && pointer[i + 1] != '1') {
            return "in a JSON pointer '~' is followed by 0 or 1 "
                   "(~0 means '~', ~1 means '/')";
        }
    }
    if (!k2_utf8_valid(pointer, len)) {
        return "the JSON pointer is not valid UTF-8";
    }
    return NULL;
}

/* An array index token: "0" or a decimal without a leading zero that fits.
 * Returns 1 and sets *index, else 0 ("-", "01", "1a", "", too large). */
static int k2_json_index(const char *tok, size_t len, size_t *index)
{
    size_t i, v = 0;

    if (len == 0 || (len > 1 && tok[0] == '0')) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9') {
            return 0;
        }
        if (v > ((size_t)-1 - 9) / 10) {
            return 0;                           /* past any array's size */
        }
        v = v * 10 + (size_t)(tok[i] - '0');
    }
    *index = v;
    return 1;
}

/* Decode the escapes of a reference token of len bytes into out (len bytes
 * suffice).  Returns the decoded length, or (size_t)-1 for a bad '~'. */
static size_t k2_json_unescape(const char *tok, size_t len, char *out)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (tok[i] != '~') {
            out[o++] = tok[i];
        }
        else if (i + 1 < len && (tok[i + 1] == '0' || tok[i + 1] == '1')) {
            out[o++] = tok[++i] == '0' ? '~' : '/';
        }
        else {
            return (size_t)-1;
        }
    }
    return o;
}

json_t *k2_json_resolve(const json_t *root, const char *pointer)
{
    json_t *cur = (json_t *)root;
    const char *p = pointer;
    char small[128];

    if (!root || !pointer || (*p != '\0' && *p != '/')) {
        return NULL;
    }
    while (cur && *p == '/') {
        const char *tok = p + 1;
        size_t len = strcspn(tok, "/");

        if (json_is_object(cur)) {
            /* No key holds a NUL (k2_json_parse refuses \u0000), nor does a
             * token: json_object_get (Jansson 2.13, Ubuntu 22.04) will do. */
            char *key = len < sizeof(small) ? small : malloc(len + 1);
            size_t klen;

            if (!key) {
                return NULL;
            }
            klen = k2_json_unescape(tok, len, key);
            if (klen != (size_t)-1) {
                key[klen] = '\0';
            }
            cur = klen == (size_t)-1 ? NULL : json_object_get(cur, key);
            if (key != small) {
                free(key);
            }
        }
        else if (json_is_array(cur)) {
            size_t index;

            cur = k2_json_index(tok, len, &index)
                ? json_array_get(cur, index) : NULL;
        }
        else {
            cur = NULL;                         /* a scalar has no members */
        }
        p = tok + len;
    }
    return cur;
}

/* ---- binding ---------------------------------------------------------- */

/* A finite double as ECMAScript's Number::toString writes it (what
 * JSON.stringify writes): the fewest significant digits that read back as
 * the same double, plain from 1e-7 to 1e21, else with an exponent. */
static size_t k2_json_real_text(double x, char *buf)
{
    char e[40], digits[20];
    const char *p;
    int precision, k = 0, n, i;
    size_t o = 0;

    if (x == 0) {                               /* 0 and -0 */
        buf[0] = '0';
        buf[1] = '\0';
        return 1;
    }
    if (x < 0) {
        buf[o++] = '-';
        x = -x;
    }
    for (precision = 1; precision <= 17; precision++) {
        snprintf(e, sizeof(e), "%.*e", precision - 1, x);
        if (precision == 17 || strtod(e, NULL) == x) {
            break;
        }
    }
    /* e is D[.DDD]e[+-]XX: the digits (whatever the locale's decimal
     * point), then the exponent of the first one. */
    for (p = e; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && k < (int)sizeof(digits)) {
            digits[k++] = *p;
        }
    }
    n = (*p == 'e' ? atoi(p + 1) : 0) + 1;      /* x = 0.DIGITS * 10^n */
    while (k > 1 && digits[k - 1] == '0') {
        k--;
    }
    if (k <= n && n <= 21) {                    /* 1500, 1e20 */
        for (i = 0; i < n; i++) {
            buf[o++] = i < k ? digits[i] : '0';
        }
    }
    else if (0 < n && n <= 21) {                /* 100.5 */
        for (i = 0; i < k; i++) {
            if (i == n) {
                buf[o++] = '.';
            }
            buf[o++] = digits[i];
        }
    }
    else if (-6 < n && n <= 0) {                /* 0.001 */
        buf[o++] = '0';
        buf[o++] = '.';
        for (i = n; i < 0; i++) {
            buf[o++] = '0';
        }
        for (i = 0; i < k; i++) {
            buf[o++] = digits[i];
        }
    }
    else {                                      /* 1e+21, 1.5e-7 */
        buf[o++] = digits[0];
        if (k > 1) {
            buf[o++] = '.';
            for (i = 1; i < k; i++) {
                buf[o++] = digits[i];
            }
        }
        o += (size_t)snprintf(buf + o, K2_JSON_NUMBER_SIZE - o, "e%c%d",
                              n - 1 < 0 ? '-' : '+', n - 1 < 0 ? 1 - n : n - 1);
    }
    buf[o] = '\0';
    return o;
}

size_t k2_json_number_text(const json_t *value, char buf[K2_JSON_NUMBER_SIZE])
{
    if (json_is_integer(value)) {
        int n = snprintf(buf, K2_JSON_NUMBER_SIZE, "%" JSON_INTEGER_FORMAT,
                         json_integer_value(value));

        return n > 0 && n < K2_JSON_NUMBER_SIZE ? (size_t)n : 0;
    }
    if (json_is_real(value)) {
        return k2_json_real_text(json_real_value(value), buf);
    }
    return 0;
}

int k2_json_bind(const json_t *value, k2_json_alloc_fn *alloc, void *baton,
                 const char **text, size_t *len)
{
    char number[K2_JSON_NUMBER_SIZE];
    size_t n;
    char *out;

    *text = NULL;
    *len = 0;
    switch (value ? json_typeof(value) : JSON_NULL) {
    case JSON_NULL:
        return 0;
    case JSON_STRING:
        *text = json_string_value(value);
        *len = json_string_length(value);
        return 0;
    case JSON_TRUE:
        *text = "true";
        *len = 4;
        return 0;
    case JSON_FALSE:
        *text = "false";
        *len = 5;
        return 0;
    case JSON_INTEGER:
    case JSON_REAL:
        n = k2_json_number_text(value, number);
        if (!(out = alloc(baton, n + 1))) {
            return -1;
        }
        memcpy(out, number, n + 1);
        break;
    default:                                    /* object, array */
        n = json_dumpb(value, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0 || !(out = alloc(baton, n + 1))) {
            return -1;
        }
        if (json_dumpb(value, out, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
            return -1;
        }
        out[n] = '\0';
        break;
    }
    *text = out;
    *len = n;
    return 0;
}

/* ---- kind, topic, audit fields --------------------------------------- */

static const char *k2_json_string_at(const json_t *root, const char *pointer)
{
    return json_string_value(k2_json_resolve(root, pointer));  /* NULL if not */
}

k2_json_kind_e k2_json_kind(const json_t *root)
{
    if (k2_json_string_at(root, "/topic")) {
        return K2_JSON_KIND_EVENT;
    }
    if (k2_json_string_at(root, "/data/type")) {
        return K2_JSON_KIND_RESULT;
    }
    if (k2_json_resolve(root, "/TransID")) {
        return K2_JSON_KIND_DARAJA;
    }
    return K2_JSON_KIND_OTHER;
}

const char *k2_json_kind_name(k2_json_kind_e kind)
{
    static const char *const names[] = { "other", "event", "result", "daraja" };

    return (unsigned)kind < sizeof(names) / sizeof(names[0])
        ? names[kind] : "?";
}

const char *k2_json_topic(const json_t *root)
{
    const char *topic = k2_json_string_at(root, "/topic");

    if (!topic) {
        topic = k2_json_string_at(root, "/data/type");
    }
    return topic ? topic : "";
}

const char *k2_json_audit_pointer(const json_t *root, k2_json_audit_e field)
{
    /* reference, amount, currency by kind */
    static const char *const event[] = {
        "/event/resource/reference", "/event/resource/amount",
        "/event/resource/currency"
    };
    static const char *const stk[] = {
        "/data/attributes/event/resource/reference",
        "/data/attributes/event/resource/amount",
        "/data/attributes/event/resource/currency"
    };
    static const char *const result[] = {
        NULL, "/data/attributes/amount/value",
        "/data/attributes/amount/currency"
    };
    static const char *const daraja[] = { "/TransID", "/TransAmount", NULL };
    const json_t *id;

    if (field == K2_JSON_AUDIT_TRANSACTION_ID) {
        id = k2_json_resolve(root, "/id");
        return id && !json_is_null(id) ? "/id" : "/data/id";
    }
    if ((unsigned)field >= K2_JSON_AUDIT_COUNT) {
        return NULL;
    }
    switch (k2_json_kind(root)) {
    case K2_JSON_KIND_EVENT:
        return event[field - 1];
    case K2_JSON_KIND_RESULT:
        return strcmp(k2_json_topic(root), "incoming_payment") == 0
            ? stk[field - 1] : result[field - 1];
    case K2_JSON_KIND_DARAJA:
        return daraja[field - 1];
    default:
        return NULL;
    }
}

int k2_json_audit(const json_t *root, k2_json_alloc_fn *alloc, void *baton,
                  k2_json_audit_t *audit)
{
    size_t f, len;

    audit->kind = k2_json_kind(root);
    audit->topic = k2_json_topic(root);
    for (f = 0; f < K2_JSON_AUDIT_COUNT; f++) {
        const char *pointer = k2_json_audit_pointer(root, (k2_json_audit_e)f);

        audit->value[f] = NULL;
        if (pointer && k2_json_bind(k2_json_resolve(root, pointer), alloc,
                                    baton, &audit->value[f], &len) != 0) {
            return -1;
        }
    }
    return 0;
}
