/* fuzz_form.c: libFuzzer target of the form decoder, the form parser and
 * the validation (k2_form.c, k2_notification.c).
 *
 * The input is a request body.  It is parsed straight from libFuzzer's
 * buffer, which has exactly the input's size, with a scratch buffer of
 * exactly len + 1 bytes (the documented need), so ASan sees any overrun.
 * Every result is compared with a small reference parser written here from
 * the documented rules, not from k2_form.c.  When the input has a '\n' it is
 * also parsed as a query string (before it) and a body (after it) into one
 * notification, as the handler does.  A parsed notification is validated
 * with a fixed currency and biller list, and without a biller list.
 */
#include <ctype.h>

#include "fuzz_common.h"
#include "k2_notification.h"

/* The 15 parameters of the spec, in the spec's order (k2_field_e). */
static const char *const spec_params[K2_F_NPARAMS] = {
    "k2_account_id", "k2_transaction_id", "mm_system_id", "mp_transaction_id",
    "biller_number", "transaction_date", "transaction_time",
    "transaction_type", "ac_no", "sender", "first_name", "last_name",
    "middle_name", "amount", "currency"
};

static const char *const currencies[] = { "KES", "USD", NULL };
static const char *const billers[] = { "888555", "0", NULL };

/* ---- the reference ---------------------------------------------------- */

/* Decode one component: '+' is a space, %XX a byte; then the first bad
 * byte decides the error, and the whole result must be UTF-8. */
static k2_reason_e ref_decode(const char *in, size_t len, char *out,
                              size_t *outlen)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '%') {
            char hex[3];

            if (i + 2 >= len) {
                return K2_BAD_ESCAPE;
            }
            if (!isxdigit((unsigned char)in[i + 1])
                || !isxdigit((unsigned char)in[i + 2])) {
                return K2_BAD_ESCAPE;
            }
            hex[0] = in[i + 1];
            hex[1] = in[i + 2];
            hex[2] = '\0';
            c = (unsigned char)strtoul(hex, NULL, 16);
            i += 2;
        }
        else if (c == '+') {
            c = ' ';
        }
        if (c == '\0') {
            return K2_BAD_NUL;
        }
        if (c < 0x20 || c == 0x7F) {
            return K2_BAD_CONTROL;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *outlen = o;
    return fuzz_utf8_wellformed(out, o) ? K2_OK : K2_BAD_UTF8;
}

/* The reference state of one notification: a value per parameter, in
 * buffers of its own. */
typedef struct {
    char *value[K2_F_NPARAMS];
    int conflict_field;
    size_t npairs;
} ref_t;

static void ref_free(ref_t *ref)
{
    size_t i;

    for (i = 0; i < K2_F_NPARAMS; i++) {
        free(ref->value[i]);
    }
}

static k2_reason_e ref_parse(ref_t *ref, const char *buf, size_t len)
{
    const char *end = buf + len, *seg = buf;

    while (seg < end) {
        const char *amp = memchr(seg, '&', (size_t)(end - seg));
        const char *segend = amp ? amp : end;
        const char *eq = memchr(seg, '=', (size_t)(segend - seg));
        const char *nend = eq ? eq : segend;
        char *name, *value;
        size_t nl, vl, f;
        k2_reason_e rv;

        if (segend == seg) {
            seg = segend + 1;
            continue;
        }
        if (nend == seg) {
            return K2_BAD_EMPTY_NAME;
        }
        name = malloc((size_t)(nend - seg) + 1);
        rv = ref_decode(seg, (size_t)(nend - seg), name, &nl);
        if (rv != K2_OK) {
            free(name);
            return rv;
        }
        value = malloc(eq ? (size_t)(segend - eq) : 1);
        if (eq) {
            rv = ref_decode(eq + 1, (size_t)(segend - eq - 1), value, &vl);
            if (rv != K2_OK) {
                free(name);
                free(value);
                return rv;
            }
        }
        else {
            value[0] = '\0';
        }
        ref->npairs++;
        for (f = 0; f < K2_F_NPARAMS; f++) {
            if (strcmp(spec_params[f], name) == 0) {
                break;
            }
        }
        free(name);
        if (f < K2_F_NPARAMS) {
            if (ref->value[f] && strcmp(ref->value[f], value) != 0) {
                ref->conflict_field = (int)f;
                free(value);
                return K2_BAD_CONFLICT;
            }
            free(ref->value[f]);
            ref->value[f] = value;
        }
        else {
            free(value);
        }
        seg = segend + 1;
    }
    return K2_OK;
}

/* ---- checks of mod_k2notify's results --------------------------------- */

typedef struct {
    const char *scratch;        /* where names and values must lie */
    size_t size;                /* its size */
    size_t npairs;
} pairs_t;

static void in_scratch(const pairs_t *p, const char *s)
{
    size_t len = strlen(s);

    FUZZ_ASSERT(s >= p->scratch && s + len < p->scratch + p->size);
}

static void on_pair(void *baton, const char *name, const char *value)
{
    pairs_t *p = baton;

    in_scratch(p, name);
    if (*value) {
        in_scratch(p, value);           /* "name" alone has a static "" */
    }
    FUZZ_ASSERT(*name != '\0');
    FUZZ_ASSERT(fuzz_utf8_wellformed(name, strlen(name)));
    FUZZ_ASSERT(fuzz_utf8_wellformed(value, strlen(value)));
    FUZZ_ASSERT(!fuzz_has_control(name, strlen(name)));
    FUZZ_ASSERT(!fuzz_has_control(value, strlen(value)));
    p->npairs++;
}

/* k2_form_decode of the whole input, against the reference. */
static void check_decode(const char *buf, size_t len)
{
    char *out = malloc(len + 1), *ref = malloc(len + 1);
    size_t outlen = (size_t)-1, reflen = 0;
    k2_reason_e rv = k2_form_decode(buf, len, out, &outlen);
    k2_reason_e rrv = ref_decode(buf, len, ref, &reflen);

    FUZZ_ASSERT(rv == rrv);
    if (rv == K2_OK) {
        FUZZ_ASSERT(outlen <= len);
        FUZZ_ASSERT(outlen == reflen && memcmp(out, ref, outlen + 1) == 0);
        FUZZ_ASSERT(strlen(out) == outlen);
        FUZZ_ASSERT(k2_utf8_valid(out, outlen));
        FUZZ_ASSERT(!fuzz_has_control(out, outlen));
    }
    free(out);
    free(ref);
}

/* Every value of a parsed notification against the reference. */
static void check_parsed(const k2_notification_t *n, k2_reason_e rv,
                         const ref_t *ref, k2_reason_e rrv)
{
    int i;

    FUZZ_ASSERT(rv == rrv);
    if (rv == K2_BAD_CONFLICT) {
        FUZZ_ASSERT(n->conflict_field == ref->conflict_field);
    }
    if (rv != K2_OK) {
        return;
    }
    FUZZ_ASSERT(n->conflict_field == -1 && n->missing_field == -1);
    for (i = 0; i < K2_F_NPARAMS; i++) {
        if (!ref->value[i]) {
            FUZZ_ASSERT(n->value[i] == NULL);
        }
        else {
            FUZZ_ASSERT(n->value[i] && strcmp(n->value[i], ref->value[i]) == 0);
        }
    }
    for (; i < K2_F_COUNT; i++) {
        FUZZ_ASSERT(n->value[i] == NULL);   /* derived: not from the form */
    }
}

static int in_list(const char *v, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(*list, v) == 0) {
            return 1;
        }
    }
    return 0;
}

/* k2_notification_validate on a copy of n, then what its result promises. */
static void check_validate(const k2_notification_t *parsed, size_t inlen,
                           const char *const *bl)
{
    static const int required[] = {
        K2_F_K2_TRANSACTION_ID, K2_F_AC_NO, K2_F_AMOUNT, K2_F_CURRENCY
    };
    k2_notification_t n = *parsed;
    k2_reason_e rv = k2_notification_validate(&n, currencies, bl);
    const char *ts = n.value[K2_F_TRANSACTION_TIMESTAMP];
    size_t i;
    int first_missing = -1;

    for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const char *v = parsed->value[required[i]];

        if (!v || !*v) {
            first_missing = required[i];
            break;
        }
    }
    if (first_missing >= 0) {
        FUZZ_ASSERT(rv == K2_BAD_MISSING && n.missing_field == first_missing);
        return;
    }
    FUZZ_ASSERT(rv != K2_BAD_MISSING && n.missing_field == -1);
    FUZZ_ASSERT(rv == K2_OK || rv == K2_BAD_DATE || rv == K2_BAD_TIME
                || k2_reason_is_invalid_payment(rv));
    if (rv == K2_BAD_DATE || rv == K2_BAD_TIME) {
        return;
    }
    /* Empty optional parameters are absent now; others are untouched. */
    for (i = 0; i < K2_F_NPARAMS; i++) {
        const char *v = parsed->value[i];

        FUZZ_ASSERT(n.value[i] == ((v && *v) ? v : NULL));
    }
    if (n.value[K2_F_TRANSACTION_DATE] && n.value[K2_F_TRANSACTION_TIME]) {
        FUZZ_ASSERT(ts == n.timestamp && strlen(ts) == 19);
    }
    else {
        FUZZ_ASSERT(ts == NULL);
    }
    if (rv == K2_INVALID_AMOUNT) {
        FUZZ_ASSERT(!k2_amount_valid(n.value[K2_F_AMOUNT]));
        return;
    }
    FUZZ_ASSERT(k2_amount_valid(n.value[K2_F_AMOUNT]));
    if (rv == K2_INVALID_CURRENCY) {
        FUZZ_ASSERT(!in_list(n.value[K2_F_CURRENCY], currencies));
        return;
    }
    FUZZ_ASSERT(in_list(n.value[K2_F_CURRENCY], currencies));
    if (rv == K2_INVALID_BILLER) {
        FUZZ_ASSERT(bl && (!n.value[K2_F_BILLER_NUMBER]
                           || !in_list(n.value[K2_F_BILLER_NUMBER], bl)));
        return;
    }
    FUZZ_ASSERT(rv == K2_OK);
    FUZZ_ASSERT(!bl || (n.value[K2_F_BILLER_NUMBER]
                        && in_list(n.value[K2_F_BILLER_NUMBER], bl)));
    /* Accepted: every value is UTF-8 without control characters and no
     * longer than the input (the timestamp aside, which is built). */
    for (i = 0; i < K2_F_COUNT; i++) {
        const char *v = n.value[i];

        if (v) {
            FUZZ_ASSERT(*v != '\0');
            FUZZ_ASSERT(k2_utf8_valid(v, strlen(v)));
            FUZZ_ASSERT(!fuzz_has_control(v, strlen(v)));
            FUZZ_ASSERT(i == K2_F_TRANSACTION_TIMESTAMP || strlen(v) <= inlen);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *nl = memchr(buf, '\n', size);
    k2_notification_t n;
    pairs_t pairs;
    ref_t ref;
    k2_reason_e rv, rrv;
    char *scratch;

    /* The whole input as one body, from libFuzzer's exact-size buffer. */
    check_decode(buf, size);

    scratch = malloc(size + 1);
    pairs.scratch = scratch;
    pairs.size = size + 1;
    pairs.npairs = 0;
    k2_notification_init(&n);
    rv = k2_form_parse(&n, buf, size, scratch, on_pair, &pairs);
    memset(&ref, 0, sizeof(ref));
    ref.conflict_field = -1;
    rrv = ref_parse(&ref, buf, size);
    check_parsed(&n, rv, &ref, rrv);
    FUZZ_ASSERT(pairs.npairs == ref.npairs);
    if (rv == K2_OK) {
        check_validate(&n, size, billers);
        check_validate(&n, size, NULL);
    }
    free(scratch);
    ref_free(&ref);

    /* A query string, then a body, into one notification. */
    if (nl) {
        size_t qlen = (size_t)(nl - buf), blen = size - qlen - 1;
        char *query = malloc(qlen ? qlen : 1), *body = malloc(blen ? blen : 1);
        char *qscratch = malloc(qlen + 1), *bscratch = malloc(blen + 1);

        memcpy(query, buf, qlen);
        memcpy(body, nl + 1, blen);
        k2_notification_init(&n);
        memset(&ref, 0, sizeof(ref));
        ref.conflict_field = -1;
        rv = k2_form_parse(&n, query, qlen, qscratch, NULL, NULL);
        rrv = ref_parse(&ref, query, qlen);
        if (rv == K2_OK) {
            rv = k2_form_parse(&n, body, blen, bscratch, NULL, NULL);
            if (rrv == K2_OK) {
                rrv = ref_parse(&ref, body, blen);
            }
        }
        check_parsed(&n, rv, &ref, rrv);
        if (rv == K2_OK) {
            check_validate(&n, size, billers);
        }
        free(query);
        free(body);
        free(qscratch);
        free(bscratch);
        ref_free(&ref);
    }
    return 0;
}
