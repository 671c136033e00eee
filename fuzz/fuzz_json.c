/* fuzz_json.c: libFuzzer target of K2 Connect bodies (k2_json.c) and of
 * their signature (k2_connect_signature_valid).
 *
 * The input is POINTER '\n' BODY.  BODY, in an exact-size copy without a
 * NUL, goes through k2_json_parse; its answer must agree with checks written
 * here (a NUL byte, table-driven UTF-8 of fuzz_common.h, the depth of the
 * parsed tree) and its reason must be short printable ASCII.  Then:
 *  - POINTER: k2_json_pointer_check must agree with a reference check, and
 *    k2_json_resolve with a reference resolver written from RFC 6901 (split
 *    at '/', "~1" then "~0" replaced, indices strictly decimal);
 *  - every node of the tree (up to a bound), addressed by a pointer built
 *    by escaping its keys ('~' as ~0, '/' as ~1), must resolve to itself:
 *    the escaping round trip;
 *  - the binding of each node must follow the rule of k2_json.h: a string's
 *    exact bytes, an integer's text that reads back, a real's shortest text
 *    that reads back (as many significant digits as the fewest that do), a
 *    compound's compact text that parses back to an equal value and is
 *    already compact;
 *  - the audit fields must be bound from the pointers the table names;
 *  - the signature: the hex HMAC-SHA256 of BODY computed here (with
 *    OpenSSL, hex written here in either case) is accepted, one flipped
 *    digit or a longer header is not, and POINTER as a header is accepted
 *    only if it is that digest.
 *
 * Seeds (fuzz/corpus/json): php-* and compact-* are the SDK fixtures of
 * tests/fixtures/k2connect (their sources are in its SOURCES file) behind
 * a pointer line; the others are the edge cases of tests/unit/test_json.c.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_common.h"
#include "k2_json.h"
#include "k2_signature.h"

#define MAX_NODES 300

/* Bound texts are malloc'ed and freed at the end of each input. */
static void *allocs[4 * MAX_NODES + 64];
static size_t nallocs;

static void *alloc_fn(void *baton, size_t size)
{
    void *p;

    (void)baton;
    if (nallocs == sizeof(allocs) / sizeof(allocs[0])) {
        return NULL;
    }
    p = malloc(size);
    FUZZ_ASSERT(p != NULL);
    allocs[nallocs++] = p;
    return p;
}

static void free_allocs(void)
{
    while (nallocs > 0) {
        free(allocs[--nallocs]);
    }
}

/* ---- references ------------------------------------------------------- */

static size_t tree_depth(const json_t *v)
{
    size_t d = 0, i;
    const char *key;
    json_t *m;

    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, m) {
            size_t c = tree_depth(m);

            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, m) {
            size_t c = tree_depth(m);

            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

static int ref_pointer_valid(const char *p)
{
    size_t i, len = strlen(p);

    if (len > 0 && p[0] != '/') {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (p[i] == '~' && !(i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1'))) {
            return 0;
        }
    }
    return fuzz_utf8_wellformed(p, len);
}

/* Replace every occurrence of from (2 bytes) by the byte to, in place. */
static void replace_all(char *s, const char *from, char to)
{
    char *r = s, *w = s;

    while (*r) {
        if (r[0] == from[0] && r[1] == from[1]) {
            *w++ = to;
            r += 2;
        }
        else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* RFC 6901, section 4, read literally. */
static json_t *ref_resolve(json_t *root, const char *pointer)
{
    char *copy, *tok, *next;
    json_t *cur = root;

    if (!ref_pointer_valid(pointer)) {
        return NULL;
    }
    if (pointer[0] == '\0') {
        return root;
    }
    copy = strdup(pointer + 1);
    FUZZ_ASSERT(copy != NULL);
    for (tok = copy; cur; tok = next + 1) {
        next = strchr(tok, '/');
        if (next) {
            *next = '\0';
        }
        replace_all(tok, "~1", '/');            /* first ~1, then ~0 */
        replace_all(tok, "~0", '~');
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        }
        else if (json_is_array(cur)) {
            size_t i, n = strlen(tok);
            unsigned long long idx = 0;
            int ok = n > 0 && n <= 19 && !(n > 1 && tok[0] == '0');

            for (i = 0; ok && i < n; i++) {
                ok = tok[i] >= '0' && tok[i] <= '9';
                idx = idx * 10 + (unsigned long long)(tok[i] - '0');
            }
            cur = ok && idx < json_array_size(cur)
                ? json_array_get(cur, (size_t)idx) : NULL;
        }
        else {
            cur = NULL;
        }
        if (!next) {
            break;
        }
    }
    free(copy);
    return cur;
}

/* Significant digits of a number's text: no sign, exponent, point, nor
 * leading or trailing zeros. */
static int significant_digits(const char *t)
{
    char d[64];
    int n = 0, first, last;

    for (; *t && *t != 'e' && *t != 'E'; t++) {
        if (isdigit((unsigned char)*t) && n < (int)sizeof(d)) {
            d[n++] = *t;
        }
    }
    for (first = 0; first < n && d[first] == '0'; first++) {
    }
    for (last = n - 1; last >= first && d[last] == '0'; last--) {
    }
    return last >= first ? last - first + 1 : 1;
}

/* The fewest significant digits that read back as x. */
static int fewest_digits(double x)
{
    char buf[64];
    int p;

    for (p = 1; p < 17; p++) {
        snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) {
            return p;
        }
    }
    return 17;
}

static void check_binding(const json_t *v)
{
    const char *text = (const char *)1;
    size_t len = 99;
    json_error_t err;
    json_t *back;
    char *again;

    if (k2_json_bind(v, alloc_fn, NULL, &text, &len) != 0) {
        return;                                 /* out of slots: fine */
    }
    if (!v || json_is_null(v)) {
        FUZZ_ASSERT(text == NULL && len == 0);
        return;
    }
    FUZZ_ASSERT(text != NULL && text[len] == '\0');
    switch (json_typeof(v)) {
    case JSON_STRING:
        FUZZ_ASSERT(len == json_string_length(v)
                    && memcmp(text, json_string_value(v), len) == 0);
        break;
    case JSON_TRUE:
        FUZZ_ASSERT(strcmp(text, "true") == 0);
        break;
    case JSON_FALSE:
        FUZZ_ASSERT(strcmp(text, "false") == 0);
        break;
    case JSON_INTEGER:
        FUZZ_ASSERT(strlen(text) == len && len > 0);
        FUZZ_ASSERT(strtoll(text, NULL, 10) == json_integer_value(v));
        FUZZ_ASSERT(text[text[0] == '-'] != '0' || len == 1);   /* no 007 */
        break;
    case JSON_REAL:
        FUZZ_ASSERT(strlen(text) == len && len > 0 && len < K2_JSON_NUMBER_SIZE);
        FUZZ_ASSERT(strtod(text, NULL) == json_real_value(v));
        if (json_real_value(v) != 0) {
            FUZZ_ASSERT(significant_digits(text)
                        == fewest_digits(json_real_value(v)));
        }
        /* and it is a JSON number (1e20 is written as 21 digits: read
         * them as a real, not as Jansson's 64-bit integer) */
        back = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
                          &err);
        FUZZ_ASSERT(json_is_number(back)
                    && json_number_value(back) == json_real_value(v));
        json_decref(back);
        break;
    default:                                    /* object, array */
        FUZZ_ASSERT(strlen(text) == len);
        back = json_loadb(text, len, JSON_DECODE_ANY, &err);
        FUZZ_ASSERT(back != NULL && json_equal(back, (json_t *)v));
        again = json_dumps(back, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_ASSERT(again && strcmp(again, text) == 0);
        free(again);
        json_decref(back);
        break;
    }
}

/* Append the escaped key to the pointer being built. */
static char *append_token(const char *prefix, const char *key, size_t klen)
{
    size_t plen = strlen(prefix), i, o;
    char *out = malloc(plen + 2 + 2 * klen);

    FUZZ_ASSERT(out != NULL);
    memcpy(out, prefix, plen);
    o = plen;
    out[o++] = '/';
    for (i = 0; i < klen; i++) {
        if (key[i] == '~') {
            out[o++] = '~';
            out[o++] = '0';
        }
        else if (key[i] == '/') {
            out[o++] = '~';
            out[o++] = '1';
        }
        else {
            out[o++] = key[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Every node (up to *budget) must resolve to itself by its escaped pointer
 * and bind by the rule. */
static void walk(const json_t *root, json_t *node, const char *pointer,
                 int *budget)
{
    const char *key;
    json_t *m;
    size_t i;

    if ((*budget)-- <= 0) {
        return;
    }
    FUZZ_ASSERT(k2_json_pointer_check(pointer) == NULL);
    FUZZ_ASSERT(k2_json_resolve(root, pointer) == node);
    check_binding(node);
    if (json_is_object(node)) {
        json_object_foreach(node, key, m) {
            char *p = append_token(pointer, key, strlen(key));

            walk(root, m, p, budget);
            free(p);
        }
    }
    else if (json_is_array(node)) {
        json_array_foreach(node, i, m) {
            char idx[24];
            char *p;

            snprintf(idx, sizeof(idx), "%zu", i);
            p = append_token(pointer, idx, strlen(idx));
            walk(root, m, p, budget);
            free(p);
        }
    }
}

static void hex(const unsigned char *d, size_t n, char *out, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void check_signature(const char *body, size_t len, const char *header,
                            size_t size)
{
    static const unsigned char key[] = "k2-api-key-fuzz";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char expected[2 * 32 + 2], other[2 * 32 + 2];
    size_t i;
    int header_is_digest = strlen(header) == 64;

    FUZZ_ASSERT(HMAC(EVP_sha256(), key, sizeof(key) - 1,
                     (const unsigned char *)body, len, d, &dlen) && dlen == 32);
    hex(d, dlen, expected, (int)(size & 1));
    FUZZ_ASSERT(k2_connect_signature_valid(body, len, key, sizeof(key) - 1,
                                           expected) == 1);
    memcpy(other, expected, sizeof(expected));
    i = size % 64;
    other[i] = other[i] == '0' ? '1' : '0';
    FUZZ_ASSERT(k2_connect_signature_valid(body, len, key, sizeof(key) - 1,
                                           other) == 0);
    memcpy(other, expected, 65);
    other[64] = '0';
    other[65] = '\0';
    FUZZ_ASSERT(k2_connect_signature_valid(body, len, key, sizeof(key) - 1,
                                           other) == 0);
    FUZZ_ASSERT(k2_connect_signature_valid(body, len, key, 0, expected) == 0);
    for (i = 0; header_is_digest && i < 64; i++) {
        header_is_digest = tolower((unsigned char)header[i]) == tolower(
            (unsigned char)expected[i]);
    }
    FUZZ_ASSERT(k2_connect_signature_valid(body, len, key, sizeof(key) - 1,
                                           header) == header_is_digest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : 0;
    const uint8_t *b = nl ? nl + 1 : data;
    size_t len = size - (size_t)(b - data), i;
    char *pointer = fuzz_strndup(data, plen);   /* a NUL inside cuts it */
    char *body = malloc(len ? len : 1);
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err = (k2_json_error_e)-1;
    json_t *root;
    int budget = MAX_NODES;

    FUZZ_ASSERT(body != NULL);
    memcpy(body, b, len);
    memset(reason, 'X', sizeof(reason));
    root = k2_json_parse(body, len, &err, reason, sizeof(reason));

    /* The answer and its reason. */
    FUZZ_ASSERT(memchr(reason, '\0', sizeof(reason)) != NULL);
    for (i = 0; reason[i]; i++) {
        FUZZ_ASSERT(reason[i] >= 0x20 && reason[i] < 0x7F);
    }
    FUZZ_ASSERT((root != NULL) == (err == K2_JSON_OK));
    if (len == 0) {
        FUZZ_ASSERT(err == K2_JSON_EMPTY);
    }
    else if (memchr(body, '\0', len)) {
        FUZZ_ASSERT(err == K2_JSON_NUL);
    }
    else if (!fuzz_utf8_wellformed(body, len)) {
        FUZZ_ASSERT(err == K2_JSON_BAD_UTF8);
    }
    if (root) {
        FUZZ_ASSERT(json_is_object(root) && reason[0] == '\0');
        FUZZ_ASSERT(tree_depth(root) <= K2_JSON_MAX_DEPTH);
        FUZZ_ASSERT(tree_depth(root) == k2_json_depth(body, len));
    }
    else if (err > K2_JSON_TOO_DEEP && err != K2_JSON_NO_MEMORY) {
        /* refused by Jansson or by type: the depth check came first */
        FUZZ_ASSERT(k2_json_depth(body, len) <= K2_JSON_MAX_DEPTH);
    }

    /* The pointer: syntax, then resolution against the reference. */
    FUZZ_ASSERT((k2_json_pointer_check(pointer) == NULL)
                == ref_pointer_valid(pointer));
    if (root) {
        k2_json_audit_t audit;

        FUZZ_ASSERT(k2_json_resolve(root, pointer) == ref_resolve(root, pointer));
        check_binding(k2_json_resolve(root, pointer));
        walk(root, root, "", &budget);

        if (k2_json_audit(root, alloc_fn, NULL, &audit) == 0) {
            FUZZ_ASSERT(audit.topic != NULL);
            FUZZ_ASSERT(strcmp(audit.topic, k2_json_topic(root)) == 0);
            for (i = 0; i < K2_JSON_AUDIT_COUNT; i++) {
                const char *p = k2_json_audit_pointer(root, (k2_json_audit_e)i);
                const json_t *v = p ? k2_json_resolve(root, p) : NULL;

                FUZZ_ASSERT((audit.value[i] == NULL)
                            == (v == NULL || json_is_null(v)));
                if (json_is_string(v)) {
                    FUZZ_ASSERT(audit.value[i] == json_string_value(v));
                }
            }
        }
        json_decref(root);
    }
    else {
        FUZZ_ASSERT(k2_json_resolve(NULL, pointer) == NULL);
    }

    check_signature(body, len, pointer, size);

    free_allocs();
    free(pointer);
    free(body);
    return 0;
}
