/* test_json.c: unit tests of K2 Connect bodies (k2_json.c) and of the K2
 * Connect signature (k2_connect_signature_valid in k2_signature.c).
 *
 *   build/test_k2 json        the tests of this file (names contain "json")
 *
 * Bodies are copied into exact-size heap buffers without a NUL, so that an
 * ASan build catches a read past the end.  The event shapes are the SDKs'
 * published fixtures, read from tests/fixtures/k2connect (see its SOURCES);
 * the kinds no SDK publishes (b2b_transaction_reversed, card events) are
 * built here from the fields of the Ruby SDK's payload classes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "k2_json.h"
#include "k2_signature.h"

/* ---- helpers ---------------------------------------------------------- */

static const char *json_error_name(k2_json_error_e err)
{
    static const char *const names[] = {
        "K2_JSON_OK", "K2_JSON_EMPTY", "K2_JSON_NUL", "K2_JSON_BAD_UTF8",
        "K2_JSON_TOO_DEEP", "K2_JSON_DUPLICATE_KEY", "K2_JSON_BIG_NUMBER",
        "K2_JSON_TRAILING", "K2_JSON_SYNTAX", "K2_JSON_NOT_OBJECT",
        "K2_JSON_NO_MEMORY"
    };

    return (unsigned)err < sizeof(names) / sizeof(names[0]) ? names[err] : "?";
}

/* Parse len bytes of s from an exact-size copy; the reason goes to reason
 * (K2_JSON_REASON_SIZE bytes) when it is not NULL. */
static json_t *parse_len(const char *s, size_t len, k2_json_error_e *err,
                         char *reason)
{
    return k2_json_parse(heap_copy(s, len), len, err, reason,
                         reason ? K2_JSON_REASON_SIZE : 0);
}

/* Expect s (len bytes) to be refused with want; checks the reason too. */
#define CHECK_REFUSED(s, len, want) check_refused_(__FILE__, __LINE__, s, len, want)

static void check_refused_(const char *file, int line, const char *s,
                           size_t len, k2_json_error_e want)
{
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err = K2_JSON_OK;
    json_t *root;
    size_t i;

    memset(reason, 'X', sizeof(reason));
    root = parse_len(s, len, &err, reason);
    if (root || err != want) {
        fail_at(file, line, "k2_json_parse is %s (%s), expected %s",
                root ? "an object" : "NULL", json_error_name(err),
                json_error_name(want));
        json_decref(root);
        return;
    }
    /* The reason starts with the fixed text, is NUL-terminated within its
     * buffer and is printable ASCII only (no byte of the body survives). */
    if (memchr(reason, '\0', sizeof(reason)) == NULL) {
        fail_at(file, line, "the reason is not NUL-terminated");
        return;
    }
    if (strncmp(reason, k2_json_error_text(want),
                strlen(k2_json_error_text(want))) != 0) {
        fail_at(file, line, "reason \"%s\" does not start with \"%s\"",
                reason, k2_json_error_text(want));
    }
    for (i = 0; reason[i]; i++) {
        if (reason[i] < 0x20 || reason[i] > 0x7E) {
            fail_at(file, line, "reason has byte 0x%02x at %zu",
                    (unsigned char)reason[i], i);
            return;
        }
    }
}

#define REFUSED(s, want) CHECK_REFUSED(s, sizeof(s) - 1, want)

/* Parse s, which must be accepted. */
#define PARSE_OK(s) parse_ok_(__FILE__, __LINE__, s, sizeof(s) - 1)

static json_t *parse_ok_(const char *file, int line, const char *s, size_t len)
{
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err = K2_JSON_OK;
    json_t *root = parse_len(s, len, &err, reason);

    if (!root || err != K2_JSON_OK) {
        fail_at(file, line, "k2_json_parse refused: %s (%s)",
                json_error_name(err), reason);
    }
    return root;
}

static void *alloc_test(void *baton, size_t size)
{
    (void)baton;
    return test_alloc(size);
}

static void *alloc_none(void *baton, size_t size)
{
    (void)baton;
    (void)size;
    return NULL;
}

/* The binding of the value at pointer in root: NULL for SQL NULL. */
static const char *bind_at(const json_t *root, const char *pointer, size_t *len)
{
    const char *text = "unset";
    size_t n = 12345;

    if (k2_json_bind(k2_json_resolve(root, pointer), alloc_test, NULL,
                     &text, &n) != 0) {
        return "bind failed";
    }
    if (len) {
        *len = n;
    }
    if (text && strlen(text) != n) {
        return "length differs";
    }
    if (!text && n != 0) {
        return "NULL with a length";
    }
    return text;
}

/* The binding of the value of a one-member body {"v": VALUE}. */
#define CHECK_BINDS(value, want) check_binds_(__FILE__, __LINE__, value, want)

static void check_binds_(const char *file, int line, const char *value,
                         const char *want)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"v\":%s}", value);
    json_t *root = parse_ok_(file, line, body, (size_t)n);

    if (root) {
        check_str_(file, line, value, bind_at(root, "/v", NULL), want);
    }
    json_decref(root);
}

/* The fixtures directory, beside this file. */
static char *fixture(const char *name, size_t *len)
{
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__) : 1;
    char path[512];
    FILE *f;
    char *buf;
    long size;

    snprintf(path, sizeof(path), "%.*s/../fixtures/k2connect/%s", dirlen,
             slash ? __FILE__ : ".", name);
    if (!(f = fopen(path, "rb")) || fseek(f, 0, SEEK_END) != 0
        || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fail_at(__FILE__, __LINE__, "cannot read %s (run from the "
                "repository's top directory)", path);
        if (f) {
            fclose(f);
        }
        *len = 0;
        return NULL;
    }
    buf = test_alloc(size ? (size_t)size : 1);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fail_at(__FILE__, __LINE__, "short read of %s", path);
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static json_t *parse_fixture(const char *name)
{
    size_t len;
    char *body = fixture(name, &len);
    k2_json_error_e err;
    char reason[K2_JSON_REASON_SIZE];
    json_t *root;

    if (!body) {
        return NULL;
    }
    root = k2_json_parse(body, len, &err, reason, sizeof(reason));
    if (!root) {
        fail_at(__FILE__, __LINE__, "fixture %s refused: %s", name, reason);
    }
    return root;
}

/* ---- RFC 6901, section 5: its own examples ---------------------------- */

static const char rfc6901_doc[] =
    "{\n"
    "   \"foo\": [\"bar\", \"baz\"],\n"
    "   \"\": 0,\n"
    "   \"a/b\": 1,\n"
    "   \"c%d\": 2,\n"
    "   \"e^f\": 3,\n"
    "   \"g|h\": 4,\n"
    "   \"i\\\\j\": 5,\n"
    "   \"k\\\"l\": 6,\n"
    "   \" \": 7,\n"
    "   \"m~n\": 8\n"
    "}";

static void test_json_pointer_rfc6901_section5_examples(void)
{
    json_t *doc = PARSE_OK(rfc6901_doc);

    CHECK(k2_json_resolve(doc, "") == doc);
    CHECK_STR(bind_at(doc, "/foo", NULL), "[\"bar\",\"baz\"]");
    CHECK_STR(bind_at(doc, "/foo/0", NULL), "bar");
    CHECK_STR(bind_at(doc, "/", NULL), "0");
    CHECK_STR(bind_at(doc, "/a~1b", NULL), "1");
    CHECK_STR(bind_at(doc, "/c%d", NULL), "2");
    CHECK_STR(bind_at(doc, "/e^f", NULL), "3");
    CHECK_STR(bind_at(doc, "/g|h", NULL), "4");
    CHECK_STR(bind_at(doc, "/i\\j", NULL), "5");
    CHECK_STR(bind_at(doc, "/k\"l", NULL), "6");
    CHECK_STR(bind_at(doc, "/ ", NULL), "7");
    CHECK_STR(bind_at(doc, "/m~0n", NULL), "8");
    json_decref(doc);
}

static void test_json_pointer_rfc6901_examples_are_valid(void)
{
    static const char *const pointers[] = {
        "", "/foo", "/foo/0", "/", "/a~1b", "/c%d", "/e^f", "/g|h", "/i\\j",
        "/k\"l", "/ ", "/m~0n"
    };
    size_t i;

    for (i = 0; i < sizeof(pointers) / sizeof(pointers[0]); i++) {
        CHECK_STR(k2_json_pointer_check(heap_str(pointers[i])), NULL);
    }
}

/* ---- pointer syntax (configtest) -------------------------------------- */

static void test_json_pointer_check_accepts_k2_pointers(void)
{
    CHECK_STR(k2_json_pointer_check("/id"), NULL);
    CHECK_STR(k2_json_pointer_check("/topic"), NULL);
    CHECK_STR(k2_json_pointer_check("/event/resource/amount"), NULL);
    CHECK_STR(k2_json_pointer_check("/data/attributes/event/resource/reference"),
              NULL);
    CHECK_STR(k2_json_pointer_check("/event/resource/disbursements/0/amount"),
              NULL);
    CHECK_STR(k2_json_pointer_check("/TransID"), NULL);
}

static void test_json_pointer_check_accepts_odd_but_valid(void)
{
    CHECK_STR(k2_json_pointer_check("//"), NULL);           /* key "", key "" */
    CHECK_STR(k2_json_pointer_check("/foo/-"), NULL);       /* valid, never resolves */
    CHECK_STR(k2_json_pointer_check("/~0~1"), NULL);
    CHECK_STR(k2_json_pointer_check("/~01"), NULL);
    CHECK_STR(k2_json_pointer_check("/\xc3\xa9t\xc3\xa9"), NULL);   /* /été */
}

static void test_json_pointer_check_refuses_no_leading_slash(void)
{
    CHECK(k2_json_pointer_check("id") != NULL);
    CHECK(k2_json_pointer_check("amount") != NULL);         /* a form field name */
    CHECK(k2_json_pointer_check("#/id") != NULL);           /* URI fragment form */
    CHECK(k2_json_pointer_check(" /id") != NULL);
    CHECK(k2_json_pointer_check("raw_body") != NULL);       /* the glue's, not a pointer */
    CHECK_STR(k2_json_pointer_check("id"),
              "a JSON pointer is empty or starts with '/'");
}

static void test_json_pointer_check_refuses_bad_tilde(void)
{
    CHECK(k2_json_pointer_check("/a~") != NULL);
    CHECK(k2_json_pointer_check("/a~2") != NULL);
    CHECK(k2_json_pointer_check("/~/a") != NULL);
    CHECK(k2_json_pointer_check("/a~~0") != NULL);
    CHECK(k2_json_pointer_check("/~a") != NULL);
}

static void test_json_pointer_check_refuses_bad_utf8_and_null(void)
{
    CHECK(k2_json_pointer_check("/\xff") != NULL);
    CHECK(k2_json_pointer_check("/\xc0\xaf") != NULL);      /* overlong '/' */
    CHECK(k2_json_pointer_check("/\xed\xa0\x80") != NULL);  /* surrogate */
    CHECK(k2_json_pointer_check(NULL) != NULL);
}

/* ---- resolution ------------------------------------------------------- */

static void test_json_resolve_array_indices(void)
{
    json_t *doc = PARSE_OK("{\"a\":[\"zero\",\"one\",[\"x\",\"y\"]]}");

    CHECK_STR(bind_at(doc, "/a/0", NULL), "zero");
    CHECK_STR(bind_at(doc, "/a/1", NULL), "one");
    CHECK_STR(bind_at(doc, "/a/2/1", NULL), "y");
    CHECK(k2_json_resolve(doc, "/a/3") == NULL);             /* past the end */
    CHECK(k2_json_resolve(doc, "/a/-") == NULL);             /* never resolves */
    CHECK(k2_json_resolve(doc, "/a/01") == NULL);            /* leading zero */
    CHECK(k2_json_resolve(doc, "/a/00") == NULL);
    CHECK(k2_json_resolve(doc, "/a/+1") == NULL);
    CHECK(k2_json_resolve(doc, "/a/-1") == NULL);
    CHECK(k2_json_resolve(doc, "/a/ 1") == NULL);
    CHECK(k2_json_resolve(doc, "/a/1 ") == NULL);
    CHECK(k2_json_resolve(doc, "/a/1a") == NULL);
    CHECK(k2_json_resolve(doc, "/a/0x1") == NULL);
    CHECK(k2_json_resolve(doc, "/a/") == NULL);              /* "" is no index */
    CHECK(k2_json_resolve(doc, "/a/18446744073709551616") == NULL);
    CHECK(k2_json_resolve(doc, "/a/99999999999999999999999999") == NULL);
    json_decref(doc);
}

static void test_json_resolve_digit_keys_of_objects_are_keys(void)
{
    json_t *doc = PARSE_OK("{\"0\":\"zero\",\"01\":\"oh-one\",\"-\":\"dash\"}");

    CHECK_STR(bind_at(doc, "/0", NULL), "zero");
    CHECK_STR(bind_at(doc, "/01", NULL), "oh-one");
    CHECK_STR(bind_at(doc, "/-", NULL), "dash");
    json_decref(doc);
}

static void test_json_resolve_unescapes_tilde_one_then_zero(void)
{
    /* "~01" is "~1" (not "/"): ~0 is decoded once, not again. */
    json_t *doc = PARSE_OK("{\"~1\":\"tilde-one\",\"/\":\"slash\","
                           "\"~\":\"tilde\",\"a/b~c\":\"both\"}");

    CHECK_STR(bind_at(doc, "/~01", NULL), "tilde-one");
    CHECK_STR(bind_at(doc, "/~1", NULL), "slash");
    CHECK_STR(bind_at(doc, "/~0", NULL), "tilde");
    CHECK_STR(bind_at(doc, "/a~1b~0c", NULL), "both");
    CHECK(k2_json_resolve(doc, "/a/b~c") == NULL);
    json_decref(doc);
}

static void test_json_resolve_empty_keys_and_trailing_slash(void)
{
    json_t *doc = PARSE_OK("{\"\":{\"\":\"deep\"},\"a\":{\"\":5}}");

    CHECK_STR(bind_at(doc, "//", NULL), "deep");
    CHECK_STR(bind_at(doc, "/a/", NULL), "5");
    CHECK_STR(bind_at(doc, "/", NULL), "{\"\":\"deep\"}");
    json_decref(doc);
}

static void test_json_resolve_through_a_scalar_is_null(void)
{
    json_t *doc = PARSE_OK("{\"s\":\"text\",\"n\":5,\"z\":null,\"t\":true}");

    CHECK(k2_json_resolve(doc, "/s/0") == NULL);
    CHECK(k2_json_resolve(doc, "/n/x") == NULL);
    CHECK(k2_json_resolve(doc, "/z/x") == NULL);
    CHECK(k2_json_resolve(doc, "/t/x") == NULL);
    CHECK(k2_json_resolve(doc, "/missing/x") == NULL);
    json_decref(doc);
}

static void test_json_resolve_invalid_pointer_is_null(void)
{
    /* The key "a~2" exists, but "/a~2" is no pointer; nor is "a". */
    json_t *doc = PARSE_OK("{\"a~2\":1,\"a\":2}");

    CHECK(k2_json_resolve(doc, "/a~2") == NULL);
    CHECK(k2_json_resolve(doc, "a") == NULL);
    CHECK(k2_json_resolve(doc, "#/a") == NULL);
    CHECK(k2_json_resolve(doc, NULL) == NULL);
    CHECK(k2_json_resolve(NULL, "/a") == NULL);
    json_decref(doc);
}

static void test_json_resolve_keys_are_exact_bytes(void)
{
    json_t *doc = PARSE_OK("{\"Amount\":\"1\",\"amount\":\"2\","
                           "\"\\u00e9\":\"e-acute\",\"amount \":\"3\"}");

    CHECK_STR(bind_at(doc, "/amount", NULL), "2");
    CHECK_STR(bind_at(doc, "/Amount", NULL), "1");
    CHECK_STR(bind_at(doc, "/amount ", NULL), "3");
    CHECK_STR(bind_at(doc, "/\xc3\xa9", NULL), "e-acute");
    CHECK(k2_json_resolve(doc, "/AMOUNT") == NULL);
    CHECK(k2_json_resolve(doc, "/e\xcc\x81") == NULL);       /* NFD: other bytes */
    json_decref(doc);
}

static void test_json_resolve_long_keys(void)
{
    /* Keys longer than the resolver's stack buffer (128 bytes). */
    char body[700], pointer[1400];
    char key[300];
    json_t *doc;
    int n;

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    key[150] = '/';                                         /* escaped below */
    n = snprintf(body, sizeof(body), "{\"%s\":{\"%s\":\"found\"}}", key, key);
    doc = parse_ok_(__FILE__, __LINE__, body, (size_t)n);
    key[150] = '\0';
    snprintf(pointer, sizeof(pointer), "/%s~1%s/%s~1%s", key, key + 151,
             key, key + 151);
    CHECK_STR(bind_at(doc, pointer, NULL), "found");
    pointer[strlen(pointer) - 1] = 'x';
    CHECK(k2_json_resolve(doc, pointer) == NULL);
    json_decref(doc);
}

/* ---- binding ---------------------------------------------------------- */

static void test_json_bind_string_is_its_value_exactly(void)
{
    CHECK_BINDS("\"100.0\"", "100.0");                      /* K2's amounts */
    CHECK_BINDS("\"0100.50\"", "0100.50");
    CHECK_BINDS("\"1e3\"", "1e3");
    CHECK_BINDS("\"\"", "");
    CHECK_BINDS("\"OJM6Q1W84K\"", "OJM6Q1W84K");
    CHECK_BINDS("\" spaced \"", " spaced ");
    /* escapes decoded: the value, not the JSON text */
    CHECK_BINDS("\"a\\u00e9\\n\\t\\\"\\\\\\/\"", "a\xc3\xa9\n\t\"\\/");
    CHECK_BINDS("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    CHECK_BINDS("\"\xe2\x82\xac 5\"", "\xe2\x82\xac 5");
}

static void test_json_bind_integer_is_its_exact_text(void)
{
    CHECK_BINDS("780", "780");
    CHECK_BINDS("0", "0");
    CHECK_BINDS("-5", "-5");
    CHECK_BINDS("-0", "0");                     /* Jansson keeps no "-0" integer */
    CHECK_BINDS("9007199254740993", "9007199254740993");     /* 2^53 + 1 */
    CHECK_BINDS("9223372036854775807", "9223372036854775807");
    CHECK_BINDS("-9223372036854775808", "-9223372036854775808");
}

static void test_json_bind_real_as_javascript_writes_it(void)
{
    /* node -e 'for (const x of [100.0, 1e2, 0.1, 100.5, 1e21, 1e20, 1.5e300,
     *   -0.0, 0.30000000000000004, 5e-324, 1e-7, 1.5e-7, 0.000001, 2.5e-5,
     *   1500.50, 123456789012345678.0, -1.7976931348623157e308])
     *   console.log(String(x))' */
    CHECK_BINDS("100.0", "100");
    CHECK_BINDS("1e2", "100");
    CHECK_BINDS("1E2", "100");
    CHECK_BINDS("0.1", "0.1");
    CHECK_BINDS("100.5", "100.5");
    CHECK_BINDS("1e21", "1e+21");
    CHECK_BINDS("1e20", "100000000000000000000");
    CHECK_BINDS("1.5e300", "1.5e+300");
    CHECK_BINDS("-0.0", "0");
    CHECK_BINDS("0.30000000000000004", "0.30000000000000004");
    CHECK_BINDS("5e-324", "5e-324");
    CHECK_BINDS("1e-7", "1e-7");
    CHECK_BINDS("1.5e-7", "1.5e-7");
    CHECK_BINDS("0.000001", "0.000001");
    CHECK_BINDS("2.5e-5", "0.000025");
    CHECK_BINDS("1500.50", "1500.5");
    CHECK_BINDS("123456789012345678.0", "123456789012345680");
    CHECK_BINDS("-1.7976931348623157e308", "-1.7976931348623157e+308");
    CHECK_BINDS("1e-400", "0");                 /* below a double: 0 */
}

static void test_json_bind_true_false_null_absent(void)
{
    json_t *doc = PARSE_OK("{\"t\":true,\"f\":false,\"n\":null}");
    size_t len = 99;

    CHECK_STR(bind_at(doc, "/t", NULL), "true");
    CHECK_STR(bind_at(doc, "/f", NULL), "false");
    CHECK_STR(bind_at(doc, "/n", &len), NULL);
    CHECK_INT(len, 0);
    CHECK_STR(bind_at(doc, "/absent", NULL), NULL);
    CHECK_STR(bind_at(doc, "/n/deeper", NULL), NULL);
    json_decref(doc);
}

static void test_json_bind_compound_is_compact_json_in_order(void)
{
    json_t *doc = PARSE_OK("{ \"o\" : { \"z\" : 1 , \"a\" : [ 1 , 2 , "
                           "{ \"c\" : null } ] , \"m\" : \"x\" } ,"
                           " \"e\" : { } , \"l\" : [ ] ,"
                           " \"u\" : { \"n\" : \"\xc3\xa9/\\u0001\" } }");

    CHECK_STR(bind_at(doc, "/o", NULL),
              "{\"z\":1,\"a\":[1,2,{\"c\":null}],\"m\":\"x\"}");
    CHECK_STR(bind_at(doc, "/o/a", NULL), "[1,2,{\"c\":null}]");
    CHECK_STR(bind_at(doc, "/e", NULL), "{}");
    CHECK_STR(bind_at(doc, "/l", NULL), "[]");
    /* non-ASCII as is, '/' unescaped, control characters escaped */
    CHECK_STR(bind_at(doc, "/u", NULL), "{\"n\":\"\xc3\xa9/\\u0001\"}");
    json_decref(doc);
}

static void test_json_bind_reals_inside_a_compound_have_17_digits(void)
{
    /* Jansson's writer, as documented in k2_json.h: not the top-level rule */
    json_t *doc = PARSE_OK("{\"a\":[0.1,100.0,1e2]}");

    CHECK_STR(bind_at(doc, "/a", NULL), "[0.10000000000000001,100.0,100.0]");
    CHECK_STR(bind_at(doc, "/a/0", NULL), "0.1");
    json_decref(doc);
}

static void test_json_bind_whole_document_with_empty_pointer(void)
{
    json_t *doc = PARSE_OK("{ \"b\": 2,\n \"a\": \"1\" }");

    CHECK_STR(bind_at(doc, "", NULL), "{\"b\":2,\"a\":\"1\"}");
    json_decref(doc);
}

static void test_json_bind_alloc_failure_is_minus_one(void)
{
    json_t *doc = PARSE_OK("{\"n\":5,\"r\":1.5,\"o\":{\"a\":1},\"s\":\"x\"}");
    const char *text = "unset";
    size_t len = 7;

    CHECK_INT(k2_json_bind(k2_json_resolve(doc, "/n"), alloc_none, NULL,
                           &text, &len), -1);
    CHECK_INT(k2_json_bind(k2_json_resolve(doc, "/r"), alloc_none, NULL,
                           &text, &len), -1);
    CHECK_INT(k2_json_bind(k2_json_resolve(doc, "/o"), alloc_none, NULL,
                           &text, &len), -1);
    /* a string or a literal needs no memory */
    CHECK_INT(k2_json_bind(k2_json_resolve(doc, "/s"), alloc_none, NULL,
                           &text, &len), 0);
    CHECK_STR(text, "x");
    json_decref(doc);
}

static void test_json_number_text_refuses_non_numbers(void)
{
    char buf[K2_JSON_NUMBER_SIZE];
    json_t *s = json_string("5");

    CHECK_INT(k2_json_number_text(s, buf), 0);
    CHECK_INT(k2_json_number_text(json_true(), buf), 0);
    CHECK_INT(k2_json_number_text(NULL, buf), 0);
    json_decref(s);
}

static void test_json_bind_one_megabyte_string_exactly(void)
{
    size_t n = 1024 * 1024, len = 0, i;
    char *body = test_alloc(n + 9);
    k2_json_error_e err;
    json_t *doc;
    const char *text;

    memcpy(body, "{\"v\":\"", 6);
    for (i = 0; i < n; i++) {
        body[6 + i] = (char)('a' + i % 26);
    }
    memcpy(body + 6 + n, "\"}", 2);
    doc = k2_json_parse(body, n + 8, &err, NULL, 0);
    CHECK(doc != NULL);
    text = bind_at(doc, "/v", &len);
    CHECK_INT(len, n);
    CHECK(text && memcmp(text, body + 6, n) == 0);
    json_decref(doc);
}

/* ---- body refusals ---------------------------------------------------- */

static void test_json_parse_accepts_an_object_with_trailing_whitespace(void)
{
    json_t *doc;

    json_decref(PARSE_OK("{}"));
    json_decref(PARSE_OK(" \t\r\n{\"a\":1} \t\r\n"));
    doc = PARSE_OK("{\"topic\":\"x\"}\n");
    CHECK_STR(k2_json_topic(doc), "x");
    json_decref(doc);
}

static void test_json_parse_refuses_duplicate_keys(void)
{
    REFUSED("{\"a\":1,\"a\":2}", K2_JSON_DUPLICATE_KEY);
    REFUSED("{\"a\":1,\"a\":1}", K2_JSON_DUPLICATE_KEY);          /* same value */
    REFUSED("{\"e\":{\"amount\":\"1\",\"amount\":\"100\"}}",
            K2_JSON_DUPLICATE_KEY);
    REFUSED("{\"a\":1,\"\\u0061\":2}", K2_JSON_DUPLICATE_KEY);     /* escaped */
    REFUSED("{\"l\":[{\"k\":1,\"k\":2}]}", K2_JSON_DUPLICATE_KEY);
    /* the same key in two objects is no duplicate */
    json_decref(PARSE_OK("{\"a\":{\"k\":1},\"b\":{\"k\":1}}"));
    /* keys are compared as bytes: "a" and "A" differ */
    json_decref(PARSE_OK("{\"a\":1,\"A\":2}"));
}

static void test_json_parse_refuses_what_is_not_an_object(void)
{
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err;

    REFUSED("[]", K2_JSON_NOT_OBJECT);
    REFUSED("[{\"topic\":\"x\"}]", K2_JSON_NOT_OBJECT);
    REFUSED("\"{}\"", K2_JSON_NOT_OBJECT);
    REFUSED("5", K2_JSON_NOT_OBJECT);
    REFUSED("1.5", K2_JSON_NOT_OBJECT);
    REFUSED("true", K2_JSON_NOT_OBJECT);
    REFUSED("null", K2_JSON_NOT_OBJECT);
    CHECK(parse_len("[1]", 3, &err, reason) == NULL);
    CHECK_STR(reason, "the body is not a JSON object: it is an array");
}

static void test_json_parse_refuses_empty_and_blank(void)
{
    REFUSED("", K2_JSON_EMPTY);
    REFUSED(" ", K2_JSON_SYNTAX);
    REFUSED("\r\n", K2_JSON_SYNTAX);
}

static void test_json_parse_refuses_invalid_utf8_with_its_byte(void)
{
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err;

    REFUSED("{\"a\":\"\xc0\xaf\"}", K2_JSON_BAD_UTF8);             /* overlong */
    REFUSED("{\"a\":\"\xe0\x80\xaf\"}", K2_JSON_BAD_UTF8);
    REFUSED("{\"a\":\"\xed\xa0\x80\"}", K2_JSON_BAD_UTF8);         /* surrogate */
    REFUSED("{\"a\":\"\xf4\x90\x80\x80\"}", K2_JSON_BAD_UTF8);     /* > U+10FFFF */
    REFUSED("{\"a\":\"\xf5\x80\x80\x80\"}", K2_JSON_BAD_UTF8);
    REFUSED("{\"a\":\"\xff\"}", K2_JSON_BAD_UTF8);
    REFUSED("{\"a\":\"\x80\"}", K2_JSON_BAD_UTF8);                 /* lone continuation */
    REFUSED("{\"a\":\"\xc3\"}", K2_JSON_BAD_UTF8);                 /* truncated */
    REFUSED("{\"\xe9\":1}", K2_JSON_BAD_UTF8);                     /* Latin-1 key */
    REFUSED("{\"a\":1}\xc3", K2_JSON_BAD_UTF8);                    /* at the end */
    CHECK(parse_len("{\"ab\":\"\xc3\xa9\xff\"}", 12, &err, reason) == NULL);
    CHECK_STR(reason, "the body is not valid UTF-8 (byte 9)");
    /* the valid neighbours */
    json_decref(PARSE_OK("{\"a\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"
                         "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}"));
}

static void test_json_parse_refuses_nul_escaped_or_raw(void)
{
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err;

    REFUSED("{\"a\":\"x\\u0000y\"}", K2_JSON_NUL);
    REFUSED("{\"a\\u0000\":1}", K2_JSON_NUL);
    REFUSED("{\"a\":\"\\u0000\"}", K2_JSON_NUL);
    CHECK_REFUSED("{\"a\":\"x\0y\"}", 11, K2_JSON_NUL);
    CHECK_REFUSED("{}\0", 3, K2_JSON_NUL);
    CHECK_REFUSED("\0{}", 3, K2_JSON_NUL);
    CHECK(parse_len("{\"a\":\"x\0\"}", 10, &err, reason) == NULL);
    CHECK_STR(reason, "the body contains a NUL character (byte 7)");
    /* \u0001 and friends are characters like any other */
    json_decref(PARSE_OK("{\"a\":\"\\u0001\\u001f\"}"));
}

static void test_json_parse_refuses_trailing_data(void)
{
    REFUSED("{} x", K2_JSON_TRAILING);
    REFUSED("{}{}", K2_JSON_TRAILING);
    REFUSED("{\"a\":1},", K2_JSON_TRAILING);
    REFUSED("{\"a\":1}\n{\"a\":2}", K2_JSON_TRAILING);
    REFUSED("{}]", K2_JSON_TRAILING);
    REFUSED("{} //", K2_JSON_TRAILING);
}

static void test_json_parse_refuses_non_json(void)
{
    REFUSED("{'a':1}", K2_JSON_SYNTAX);
    REFUSED("{a:1}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":1,}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":NaN}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":Infinity}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":01}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":.5}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":+1}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":0x10}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":\"\t\"}", K2_JSON_SYNTAX);            /* raw control char */
    REFUSED("{\"a\":\"\n\"}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":\"\\x41\"}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":\"\\ud800\"}", K2_JSON_SYNTAX);       /* lone surrogate */
    REFUSED("{\"a\":\"\\udc00\\ud800\"}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":1 /* c */}", K2_JSON_SYNTAX);
    REFUSED("{\"a\":1", K2_JSON_SYNTAX);
    REFUSED("{\"a\":\"1}", K2_JSON_SYNTAX);
    REFUSED("\xef\xbb\xbf{}", K2_JSON_SYNTAX);            /* a byte-order mark */
    REFUSED("a=1&b=2", K2_JSON_SYNTAX);                   /* a form */
}

/* {"a":[[...]]} nesting depth levels deep (the object is level 1). */
static size_t nested(char *body, size_t depth)
{
    size_t i, n = 0;

    memcpy(body, "{\"a\":", 5);
    n = 5;
    for (i = 1; i < depth; i++) {
        body[n++] = '[';
    }
    for (i = 1; i < depth; i++) {
        body[n++] = ']';
    }
    body[n++] = '}';
    return n;
}

static void test_json_parse_depth_32_is_accepted_33_refused(void)
{
    char body[100];
    size_t n = nested(body, 32);

    CHECK_INT(k2_json_depth(body, n), 32);
    json_decref(parse_ok_(__FILE__, __LINE__, body, n));
    n = nested(body, 33);
    CHECK_INT(k2_json_depth(body, n), 33);
    CHECK_REFUSED(body, n, K2_JSON_TOO_DEEP);
}

static void test_json_parse_deep_nesting_refused_before_jansson(void)
{
    /* 1 MB of '[': Jansson would recurse 2048 deep and give up; this never
     * reaches it. */
    size_t n = 1024 * 1024;
    char *body = test_alloc(n);

    memset(body, '[', n);
    CHECK_REFUSED(body, n, K2_JSON_TOO_DEEP);
    body[0] = '{';
    memset(body + 1, '{', n - 1);
    CHECK_REFUSED(body, n, K2_JSON_TOO_DEEP);
}

static void test_json_depth_ignores_brackets_in_strings(void)
{
    char body[300];
    int n = snprintf(body, sizeof(body), "{\"a\":\"%s\",\"b\":\"\\\"[[[\"}",
                     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    json_t *doc = parse_ok_(__FILE__, __LINE__, body, (size_t)n);

    CHECK_INT(k2_json_depth(body, (size_t)n), 1);
    CHECK_INT(k2_json_depth("{\"k\":[{}]}", 10), 3);
    CHECK_INT(k2_json_depth("", 0), 0);
    json_decref(doc);
}

static void test_json_parse_refuses_huge_numbers(void)
{
    char digits[1100];

    REFUSED("{\"a\":9223372036854775808}", K2_JSON_BIG_NUMBER);
    REFUSED("{\"a\":-9223372036854775809}", K2_JSON_BIG_NUMBER);
    REFUSED("{\"a\":99999999999999999999}", K2_JSON_BIG_NUMBER);
    REFUSED("{\"a\":1e400}", K2_JSON_BIG_NUMBER);
    REFUSED("{\"a\":-1e309}", K2_JSON_BIG_NUMBER);
    memcpy(digits, "{\"a\":", 5);
    memset(digits + 5, '7', 1000);
    digits[1005] = '}';
    CHECK_REFUSED(digits, 1006, K2_JSON_BIG_NUMBER);
    /* as a string, any amount is just text */
    json_decref(PARSE_OK("{\"a\":\"99999999999999999999999.99\"}"));
}

static void test_json_parse_reason_is_bounded_and_printable(void)
{
    /* A huge invalid token: Jansson's "near '...'" would echo it */
    size_t n = 100000;
    char *body = test_alloc(n);
    char reason[K2_JSON_REASON_SIZE];
    k2_json_error_e err;

    memcpy(body, "{\"a\":", 5);
    memset(body + 5, 'x', n - 5);
    CHECK(k2_json_parse(body, n, &err, reason, sizeof(reason)) == NULL);
    CHECK_INT(err, K2_JSON_SYNTAX);
    CHECK(strlen(reason) < 120);
    CHECK(strstr(reason, "line 1, column") != NULL);
    /* a non-ASCII token shows as '?' */
    CHECK(parse_len("{\"a\":\xc3\xa9}", 8, &err, reason) == NULL);
    CHECK_INT(err, K2_JSON_SYNTAX);
    CHECK(strchr(reason, '?') != NULL);
    /* a reason buffer too small is cut, still NUL-terminated */
    CHECK(k2_json_parse(body, n, &err, reason, 10) == NULL);
    CHECK_INT(strlen(reason), 9);
    /* no reason buffer at all */
    CHECK(k2_json_parse(body, n, &err, NULL, 0) == NULL);
    CHECK_INT(err, K2_JSON_SYNTAX);
}

static void test_json_parse_is_bounded_by_len(void)
{
    /* the bytes past len are not the body's */
    static const char longer[] = "{\"a\":1} garbage";
    char *copy = heap_copy(longer, sizeof(longer) - 1);
    k2_json_error_e err;
    json_t *doc = k2_json_parse(copy, 7, &err, NULL, 0);

    CHECK(doc != NULL);
    CHECK_INT(err, K2_JSON_OK);
    json_decref(doc);
    CHECK(k2_json_parse(copy, 6, &err, NULL, 0) == NULL);
    CHECK_INT(err, K2_JSON_SYNTAX);
}

static void test_json_error_texts_are_fixed(void)
{
    CHECK_STR(k2_json_error_text(K2_JSON_DUPLICATE_KEY),
              "a JSON object has the same key twice");
    CHECK_STR(k2_json_error_text(K2_JSON_SYNTAX), "the body is not valid JSON");
    CHECK_STR(k2_json_error_text(K2_JSON_TOO_DEEP),
              "the JSON nests more than 32 levels deep");
    CHECK_STR(k2_json_error_text((k2_json_error_e)99), "?");
}

/* ---- kinds, topics, audit fields, per event kind ---------------------- */

typedef struct {
    const char *file;           /* under tests/fixtures/k2connect, or NULL */
    const char *body;           /* a body built here, when file is NULL */
    k2_json_kind_e kind;
    const char *topic;
    const char *id, *reference, *amount, *currency;
} audit_case_t;

static void check_audit_(const char *file, int line, const audit_case_t *c)
{
    k2_json_audit_t a;
    json_t *doc;
    k2_json_error_e err;
    const char *name = c->file ? c->file : c->topic;

    if (c->file) {
        doc = parse_fixture(c->file);
    }
    else {
        doc = parse_len(c->body, strlen(c->body), &err, NULL);
    }
    if (!doc) {
        fail_at(file, line, "%s: not parsed", name);
        return;
    }
    if (k2_json_audit(doc, alloc_test, NULL, &a) != 0) {
        fail_at(file, line, "%s: k2_json_audit failed", name);
    }
    else {
        if (a.kind != c->kind || k2_json_kind(doc) != c->kind) {
            fail_at(file, line, "%s: kind %s, expected %s", name,
                    k2_json_kind_name(a.kind), k2_json_kind_name(c->kind));
        }
        check_str_(file, line, "topic", a.topic, c->topic);
        check_str_(file, line, "k2_json_topic", k2_json_topic(doc), c->topic);
        check_str_(file, line, "K2_TRANSACTION_ID",
                   a.value[K2_JSON_AUDIT_TRANSACTION_ID], c->id);
        check_str_(file, line, "K2_REFERENCE",
                   a.value[K2_JSON_AUDIT_REFERENCE], c->reference);
        check_str_(file, line, "K2_AMOUNT", a.value[K2_JSON_AUDIT_AMOUNT],
                   c->amount);
        check_str_(file, line, "K2_CURRENCY", a.value[K2_JSON_AUDIT_CURRENCY],
                   c->currency);
    }
    json_decref(doc);
}

#define CHECK_AUDIT(...) \
    do { \
        static const audit_case_t c_ = { __VA_ARGS__ }; \
        check_audit_(__FILE__, __LINE__, &c_); \
    } while (0)

static void test_json_audit_buygoods_transaction_received(void)
{
    CHECK_AUDIT("php/buygoodsreceived.json", NULL, K2_JSON_KIND_EVENT,
                "buygoods_transaction_received",
                "2133dbfb-24b9-40fc-ae57-2d7559785760", "OJM6Q1W84K", "100.0",
                "KES");
    CHECK_AUDIT("node-stringified/buygoodsreceivedhook.json", NULL,
                K2_JSON_KIND_EVENT, "buygoods_transaction_received",
                "2133dbfb-24b9-40fc-ae57-2d7559785760", "OJM6Q1W84K", "100.0",
                "KES");
}

static void test_json_audit_buygoods_transaction_reversed(void)
{
    CHECK_AUDIT("php/buygoodsreversed.json", NULL, K2_JSON_KIND_EVENT,
                "buygoods_transaction_reversed",
                "98adf21e-5721-476a-8643-609b4a6513a2", "OJM6Q1W84K", "233",
                "KES");
}

static void test_json_audit_b2b_transaction_received(void)
{
    CHECK_AUDIT("php/b2breceived.json", NULL, K2_JSON_KIND_EVENT,
                "b2b_transaction_received",
                "bcfb7175-bc7f-46e8-9727-eb46e6f88ef1", "OJQ8USH5XK", "313",
                "KES");
}

static void test_json_audit_b2b_transaction_reversed(void)
{
    /* No SDK publishes one: the fields of the Ruby SDK's
     * B2bTransactionReversed (K2CommonEvents plus till_number,
     * sending_till), with b2breceived.json's values. */
    CHECK_AUDIT(NULL,
                "{\"topic\":\"b2b_transaction_reversed\","
                "\"id\":\"7c4bd47a-2a3f-4f4b-9e1c-0a7e3c5b1d21\","
                "\"created_at\":\"2020-10-29T09:18:45+03:00\","
                "\"event\":{\"type\":\"External Till to Till Transaction\","
                "\"resource\":{\"id\":\"fbygwu7175-bc7f-46e8-9727-f88edyy\","
                "\"amount\":\"313\",\"status\":\"Reversed\","
                "\"system\":\"Lipa Na Mpesa\",\"currency\":\"KES\","
                "\"reference\":\"OJQ8USH5XK\",\"till_number\":\"461863\","
                "\"sending_till\":\"890642\","
                "\"origination_time\":\"2020-10-29T08:18:45+03:00\"}},"
                "\"_links\":{}}",
                K2_JSON_KIND_EVENT, "b2b_transaction_reversed",
                "7c4bd47a-2a3f-4f4b-9e1c-0a7e3c5b1d21", "OJQ8USH5XK", "313",
                "KES");
}

static void test_json_audit_m2m_transaction_received_has_no_reference(void)
{
    CHECK_AUDIT("php/m2mreceived.json", NULL, K2_JSON_KIND_EVENT,
                "m2m_transaction_received",
                "5fbbcfc3-5b06-485e-929c-066741f4b14d", NULL, "456", "KES");
}

static void test_json_audit_settlement_transfer_completed(void)
{
    CHECK_AUDIT("php/transfercompleted.json", NULL, K2_JSON_KIND_EVENT,
                "settlement_transfer_completed",
                "052b7b2a-745b-4ca1-866b-b92d4a1418c3", NULL, "49452.0", "KES");
}

static void test_json_audit_customer_created_has_no_payment(void)
{
    CHECK_AUDIT("php/customercreated.json", NULL, K2_JSON_KIND_EVENT,
                "customer_created", "f720ecf5-ff98-4ca8-a3f2-d70a65c4a02c",
                NULL, NULL, NULL);
    CHECK_AUDIT("php/customercreated-115ee92.json", NULL, K2_JSON_KIND_EVENT,
                "customer_created", "cac95329-9fa5-42f1-a4fc-c08af7b868fb",
                NULL, NULL, NULL);
}

static void test_json_audit_card_events(void)
{
    /* No SDK publishes one: the fields of the Ruby SDK's
     * CardTransactionReceived/Reversed/Voided (K2CommonEvents plus
     * till_number, customer_cc_number, settled). */
#define CARD_EVENT(topic, status) \
    "{\"topic\":\"" topic "\",\"id\":\"0c9a6f1e-5d8b-4e47-a1c2-3f6e2b9d7a10\"," \
    "\"created_at\":\"2024-05-02T10:00:00+03:00\",\"event\":{\"type\":" \
    "\"Card Transaction\",\"resource\":{\"id\":\"card-tx-1\"," \
    "\"amount\":\"2500.00\",\"status\":\"" status "\",\"currency\":\"KES\"," \
    "\"reference\":\"CARD123456\",\"till_number\":\"K000000\"," \
    "\"customer_cc_number\":\"4111********1111\",\"settled\":false," \
    "\"origination_time\":\"2024-05-02T09:59:58+03:00\"}},\"_links\":{}}"
    CHECK_AUDIT(NULL, CARD_EVENT("card_transaction_received", "Received"),
                K2_JSON_KIND_EVENT, "card_transaction_received",
                "0c9a6f1e-5d8b-4e47-a1c2-3f6e2b9d7a10", "CARD123456",
                "2500.00", "KES");
    CHECK_AUDIT(NULL, CARD_EVENT("card_transaction_reversed", "Reversed"),
                K2_JSON_KIND_EVENT, "card_transaction_reversed",
                "0c9a6f1e-5d8b-4e47-a1c2-3f6e2b9d7a10", "CARD123456",
                "2500.00", "KES");
    CHECK_AUDIT(NULL, CARD_EVENT("card_transaction_voided", "Voided"),
                K2_JSON_KIND_EVENT, "card_transaction_voided",
                "0c9a6f1e-5d8b-4e47-a1c2-3f6e2b9d7a10", "CARD123456",
                "2500.00", "KES");
#undef CARD_EVENT
}

static void test_json_audit_stk_incoming_payment_results(void)
{
    CHECK_AUDIT("php/stksuccessfulresult.json", NULL, K2_JSON_KIND_RESULT,
                "incoming_payment", "a652f86f-f2aa-4d70-baa2-ccfe4b78f4fc",
                "OJJ1MPU40Z", "100.0", "KES");
    /* a failed STK push: "resource": null */
    CHECK_AUDIT("php/stkunsuccessfulresult.json", NULL, K2_JSON_KIND_RESULT,
                "incoming_payment", "09bc45fc-3b97-4c44-b860-42a7bcbd7480",
                NULL, NULL, NULL);
}

static void test_json_audit_outgoing_results(void)
{
    /* the amount of a payment result is a JSON number: its text */
    CHECK_AUDIT("node-stringified/payresult.json", NULL, K2_JSON_KIND_RESULT,
                "payment", "c6fda139-2480-4a93-95ed-f72c66b92364", NULL, "780",
                "KES");
    CHECK_AUDIT("node-stringified/transferresult.json", NULL,
                K2_JSON_KIND_RESULT, "settlement_transfer",
                "01aece24-e596-4f5c-9ace-9eb1a0939dda", NULL, NULL, "KES");
}

static void test_json_audit_daraja_payloads(void)
{
    /* enable_daraja_payload: no topic, no id; TransID is the reference */
    CHECK_AUDIT("node-stringified/darajabuygoods.json", NULL,
                K2_JSON_KIND_DARAJA, "", NULL, "OJM6Q1W84K", "100.0", NULL);
    CHECK_AUDIT("node-stringified/darajab2b.json", NULL, K2_JSON_KIND_DARAJA,
                "", NULL, "OJQ8USH5XK", "313", NULL);
}

static void test_json_audit_other_bodies(void)
{
    CHECK_AUDIT(NULL, "{}", K2_JSON_KIND_OTHER, "", NULL, NULL, NULL, NULL);
    CHECK_AUDIT(NULL, "{\"id\":\"x1\",\"amount\":\"5\"}", K2_JSON_KIND_OTHER,
                "", "x1", NULL, NULL, NULL);
}

static void test_json_topic_is_topic_then_data_type_then_empty(void)
{
    /* /topic wins over /data/type; only strings count */
    CHECK_AUDIT(NULL, "{\"topic\":\"t\",\"data\":{\"type\":\"d\"}}",
                K2_JSON_KIND_EVENT, "t", NULL, NULL, NULL, NULL);
    CHECK_AUDIT(NULL, "{\"topic\":5,\"data\":{\"type\":\"d\",\"id\":\"i\"}}",
                K2_JSON_KIND_RESULT, "d", "i", NULL, NULL, NULL);
    CHECK_AUDIT(NULL, "{\"topic\":null,\"data\":{\"type\":[\"d\"]}}",
                K2_JSON_KIND_OTHER, "", NULL, NULL, NULL, NULL);
    CHECK_AUDIT(NULL, "{\"topic\":\"\"}", K2_JSON_KIND_EVENT, "", NULL, NULL,
                NULL, NULL);
    CHECK_AUDIT(NULL, "{\"Topic\":\"x\",\"data\":\"y\"}", K2_JSON_KIND_OTHER,
                "", NULL, NULL, NULL, NULL);
}

static void test_json_event_id_is_id_then_data_id(void)
{
    CHECK_AUDIT(NULL, "{\"topic\":\"t\",\"id\":\"top\",\"data\":{\"id\":\"d\"}}",
                K2_JSON_KIND_EVENT, "t", "top", NULL, NULL, NULL);
    CHECK_AUDIT(NULL, "{\"topic\":\"t\",\"id\":null,\"data\":{\"id\":\"d\"}}",
                K2_JSON_KIND_EVENT, "t", "d", NULL, NULL, NULL);
    /* a number binds its text, as any FIELD would */
    CHECK_AUDIT(NULL, "{\"topic\":\"t\",\"id\":42}", K2_JSON_KIND_EVENT, "t",
                "42", NULL, NULL, NULL);
}

static void test_json_audit_values_follow_the_binding_rule(void)
{
    /* K2_AMOUNT is what a FIELD /event/resource/amount binds */
    CHECK_AUDIT(NULL, "{\"topic\":\"t\",\"event\":{\"resource\":{"
                "\"amount\":1500.50,\"reference\":true,\"currency\":{\"c\":1}}}}",
                K2_JSON_KIND_EVENT, "t", NULL, "true", "1500.5", "{\"c\":1}");
}

static void test_json_audit_pointers_by_kind(void)
{
    json_t *ev = PARSE_OK("{\"topic\":\"x\",\"id\":\"1\"}");
    json_t *stk = PARSE_OK("{\"data\":{\"type\":\"incoming_payment\"}}");
    json_t *pay = PARSE_OK("{\"data\":{\"type\":\"payment\",\"id\":\"2\"}}");
    json_t *dj = PARSE_OK("{\"TransID\":\"OJM6Q1W84K\"}");

    CHECK_STR(k2_json_audit_pointer(ev, K2_JSON_AUDIT_TRANSACTION_ID), "/id");
    CHECK_STR(k2_json_audit_pointer(ev, K2_JSON_AUDIT_REFERENCE),
              "/event/resource/reference");
    CHECK_STR(k2_json_audit_pointer(ev, K2_JSON_AUDIT_AMOUNT),
              "/event/resource/amount");
    CHECK_STR(k2_json_audit_pointer(ev, K2_JSON_AUDIT_CURRENCY),
              "/event/resource/currency");
    CHECK_STR(k2_json_audit_pointer(stk, K2_JSON_AUDIT_TRANSACTION_ID),
              "/data/id");
    CHECK_STR(k2_json_audit_pointer(stk, K2_JSON_AUDIT_REFERENCE),
              "/data/attributes/event/resource/reference");
    CHECK_STR(k2_json_audit_pointer(stk, K2_JSON_AUDIT_AMOUNT),
              "/data/attributes/event/resource/amount");
    CHECK_STR(k2_json_audit_pointer(pay, K2_JSON_AUDIT_REFERENCE), NULL);
    CHECK_STR(k2_json_audit_pointer(pay, K2_JSON_AUDIT_AMOUNT),
              "/data/attributes/amount/value");
    CHECK_STR(k2_json_audit_pointer(dj, K2_JSON_AUDIT_REFERENCE), "/TransID");
    CHECK_STR(k2_json_audit_pointer(dj, K2_JSON_AUDIT_AMOUNT), "/TransAmount");
    CHECK_STR(k2_json_audit_pointer(dj, K2_JSON_AUDIT_CURRENCY), NULL);
    CHECK_STR(k2_json_audit_pointer(ev, K2_JSON_AUDIT_COUNT), NULL);
    CHECK_STR(k2_json_kind_name(K2_JSON_KIND_DARAJA), "daraja");
    json_decref(ev);
    json_decref(stk);
    json_decref(pay);
    json_decref(dj);
}

static void test_json_audit_alloc_failure_is_minus_one(void)
{
    json_t *doc = PARSE_OK("{\"topic\":\"t\",\"id\":7}");
    k2_json_audit_t a;

    CHECK_INT(k2_json_audit(doc, alloc_none, NULL, &a), -1);
    json_decref(doc);
}

static void test_json_every_published_fixture_parses(void)
{
    static const char *const files[] = {
        "php/b2breceived.json", "php/buygoodsreceived.json",
        "php/buygoodsreversed.json", "php/customercreated.json",
        "php/customercreated-043e3a2.json", "php/customercreated-115ee92.json",
        "php/m2mreceived.json", "php/stksuccessfulresult.json",
        "php/stkunsuccessfulresult.json", "php/transfercompleted.json",
        "node-stringified/b2breceived.json",
        "node-stringified/buygoodsreversedhook.json",
        "node-stringified/customercreatedhook.json",
        "node-stringified/m2mreceived.json",
        "node-stringified/pollingresult.json",
        "node-stringified/stksuccessresult.json",
        "node-stringified/stkunsuccessfulresult.json",
        "node-stringified/transfercompleted.json",
        "node-stringified/payresult.json",
        "node-stringified/transferresult.json"
    };
    size_t i, len;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        json_t *doc = parse_fixture(files[i]);
        char *body = fixture(files[i], &len);

        CHECK(doc != NULL);
        CHECK(body && k2_json_depth(body, len) <= 7);   /* K2 nests 7 at most */
        json_decref(doc);
    }
}

/* ---- the K2 Connect signature (HMAC-SHA256, hex, in a header) ---------- */

/* k2_connect_signature_valid over an exact-size, unterminated body. */
static int connect_valid(const char *body, size_t len, const char *key,
                         size_t keylen, const char *header)
{
    return k2_connect_signature_valid(heap_copy(body, len), len,
                                      (const unsigned char *)heap_copy(key, keylen),
                                      keylen, heap_str(header));
}

#define CONNECT_VALID(body, key, header) \
    connect_valid(body, sizeof(body) - 1, key, sizeof(key) - 1, header)

/* RFC 4231, test case 2:
 * printf '%s' 'what do ya want for nothing?' | openssl dgst -sha256 -hmac 'Jefe' */
#define RFC4231_2 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

static void test_json_signature_rfc4231_case_2(void)
{
    CHECK_INT(CONNECT_VALID("what do ya want for nothing?", "Jefe", RFC4231_2), 1);
}

static void test_json_signature_rfc4231_case_6_long_key(void)
{
    /* a 131-byte key, longer than SHA-256's block:
     * printf '%s' 'Test Using Larger Than Block-Size Key - Hash Key First' \
     *   | openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf 'aa%.0s' $(seq 131)) */
    static const char data[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    char key[131];

    memset(key, 0xAA, sizeof(key));
    CHECK_INT(connect_valid(data, sizeof(data) - 1, key, sizeof(key),
                            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
              1);
}

static void test_json_signature_accepts_upper_and_mixed_case_hex(void)
{
    CHECK_INT(CONNECT_VALID("what do ya want for nothing?", "Jefe",
                            "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"),
              1);
    CHECK_INT(CONNECT_VALID("what do ya want for nothing?", "Jefe",
                            "5bDcC146bF60754e6A042426089575c75A003f089D2739839dEc58B964eC3843"),
              1);
}

static void test_json_signature_refuses_wrong_length_or_characters(void)
{
    static const char body[] = "what do ya want for nothing?";

    CHECK_INT(CONNECT_VALID(body, "Jefe", RFC4231_2 "0"), 0);
    CHECK_INT(CONNECT_VALID(body, "Jefe", RFC4231_2 " "), 0);
    CHECK_INT(CONNECT_VALID(body, "Jefe", " " RFC4231_2), 0);
    CHECK_INT(CONNECT_VALID(body, "Jefe",
                            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384"),
              0);                                               /* 63 */
    CHECK_INT(CONNECT_VALID(body, "Jefe", "0x5bdcc146bf60754e6a042426089575c75a"
                            "003f089d2739839dec58b964ec38"), 0);   /* 64 with 0x */
    CHECK_INT(CONNECT_VALID(body, "Jefe",
                            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384g"),
              0);
    CHECK_INT(CONNECT_VALID(body, "Jefe",
                            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec38 3"),
              0);
    CHECK_INT(CONNECT_VALID(body, "Jefe", ""), 0);
    CHECK_INT(CONNECT_VALID(body, "Jefe", NULL), 0);
    /* base64 of the same digest (another API's habit):
     * printf '%s' 'what do ya want for nothing?' \
     *   | openssl dgst -sha256 -hmac 'Jefe' -binary | base64 */
    CHECK_INT(CONNECT_VALID(body, "Jefe",
                            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="), 0);
}

static void test_json_signature_refuses_one_changed_digit(void)
{
    static const char body[] = "what do ya want for nothing?";
    char sig[] = RFC4231_2;
    size_t i;

    for (i = 0; i < sizeof(sig) - 1; i += 7) {
        char saved = sig[i];

        sig[i] = saved == '0' ? '1' : '0';
        CHECK_INT(CONNECT_VALID(body, "Jefe", sig), 0);
        sig[i] = saved;
    }
    CHECK_INT(CONNECT_VALID(body, "Jefe", sig), 1);
}

static void test_json_signature_refuses_other_body_or_key(void)
{
    CHECK_INT(CONNECT_VALID("what do ya want for nothing!", "Jefe", RFC4231_2), 0);
    CHECK_INT(CONNECT_VALID("what do ya want for nothing? ", "Jefe", RFC4231_2), 0);
    CHECK_INT(CONNECT_VALID("what do ya want for nothing?", "jefe", RFC4231_2), 0);
    CHECK_INT(CONNECT_VALID("what do ya want for nothing?", "Jefe\n", RFC4231_2), 0);
    CHECK_INT(k2_connect_signature_valid("what do ya want for nothing?", 28,
                                         (const unsigned char *)"", 0,
                                         RFC4231_2), 0);
}

static void test_json_signature_stops_at_len_of_body(void)
{
    static const char longer[] = "what do ya want for nothing?\n";
    char *copy = heap_copy(longer, sizeof(longer) - 1);

    CHECK_INT(k2_connect_signature_valid(copy, sizeof(longer) - 2,
                                         (const unsigned char *)"Jefe", 4,
                                         RFC4231_2), 1);
    CHECK_INT(k2_connect_signature_valid(copy, sizeof(longer) - 1,
                                         (const unsigned char *)"Jefe", 4,
                                         RFC4231_2), 0);
}

static void test_json_signature_of_an_empty_body(void)
{
    /* printf '' | openssl dgst -sha256 -hmac 'k2-api-key' */
    CHECK_INT(k2_connect_signature_valid("", 0, (const unsigned char *)"k2-api-key",
                                         10,
                                         "3dcd7b820316e65fef627adb6b6787e18c66620a394c36d80843d556b0cbe3ce"),
              1);
}

static void test_json_signature_published_php_fixture_verifies(void)
{
    /* kopokopo/k2-connect-php tests/WebhookTest.php and tests/AuthTest.php
     * (tests/fixtures/k2connect/SOURCES): the raw bytes of
     * tests/Mocks/hooks/customercreated.json, signed with the test keys.
     * openssl dgst -sha256 -hmac your_api_key php/customercreated.json */
    size_t len;
    char *body = fixture("php/customercreated.json", &len);
    static const char key1[] = "your_api_key";
    static const char key2[] = "10af7ad062a21d9c841877f87b7dec3dbe51aeb3";
    static const char sig1[] =
        "4dc26548d9a8a5ad7b1b31d56146bdaec28038bbfa4e20bf57fed39e975c9aaa";
    static const char sig2[] =
        "8893be332f0355f5ae4b74eccaacc16b8056d5419cad1ed74999e4c99108d2f2";

    CHECK(body != NULL);
    CHECK_INT(len, 506);
    CHECK_INT(connect_valid(body, len, key1, sizeof(key1) - 1, sig1), 1);
    CHECK_INT(connect_valid(body, len, key2, sizeof(key2) - 1, sig2), 1);
    /* each signature under the other key */
    CHECK_INT(connect_valid(body, len, key2, sizeof(key2) - 1, sig1), 0);
    CHECK_INT(connect_valid(body, len, key1, sizeof(key1) - 1, sig2), 0);
}

static void test_json_signature_older_php_fixture_versions_verify(void)
{
    /* two earlier versions of the same file, signed in their own time */
    size_t len;
    char *b = fixture("php/customercreated-043e3a2.json", &len);
    static const char k[] = "my_webhook_secret";

    CHECK_INT(connect_valid(b, len, k, sizeof(k) - 1,
                            "da8d7406d7fec2736c34968a1636e5345a9482048b9a6a71d6f4a0d23467f7cf"),
              1);
    b = fixture("php/customercreated-115ee92.json", &len);
    CHECK_INT(connect_valid(b, len, "10af7ad062a21d9c841877f87b7dec3dbe51aeb3", 40,
                            "b3ffb46cb9960b7a8972be1107685e5512c9675e224d8f923eee163c085ad7d0"),
              1);
}

static void test_json_signature_reserialised_fixture_fails(void)
{
    /* The same event, parsed and written compactly (as the Node and Ruby
     * SDKs hash it): its published signature no longer matches.
     * python3 -c 'import json; print(json.dumps(json.load(open(
     *   "php/customercreated.json")), separators=(",", ":")), end="")' */
    static const char compact[] =
        "{\"topic\":\"customer_created\","
        "\"id\":\"f720ecf5-ff98-4ca8-a3f2-d70a65c4a02c\","
        "\"created_at\":\"2020-10-29T08:49:02+03:00\","
        "\"event\":{\"type\":\"Customer Created\",\"resource\":{"
        "\"last_name\":\"Doe\",\"first_name\":\"Jane\",\"middle_name\":\"M\","
        "\"phone_number\":\"+254999999999\"}},\"_links\":{"
        "\"self\":\"https://sandbox.kopokopo.com/webhook_events/"
        "f720ecf5-ff98-4ca8-a3f2-d70a65c4a02c\","
        "\"resource\":\"https://sandbox.kopokopo.com/mobile_money_user/"
        "8248a689-490e-4196-930a-db5fcbe58f6c\"}}";

    CHECK_INT(CONNECT_VALID(compact, "your_api_key",
                            "4dc26548d9a8a5ad7b1b31d56146bdaec28038bbfa4e20bf57fed39e975c9aaa"),
              0);
    /* printf '%s' "$compact" | openssl dgst -sha256 -hmac your_api_key */
    CHECK_INT(CONNECT_VALID(compact, "your_api_key",
                            "4e62d7eace99ed9e6b922bdf5c7932fadfb59f3c9da2f8f2de4cdb126aaed7c2"),
              1);
}

static void test_json_signature_node_sdk_signs_the_stringified_body(void)
{
    /* kopokopo/k2-connect-node test/webhooks.js: the published signature
     * covers JSON.stringify(body) (node-stringified/), not the .js file */
    static const char key[] = "8463vr8472a2372763787b7dec3dbe49879323gg32";
    static const char sig[] =
        "9a49d83776f71c6a3917f102de69c86464d1dea8289aea77d84c04538eee61ae";
    size_t len;
    char *body = fixture("node-stringified/buygoodsreceivedhook.json", &len);

    CHECK_INT(connect_valid(body, len, key, sizeof(key) - 1, sig), 1);
    body = fixture("node/buygoodsreceivedhook.js", &len);
    CHECK_INT(connect_valid(body, len, key, sizeof(key) - 1, sig), 0);
}

static void test_json_signature_header_name(void)
{
    CHECK_STR(K2_CONNECT_SIGNATURE_HEADER, "X-KopoKopo-Signature");
    CHECK_INT(K2_CONNECT_SIGNATURE_LEN, 64);
}

UNIT_SUITE(json,
    T(test_json_pointer_rfc6901_section5_examples),
    T(test_json_pointer_rfc6901_examples_are_valid),
    T(test_json_pointer_check_accepts_k2_pointers),
    T(test_json_pointer_check_accepts_odd_but_valid),
    T(test_json_pointer_check_refuses_no_leading_slash),
    T(test_json_pointer_check_refuses_bad_tilde),
    T(test_json_pointer_check_refuses_bad_utf8_and_null),
    T(test_json_resolve_array_indices),
    T(test_json_resolve_digit_keys_of_objects_are_keys),
    T(test_json_resolve_unescapes_tilde_one_then_zero),
    T(test_json_resolve_empty_keys_and_trailing_slash),
    T(test_json_resolve_through_a_scalar_is_null),
    T(test_json_resolve_invalid_pointer_is_null),
    T(test_json_resolve_keys_are_exact_bytes),
    T(test_json_resolve_long_keys),
    T(test_json_bind_string_is_its_value_exactly),
    T(test_json_bind_integer_is_its_exact_text),
    T(test_json_bind_real_as_javascript_writes_it),
    T(test_json_bind_true_false_null_absent),
    T(test_json_bind_compound_is_compact_json_in_order),
    T(test_json_bind_reals_inside_a_compound_have_17_digits),
    T(test_json_bind_whole_document_with_empty_pointer),
    T(test_json_bind_alloc_failure_is_minus_one),
    T(test_json_number_text_refuses_non_numbers),
    T(test_json_bind_one_megabyte_string_exactly),
    T(test_json_parse_accepts_an_object_with_trailing_whitespace),
    T(test_json_parse_refuses_duplicate_keys),
    T(test_json_parse_refuses_what_is_not_an_object),
    T(test_json_parse_refuses_empty_and_blank),
    T(test_json_parse_refuses_invalid_utf8_with_its_byte),
    T(test_json_parse_refuses_nul_escaped_or_raw),
    T(test_json_parse_refuses_trailing_data),
    T(test_json_parse_refuses_non_json),
    T(test_json_parse_depth_32_is_accepted_33_refused),
    T(test_json_parse_deep_nesting_refused_before_jansson),
    T(test_json_depth_ignores_brackets_in_strings),
    T(test_json_parse_refuses_huge_numbers),
    T(test_json_parse_reason_is_bounded_and_printable),
    T(test_json_parse_is_bounded_by_len),
    T(test_json_error_texts_are_fixed),
    T(test_json_audit_buygoods_transaction_received),
    T(test_json_audit_buygoods_transaction_reversed),
    T(test_json_audit_b2b_transaction_received),
    T(test_json_audit_b2b_transaction_reversed),
    T(test_json_audit_m2m_transaction_received_has_no_reference),
    T(test_json_audit_settlement_transfer_completed),
    T(test_json_audit_customer_created_has_no_payment),
    T(test_json_audit_card_events),
    T(test_json_audit_stk_incoming_payment_results),
    T(test_json_audit_outgoing_results),
    T(test_json_audit_daraja_payloads),
    T(test_json_audit_other_bodies),
    T(test_json_topic_is_topic_then_data_type_then_empty),
    T(test_json_event_id_is_id_then_data_id),
    T(test_json_audit_values_follow_the_binding_rule),
    T(test_json_audit_pointers_by_kind),
    T(test_json_audit_alloc_failure_is_minus_one),
    T(test_json_every_published_fixture_parses),
    T(test_json_signature_rfc4231_case_2),
    T(test_json_signature_rfc4231_case_6_long_key),
    T(test_json_signature_accepts_upper_and_mixed_case_hex),
    T(test_json_signature_refuses_wrong_length_or_characters),
    T(test_json_signature_refuses_one_changed_digit),
    T(test_json_signature_refuses_other_body_or_key),
    T(test_json_signature_stops_at_len_of_body),
    T(test_json_signature_of_an_empty_body),
    T(test_json_signature_published_php_fixture_verifies),
    T(test_json_signature_older_php_fixture_versions_verify),
    T(test_json_signature_reserialised_fixture_fails),
    T(test_json_signature_node_sdk_signs_the_stringified_body),
    T(test_json_signature_header_name)
)
