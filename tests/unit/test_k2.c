/* test_k2.c: unit tests of the pure parts of mod_k2notify (k2_*.c).
 *
 *   build/test_k2            run every test
 *   build/test_k2 SUBSTRING  run the tests whose name contains SUBSTRING
 *   build/test_k2 --list     list the test names
 *
 * Inputs are copied into exact-size heap buffers (and outputs get exactly
 * the room the API promises) so that an ASan build catches any overrun.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "k2_notification.h"
#include "k2_signature.h"

/* ---- harness (tests/unit/unit.h) ------------------------------------ */

static const char *reason_name(k2_reason_e rv)
{
    static const char *const names[] = {
        "K2_OK", "K2_BAD_ESCAPE", "K2_BAD_NUL", "K2_BAD_CONTROL",
        "K2_BAD_UTF8", "K2_BAD_EMPTY_NAME", "K2_BAD_CONFLICT",
        "K2_BAD_MISSING", "K2_BAD_DATE", "K2_BAD_TIME", "K2_INVALID_AMOUNT",
        "K2_INVALID_CURRENCY", "K2_INVALID_BILLER"
    };

    return (unsigned)rv < sizeof(names) / sizeof(names[0]) ? names[rv] : "?";
}

#define CHECK_RV(actual, expected) \
    check_rv_(__FILE__, __LINE__, #actual, (actual), (expected))

static void check_rv_(const char *file, int line, const char *expr,
                      k2_reason_e actual, k2_reason_e expected)
{
    if (actual != expected) {
        fail_at(file, line, "%s is %s, expected %s", expr,
                reason_name(actual), reason_name(expected));
    }
}

/* ---- helpers ---------------------------------------------------------- */

/* Decode len bytes of in (exact-size copy, out of exactly len + 1 bytes);
 * expect want_rv and, on K2_OK, exactly want_len bytes of want + a NUL. */
static void check_decode_(const char *file, int line, const char *in,
                          size_t len, k2_reason_e want_rv,
                          const char *want, size_t want_len)
{
    char *copy = heap_copy(in, len);
    char *out = test_alloc(len + 1);
    size_t outlen = (size_t)-1;
    k2_reason_e rv;

    memset(out, 'X', len + 1);
    rv = k2_form_decode(copy, len, out, &outlen);
    if (rv != want_rv) {
        fail_at(file, line, "k2_form_decode(%zu bytes) is %s, expected %s",
                len, reason_name(rv), reason_name(want_rv));
        fputs("    input: ", stderr);
        print_quoted(in, len);
        fputc('\n', stderr);
        return;
    }
    if (rv != K2_OK) {
        return;
    }
    if (outlen != want_len || memcmp(out, want, want_len) != 0
        || out[outlen] != '\0') {
        fail_at(file, line, "k2_form_decode output differs");
        fputs("    input:    ", stderr);
        print_quoted(in, len);
        fprintf(stderr, "\n    actual:   (%zu bytes) ", outlen);
        print_quoted(out, outlen <= len ? outlen : 0);
        fprintf(stderr, "\n    expected: (%zu bytes) ", want_len);
        print_quoted(want, want_len);
        fputc('\n', stderr);
    }
}

/* Arguments are string literals: their length is sizeof - 1, so embedded
 * NUL bytes are part of the input. */
#define DECODE_OK(in, want) \
    check_decode_(__FILE__, __LINE__, in, sizeof(in) - 1, K2_OK, \
                  want, sizeof(want) - 1)
#define DECODE_FAILS(in, rv) \
    check_decode_(__FILE__, __LINE__, in, sizeof(in) - 1, rv, NULL, 0)

#define CHECK_UTF8(lit, want) \
    check_int_(__FILE__, __LINE__, "k2_utf8_valid(" #lit ")", \
               k2_utf8_valid(heap_copy(lit, sizeof(lit) - 1), \
                             sizeof(lit) - 1), (want))

#define CHECK_AMOUNT(s, want) \
    check_int_(__FILE__, __LINE__, "k2_amount_valid(" #s ")", \
               k2_amount_valid(heap_str(s)), (want))

/* k2_timestamp on exact-size copies; out must be want ("" when none). */
static void check_ts_(const char *file, int line, const char *date,
                      const char *time, k2_reason_e want_rv, const char *want)
{
    char out[20];
    k2_reason_e rv;

    memset(out, 'X', sizeof(out));
    rv = k2_timestamp(heap_str(date), heap_str(time), out);
    if (rv != want_rv) {
        fail_at(file, line, "k2_timestamp(%s%s%s, %s%s%s) is %s, expected %s",
                date ? "\"" : "", date ? date : "NULL", date ? "\"" : "",
                time ? "\"" : "", time ? time : "NULL", time ? "\"" : "",
                reason_name(rv), reason_name(want_rv));
        return;
    }
    if (memchr(out, '\0', sizeof(out)) == NULL) {
        fail_at(file, line, "k2_timestamp left out unterminated");
        return;
    }
    check_str_(file, line, "k2_timestamp out", out, want);
}

#define CHECK_TS(date, time, rv, want) \
    check_ts_(__FILE__, __LINE__, date, time, rv, want)

/* Parse len bytes from an exact-size copy (freed before returning, so the
 * values must not point into it) with a scratch of exactly len + 1 bytes. */
static k2_reason_e parse_len_cb(k2_notification_t *n, const char *body,
                                size_t len, k2_pair_fn *on_pair, void *baton)
{
    char *copy = malloc(len ? len : 1);
    k2_reason_e rv;

    if (!copy) {
        exit(2);
    }
    memcpy(copy, body, len);
    rv = k2_form_parse(n, copy, len, test_alloc(len + 1), on_pair, baton);
    free(copy);
    return rv;
}

static k2_reason_e parse_len(k2_notification_t *n, const char *body, size_t len)
{
    return parse_len_cb(n, body, len, NULL, NULL);
}

#define PARSE(n, lit) parse_len(n, lit, sizeof(lit) - 1)

static const char spec_body[] =
    "k2_account_id=12&k2_transaction_id=15&mm_system_id=M-PESA"
    "&mp_transaction_id=54445&biller_number=888555"
    "&transaction_date=26%2F4%2F11&transaction_time=1%3A03%20PM"
    "&transaction_type=Paybill&ac_no=A123333&sender=0723456789"
    "&first_name=John&last_name=Doe&middle_name=K.&amount=1500&currency=KES";

static const char *const spec_values[K2_F_NPARAMS] = {
    "12", "15", "M-PESA", "54445", "888555", "26/4/11", "1:03 PM", "Paybill",
    "A123333", "0723456789", "John", "Doe", "K.", "1500", "KES"
};

static const char *const kes[] = { "KES", NULL };
static const char *const biller_888555[] = { "888555", NULL };

/* A notification holding the spec's example values. */
static void fill_spec(k2_notification_t *n)
{
    int i;

    k2_notification_init(n);
    for (i = 0; i < K2_F_NPARAMS; i++) {
        n->value[i] = spec_values[i];
    }
}

/* Only the given field is set, every other one is NULL. */
static void check_only_field(const char *file, int line,
                             const k2_notification_t *n, int field,
                             const char *want)
{
    int i;

    for (i = 0; i < K2_F_COUNT; i++) {
        if (i == field) {
            check_str_(file, line, k2_field_name(i), n->value[i], want);
        }
        else if (n->value[i]) {
            fail_at(file, line, "%s is set, expected NULL", k2_field_name(i));
        }
    }
}

#define CHECK_ONLY_FIELD(n, field, want) \
    check_only_field(__FILE__, __LINE__, n, field, want)

/* ---- k2_form_decode --------------------------------------------------- */

static void test_decode_plain_is_unchanged(void)
{
    DECODE_OK("A123333", "A123333");
    DECODE_OK("M-PESA", "M-PESA");
    DECODE_OK("K.", "K.");
}

static void test_decode_empty_is_empty(void)
{
    DECODE_OK("", "");
}

static void test_decode_plus_is_space(void)
{
    DECODE_OK("John+K.+Doe", "John K. Doe");
    DECODE_OK("+", " ");
    DECODE_OK("++", "  ");
}

static void test_decode_percent_20_is_space(void)
{
    DECODE_OK("1%3A03%20PM", "1:03 PM");
    DECODE_OK("%20", " ");
}

static void test_decode_percent_2b_is_plus(void)
{
    DECODE_OK("%2B254", "+254");
    DECODE_OK("a%2b+b", "a+ b");
}

static void test_decode_hex_is_case_insensitive(void)
{
    DECODE_OK("26%2F4%2f11", "26/4/11");
    DECODE_OK("%3a%3A", "::");
    DECODE_OK("%c5%A9%C5%a9", "\xC5\xA9\xC5\xA9");
    DECODE_OK("%7e%7E", "~~");
}

static void test_decode_percent_escape_of_percent(void)
{
    DECODE_OK("100%25", "100%");
    DECODE_OK("%2541", "%41");
}

static void test_decode_rejects_non_hex_escape(void)
{
    DECODE_FAILS("%G1", K2_BAD_ESCAPE);
    DECODE_FAILS("%1G", K2_BAD_ESCAPE);
    DECODE_FAILS("ab%zzcd", K2_BAD_ESCAPE);
    DECODE_FAILS("%+1", K2_BAD_ESCAPE);
    DECODE_FAILS("% 1", K2_BAD_ESCAPE);
}

static void test_decode_rejects_short_escape(void)
{
    DECODE_FAILS("%4", K2_BAD_ESCAPE);
    DECODE_FAILS("ab%4", K2_BAD_ESCAPE);
}

static void test_decode_rejects_trailing_percent(void)
{
    DECODE_FAILS("abc%", K2_BAD_ESCAPE);
}

static void test_decode_rejects_lone_percent(void)
{
    DECODE_FAILS("%", K2_BAD_ESCAPE);
}

static void test_decode_escape_is_bounded_by_len(void)
{
    /* "%41" cut at 2 bytes: the '1' past len must not complete the escape */
    check_decode_(__FILE__, __LINE__, "%41", 2, K2_BAD_ESCAPE, NULL, 0);
    check_decode_(__FILE__, __LINE__, "%41", 1, K2_BAD_ESCAPE, NULL, 0);
    check_decode_(__FILE__, __LINE__, "ab%41", 2, K2_OK, "ab", 2);
}

static void test_decode_rejects_percent_00(void)
{
    DECODE_FAILS("%00", K2_BAD_NUL);
    DECODE_FAILS("A123%00333", K2_BAD_NUL);
}

static void test_decode_rejects_raw_nul_mid_buffer(void)
{
    DECODE_FAILS("ab\0cd", K2_BAD_NUL);
    DECODE_FAILS("\0", K2_BAD_NUL);
    DECODE_FAILS("1500\0", K2_BAD_NUL);
}

static void test_decode_rejects_encoded_crlf(void)
{
    DECODE_FAILS("a%0D%0Ab", K2_BAD_CONTROL);
    DECODE_FAILS("%0a", K2_BAD_CONTROL);
    DECODE_FAILS("%0d", K2_BAD_CONTROL);
}

static void test_decode_rejects_raw_crlf(void)
{
    DECODE_FAILS("a\r\nb", K2_BAD_CONTROL);
    DECODE_FAILS("\n", K2_BAD_CONTROL);
}

static void test_decode_rejects_tab(void)
{
    DECODE_FAILS("%09", K2_BAD_CONTROL);
    DECODE_FAILS("a\tb", K2_BAD_CONTROL);
}

static void test_decode_rejects_del(void)
{
    DECODE_FAILS("%7F", K2_BAD_CONTROL);
    DECODE_FAILS("%7f", K2_BAD_CONTROL);
    DECODE_FAILS("a\x7F", K2_BAD_CONTROL);
}

static void test_decode_rejects_other_c0_controls(void)
{
    DECODE_FAILS("%01", K2_BAD_CONTROL);
    DECODE_FAILS("%1F", K2_BAD_CONTROL);
    DECODE_FAILS("\x1B[0m", K2_BAD_CONTROL);
    DECODE_FAILS("\x01", K2_BAD_CONTROL);
}

static void test_decode_accepts_space_and_tilde_bounds(void)
{
    /* 0x20 and 0x7E are the printable bounds next to the controls */
    DECODE_OK("%20%7E", " ~");
    DECODE_OK(" ~", " ~");
}

static void test_decode_accepts_utf8_2_byte(void)
{
    DECODE_OK("Wanjir%C5%A9", "Wanjir\xC5\xA9");
    DECODE_OK("Wanjir\xC5\xA9", "Wanjir\xC5\xA9");
}

static void test_decode_accepts_utf8_3_byte(void)
{
    DECODE_OK("%E2%82%AC1500", "\xE2\x82\xAC" "1500");
    DECODE_OK("\xE2\x82\xAC", "\xE2\x82\xAC");
}

static void test_decode_accepts_utf8_4_byte(void)
{
    DECODE_OK("%F0%9F%98%80", "\xF0\x9F\x98\x80");
    DECODE_OK("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80");
}

static void test_decode_utf8_may_mix_raw_and_encoded_bytes(void)
{
    /* validity is checked on the decoded bytes */
    DECODE_OK("\xC5%A9", "\xC5\xA9");
    DECODE_OK("%E2\x82%AC", "\xE2\x82\xAC");
}

static void test_decode_rejects_lone_continuation(void)
{
    DECODE_FAILS("%80", K2_BAD_UTF8);
    DECODE_FAILS("a\x80", K2_BAD_UTF8);
}

static void test_decode_rejects_overlong_c0_af(void)
{
    DECODE_FAILS("%C0%AF", K2_BAD_UTF8);
    DECODE_FAILS("\xC0\xAF", K2_BAD_UTF8);
}

static void test_decode_rejects_overlong_e0_80_af(void)
{
    DECODE_FAILS("%E0%80%AF", K2_BAD_UTF8);
    DECODE_FAILS("\xE0\x80\xAF", K2_BAD_UTF8);
}

static void test_decode_rejects_truncated_utf8_at_end(void)
{
    DECODE_FAILS("abc%E2%82", K2_BAD_UTF8);
    DECODE_FAILS("abc\xE2\x82", K2_BAD_UTF8);
}

static void test_decode_rejects_surrogate(void)
{
    DECODE_FAILS("%ED%A0%80", K2_BAD_UTF8);
    DECODE_FAILS("\xED\xA0\x80", K2_BAD_UTF8);
}

static void test_decode_rejects_past_u10ffff(void)
{
    DECODE_FAILS("%F4%90%80%80", K2_BAD_UTF8);
    DECODE_FAILS("\xF4\x90\x80\x80", K2_BAD_UTF8);
}

static void test_decode_rejects_f5(void)
{
    DECODE_FAILS("%F5%80%80%80", K2_BAD_UTF8);
    DECODE_FAILS("\xF5", K2_BAD_UTF8);
    DECODE_FAILS("%FF", K2_BAD_UTF8);
}

static void test_decode_every_prefix_stays_within_len(void)
{
    /* each prefix of "a%C5%A9" from exact-size buffers, with its exact result */
    static const char in[] = "a%C5%A9";
    static const k2_reason_e want[] = {
        K2_OK, K2_OK, K2_BAD_ESCAPE, K2_BAD_ESCAPE, K2_BAD_UTF8,
        K2_BAD_ESCAPE, K2_BAD_ESCAPE, K2_OK
    };
    size_t len;

    for (len = 0; len < sizeof(want) / sizeof(want[0]); len++) {
        const char *out = len == 7 ? "a\xC5\xA9" : "a";

        check_decode_(__FILE__, __LINE__, in, len, want[len], out,
                      len == 0 ? 0 : strlen(out));
    }
}

static void test_decode_long_input_exact_buffers(void)
{
    /* 200 x "%C5%A9+" (7 bytes) decodes to 200 x "\xC5\xA9 " (3 bytes) */
    char in[200 * 7], want[200 * 3];
    int i;

    for (i = 0; i < 200; i++) {
        memcpy(in + i * 7, "%C5%A9+", 7);
        memcpy(want + i * 3, "\xC5\xA9 ", 3);
    }
    check_decode_(__FILE__, __LINE__, in, sizeof(in), K2_OK, want,
                  sizeof(want));
}

static void test_decode_output_uses_all_len_plus_1(void)
{
    /* nothing shrinks: the output fills exactly len + 1 bytes */
    char in[300];

    memset(in, 'z', sizeof(in));
    check_decode_(__FILE__, __LINE__, in, sizeof(in), K2_OK, in, sizeof(in));
}

/* ---- k2_utf8_valid ---------------------------------------------------- */

static void test_utf8_accepts_empty_and_ascii(void)
{
    CHECK_UTF8("", 1);
    CHECK_UTF8("A123333 ~", 1);
}

static void test_utf8_nul_is_valid_utf8(void)
{
    /* refusing NUL is k2_form_decode's job, not the UTF-8 check's */
    CHECK_UTF8("a\0b", 1);
}

static void test_utf8_accepts_2_3_4_byte_sequences(void)
{
    CHECK_UTF8("Wanjir\xC5\xA9", 1);
    CHECK_UTF8("\xE2\x82\xAC", 1);
    CHECK_UTF8("\xF0\x9F\x98\x80", 1);
}

static void test_utf8_accepts_range_bounds(void)
{
    CHECK_UTF8("\xC2\x80", 1);             /* U+0080 */
    CHECK_UTF8("\xDF\xBF", 1);             /* U+07FF */
    CHECK_UTF8("\xE0\xA0\x80", 1);         /* U+0800 */
    CHECK_UTF8("\xED\x9F\xBF", 1);         /* U+D7FF */
    CHECK_UTF8("\xEE\x80\x80", 1);         /* U+E000 */
    CHECK_UTF8("\xEF\xBF\xBF", 1);         /* U+FFFF */
    CHECK_UTF8("\xF0\x90\x80\x80", 1);     /* U+10000 */
    CHECK_UTF8("\xF4\x8F\xBF\xBF", 1);     /* U+10FFFF */
}

static void test_utf8_rejects_lone_continuation(void)
{
    CHECK_UTF8("\x80", 0);
    CHECK_UTF8("\xBF", 0);
    CHECK_UTF8("a\x80z", 0);
    CHECK_UTF8("\xC5\xA9\xA9", 0);
}

static void test_utf8_rejects_overlong_2_byte(void)
{
    CHECK_UTF8("\xC0\xAF", 0);
    CHECK_UTF8("\xC0\x80", 0);
    CHECK_UTF8("\xC1\xBF", 0);
}

static void test_utf8_rejects_overlong_3_byte(void)
{
    CHECK_UTF8("\xE0\x80\xAF", 0);
    CHECK_UTF8("\xE0\x9F\xBF", 0);
}

static void test_utf8_rejects_overlong_4_byte(void)
{
    CHECK_UTF8("\xF0\x80\x80\xAF", 0);
    CHECK_UTF8("\xF0\x8F\xBF\xBF", 0);
}

static void test_utf8_rejects_truncated_sequence(void)
{
    CHECK_UTF8("\xE2\x82", 0);
    CHECK_UTF8("\xC5", 0);
    CHECK_UTF8("\xF0\x9F\x98", 0);
    CHECK_UTF8("\xE2\x82" "A", 0);         /* non-continuation inside */
    CHECK_UTF8("\xC5" " ", 0);
}

static void test_utf8_rejects_surrogates(void)
{
    CHECK_UTF8("\xED\xA0\x80", 0);         /* U+D800 */
    CHECK_UTF8("\xED\xBF\xBF", 0);         /* U+DFFF */
}

static void test_utf8_rejects_past_u10ffff(void)
{
    CHECK_UTF8("\xF4\x90\x80\x80", 0);
    CHECK_UTF8("\xF7\xBF\xBF\xBF", 0);
}

static void test_utf8_rejects_f5_to_ff(void)
{
    CHECK_UTF8("\xF5", 0);
    CHECK_UTF8("\xF5\x80\x80\x80", 0);
    CHECK_UTF8("\xF8\x88\x80\x80\x80", 0);
    CHECK_UTF8("\xFE", 0);
    CHECK_UTF8("\xFF", 0);
}

static void test_utf8_is_bounded_by_len(void)
{
    CHECK_INT(k2_utf8_valid(heap_copy("\xC5\xA9", 1), 1), 0);
    CHECK_INT(k2_utf8_valid(heap_copy("a\xFF", 1), 1), 1);
    CHECK_INT(k2_utf8_valid(heap_copy("\xF0\x9F\x98\x80", 3), 3), 0);
}

/* ---- k2_form_parse ---------------------------------------------------- */

static void test_parse_spec_example_sets_all_15_fields(void)
{
    k2_notification_t n;
    int i;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, spec_body), K2_OK);
    for (i = 0; i < K2_F_NPARAMS; i++) {
        CHECK_STR(n.value[i], spec_values[i]);
    }
    CHECK_STR(n.value[K2_F_TRANSACTION_DATE], "26/4/11");
    CHECK_STR(n.value[K2_F_TRANSACTION_TIME], "1:03 PM");
    CHECK(n.value[K2_F_TRANSACTION_TIMESTAMP] == NULL);
    CHECK(n.value[K2_F_REMOTE_USER] == NULL);
    CHECK_INT(n.conflict_field, -1);
    CHECK_INT(n.missing_field, -1);
}

static void test_parse_spec_example_validates(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, spec_body), K2_OK);
    CHECK_RV(k2_notification_validate(&n, kes, biller_888555), K2_OK);
    CHECK_STR(n.value[K2_F_TRANSACTION_TIMESTAMP], "2011-04-26T13:03:00");
}

static void test_parse_ignores_unknown_params(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "foo=bar&ac_no=A1&x&submit=Pay+now"), K2_OK);
    CHECK_ONLY_FIELD(&n, K2_F_AC_NO, "A1");
}

static void test_parse_name_is_case_sensitive(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "AC_NO=A1&Amount=5"), K2_OK);
    CHECK_ONLY_FIELD(&n, -1, NULL);
}

static void test_parse_ignores_derived_field_names(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "remote_user=admin"
                       "&transaction_timestamp=2011-04-26T13:03:00&ac_no=A1"),
             K2_OK);
    CHECK_ONLY_FIELD(&n, K2_F_AC_NO, "A1");
}

static void test_parse_skips_empty_segments(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "a=1&&"), K2_OK);
    CHECK_ONLY_FIELD(&n, -1, NULL);

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "&&ac_no=A1&&&amount=5&"), K2_OK);
    CHECK_STR(n.value[K2_F_AC_NO], "A1");
    CHECK_STR(n.value[K2_F_AMOUNT], "5");
}

static void test_parse_empty_body_sets_nothing(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, ""), K2_OK);
    CHECK_RV(PARSE(&n, "&"), K2_OK);
    CHECK_ONLY_FIELD(&n, -1, NULL);
}

static void test_parse_empty_name_is_bad_request(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "=x"), K2_BAD_EMPTY_NAME);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&=x"), K2_BAD_EMPTY_NAME);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "="), K2_BAD_EMPTY_NAME);
}

static void test_parse_name_without_equals_is_empty_value(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "middle_name&ac_no=A1"), K2_OK);
    CHECK_STR(n.value[K2_F_MIDDLE_NAME], "");
    CHECK_STR(n.value[K2_F_AC_NO], "A1");
}

static void test_parse_name_with_equals_and_nothing_is_empty_value(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "middle_name="), K2_OK);
    CHECK_ONLY_FIELD(&n, K2_F_MIDDLE_NAME, "");
}

static void test_parse_value_keeps_later_equals(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=a=b&sender=c%3Dd%26e"), K2_OK);
    CHECK_STR(n.value[K2_F_AC_NO], "a=b");
    CHECK_STR(n.value[K2_F_SENDER], "c=d&e");
}

static void test_parse_same_value_twice_is_ok(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "amount=1500&ac_no=A1&amount=1500"), K2_OK);
    CHECK_STR(n.value[K2_F_AMOUNT], "1500");
    CHECK_INT(n.conflict_field, -1);
}

static void test_parse_duplicate_compares_decoded_values(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "first_name=John+K&first_name=John%20K"
                       "&first_name=%4Aohn%20K"), K2_OK);
    CHECK_STR(n.value[K2_F_FIRST_NAME], "John K");
}

static void test_parse_conflicting_duplicate_is_bad_request(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "amount=1500&ac_no=A1&amount=15000"), K2_BAD_CONFLICT);
    CHECK_INT(n.conflict_field, K2_F_AMOUNT);
    CHECK_STR(n.value[K2_F_AMOUNT], "1500");
}

static void test_parse_empty_then_value_is_conflict(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no&ac_no=A1"), K2_BAD_CONFLICT);
    CHECK_INT(n.conflict_field, K2_F_AC_NO);

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&ac_no="), K2_BAD_CONFLICT);
    CHECK_INT(n.conflict_field, K2_F_AC_NO);
}

static void test_parse_query_then_body_conflict_across_sources(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&amount=1500"), K2_OK);
    CHECK_RV(PARSE(&n, "currency=KES&amount=1500&ac_no=A2"), K2_BAD_CONFLICT);
    CHECK_INT(n.conflict_field, K2_F_AC_NO);
    CHECK_STR(n.value[K2_F_AC_NO], "A1");
    CHECK_STR(n.value[K2_F_CURRENCY], "KES");
}

static void test_parse_query_then_body_same_values_merge(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&amount=1500"), K2_OK);
    CHECK_RV(PARSE(&n, "amount=1500.00&ac_no=A1"), K2_BAD_CONFLICT);
    CHECK_INT(n.conflict_field, K2_F_AMOUNT);

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&amount=1500"), K2_OK);
    CHECK_RV(PARSE(&n, "amount=1500&currency=KES"), K2_OK);
    CHECK_STR(n.value[K2_F_AC_NO], "A1");
    CHECK_STR(n.value[K2_F_AMOUNT], "1500");
    CHECK_STR(n.value[K2_F_CURRENCY], "KES");
}

static void test_parse_percent_3d_in_name_is_unknown_name(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no%3DA1"), K2_OK);
    CHECK_RV(PARSE(&n, "ac_no%3D=A1"), K2_OK);
    CHECK_RV(PARSE(&n, "amount%3d1500=x"), K2_OK);
    CHECK_ONLY_FIELD(&n, -1, NULL);
}

static void test_parse_encoded_name_sets_field(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac%5Fno=A1&%61mount=1500"), K2_OK);
    CHECK_STR(n.value[K2_F_AC_NO], "A1");
    CHECK_STR(n.value[K2_F_AMOUNT], "1500");
}

static void test_parse_decode_errors_in_value_are_bad_request(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=%G1"), K2_BAD_ESCAPE);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1%"), K2_BAD_ESCAPE);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1%00"), K2_BAD_NUL);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1%0D%0AX"), K2_BAD_CONTROL);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=%C0%AF"), K2_BAD_UTF8);
}

static void test_parse_decode_errors_in_name_are_bad_request(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "%ZZ=1"), K2_BAD_ESCAPE);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "a%00=1"), K2_BAD_NUL);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "a%09b=1"), K2_BAD_CONTROL);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "%80=1"), K2_BAD_UTF8);
}

static void test_parse_bad_value_of_unknown_param_is_bad_request(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&foo=%00"), K2_BAD_NUL);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "foo=%4"), K2_BAD_ESCAPE);
}

static void test_parse_raw_nul_in_body_is_bad_request(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1\0&amount=1500"), K2_BAD_NUL);
    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=A1&\0amount=1500"), K2_BAD_NUL);
}

static void test_parse_scratch_len_plus_1_is_enough(void)
{
    /* nothing shrinks and every segment costs its length + 1 */
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "sender&ac_no&amount"), K2_OK);
    CHECK_STR(n.value[K2_F_SENDER], "");
    CHECK_STR(n.value[K2_F_AMOUNT], "");

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "ac_no=&sender=x&amount=1500"), K2_OK);
    CHECK_STR(n.value[K2_F_AC_NO], "");
    CHECK_STR(n.value[K2_F_SENDER], "x");
    CHECK_STR(n.value[K2_F_AMOUNT], "1500");
}

static void test_parse_values_are_decoded_utf8(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(PARSE(&n, "first_name=Wanjir%C5%A9&last_name=Kam%C3%A1u"),
             K2_OK);
    CHECK_STR(n.value[K2_F_FIRST_NAME], "Wanjir\xC5\xA9");
    CHECK_STR(n.value[K2_F_LAST_NAME], "Kam\xC3\xA1u");
}

/* ---- k2_amount_valid -------------------------------------------------- */

static void test_amount_accepts_integer(void)
{
    CHECK_AMOUNT("1500", 1);
    CHECK_AMOUNT("1", 1);
}

static void test_amount_accepts_one_or_two_decimals(void)
{
    CHECK_AMOUNT("1500.5", 1);
    CHECK_AMOUNT("1500.50", 1);
    CHECK_AMOUNT("0.01", 1);
    CHECK_AMOUNT("0.1", 1);
}

static void test_amount_accepts_leading_zeros(void)
{
    CHECK_AMOUNT("007", 1);
    CHECK_AMOUNT("00.50", 1);
}

static void test_amount_accepts_15_digit_integer_part(void)
{
    CHECK_AMOUNT("999999999999999", 1);
    CHECK_AMOUNT("100000000000000.99", 1);
}

/* k2_amount_equal: a stored amount against the notification's. */
static void test_amount_equal_ignores_leading_and_trailing_zeros(void)
{
    CHECK_INT(k2_amount_equal("1500", "1500"), 1);
    CHECK_INT(k2_amount_equal("1500", "1500.00"), 1);
    CHECK_INT(k2_amount_equal("1500.5", "1500.50"), 1);
    CHECK_INT(k2_amount_equal("0.5", "00.50"), 1);
    CHECK_INT(k2_amount_equal("0", "0.00"), 1);
    CHECK_INT(k2_amount_equal("007", "7.0"), 1);
}

static void test_amount_equal_tells_different_amounts_apart(void)
{
    CHECK_INT(k2_amount_equal("1500", "1501"), 0);
    CHECK_INT(k2_amount_equal("1500", "150"), 0);
    CHECK_INT(k2_amount_equal("1500", "15000"), 0);
    CHECK_INT(k2_amount_equal("1500.5", "1500.05"), 0);
    CHECK_INT(k2_amount_equal("10", "1.0"), 0);
    CHECK_INT(k2_amount_equal("0.01", "0.1"), 0);
}

/* Issue 19: the decimals of one amount that begin the other's are not the
 * same cents: either way round, whatever the trailing zeros (PostgreSQL's
 * numeric(17,2) gives 1500.5 back as 1500.50), and with no decimals on one
 * side.  A comparison over the shorter fraction only takes them as equal. */
static void test_amount_equal_more_cents_than_the_other_is_another_amount(void)
{
    CHECK_INT(k2_amount_equal("1500.5", "1500.55"), 0);
    CHECK_INT(k2_amount_equal("1500.55", "1500.5"), 0);
    CHECK_INT(k2_amount_equal("1500.50", "1500.55"), 0);
    CHECK_INT(k2_amount_equal("1500.55", "1500.50"), 0);
    CHECK_INT(k2_amount_equal("1500", "1500.05"), 0);
    CHECK_INT(k2_amount_equal("1500.00", "1500.05"), 0);
    CHECK_INT(k2_amount_equal("1500.05", "1500"), 0);
    CHECK_INT(k2_amount_equal("0.1", "0.11"), 0);
}

static void test_amount_equal_refuses_what_is_not_a_plain_decimal(void)
{
    CHECK_INT(k2_amount_equal("1500", "1.5e3"), 0);
    CHECK_INT(k2_amount_equal("1500", "1500."), 0);
    CHECK_INT(k2_amount_equal("1500", " 1500"), 0);
    CHECK_INT(k2_amount_equal("1500", ""), 0);
    CHECK_INT(k2_amount_equal(".5", ".5"), 0);
    CHECK_INT(k2_amount_equal("-5", "-5"), 0);
    CHECK_INT(k2_amount_equal("1,500", "1,500"), 0);
}

static void test_amount_rejects_16_digit_integer_part(void)
{
    CHECK_AMOUNT("1000000000000000", 0);
    CHECK_AMOUNT("0000000000000001", 0);
    CHECK_AMOUNT("1000000000000000.00", 0);
}

static void test_amount_rejects_zero(void)
{
    CHECK_AMOUNT("0", 0);
    CHECK_AMOUNT("0.00", 0);
    CHECK_AMOUNT("0.0", 0);
    CHECK_AMOUNT("000", 0);
}

static void test_amount_rejects_sign(void)
{
    CHECK_AMOUNT("-5", 0);
    CHECK_AMOUNT("+5", 0);
    CHECK_AMOUNT("5-", 0);
}

static void test_amount_rejects_exponent(void)
{
    CHECK_AMOUNT("1e3", 0);
    CHECK_AMOUNT("1E3", 0);
    CHECK_AMOUNT("1.5e1", 0);
}

static void test_amount_rejects_thousands_separator(void)
{
    CHECK_AMOUNT("1,500", 0);
    CHECK_AMOUNT("1 500", 0);
    CHECK_AMOUNT("1500,50", 0);
}

static void test_amount_rejects_three_decimals(void)
{
    CHECK_AMOUNT("1.234", 0);
    CHECK_AMOUNT("1500.500", 0);
}

static void test_amount_rejects_whitespace(void)
{
    CHECK_AMOUNT(" 1500", 0);
    CHECK_AMOUNT("1500 ", 0);
    CHECK_AMOUNT("1500\n", 0);
}

static void test_amount_rejects_missing_digits_around_dot(void)
{
    CHECK_AMOUNT(".5", 0);
    CHECK_AMOUNT("5.", 0);
    CHECK_AMOUNT(".", 0);
}

static void test_amount_rejects_empty_and_letters(void)
{
    CHECK_AMOUNT("", 0);
    CHECK_AMOUNT("abc", 0);
    CHECK_AMOUNT("15a", 0);
    CHECK_AMOUNT("KES1500", 0);
    CHECK_AMOUNT("0x10", 0);
}

static void test_amount_rejects_double_dot(void)
{
    CHECK_AMOUNT("1..2", 0);
    CHECK_AMOUNT("1.2.3", 0);
}

/* ---- k2_timestamp ----------------------------------------------------- */

static void test_timestamp_spec_example(void)
{
    CHECK_TS("26/4/11", "1:03 PM", K2_OK, "2011-04-26T13:03:00");
}

static void test_timestamp_two_digit_year_is_20yy(void)
{
    CHECK_TS("1/1/00", "1:00 AM", K2_OK, "2000-01-01T01:00:00");
    CHECK_TS("31/12/99", "11:59 PM", K2_OK, "2099-12-31T23:59:00");
}

static void test_timestamp_four_digit_year(void)
{
    CHECK_TS("26/4/2011", "1:03 PM", K2_OK, "2011-04-26T13:03:00");
    CHECK_TS("1/1/1970", "12:00 AM", K2_OK, "1970-01-01T00:00:00");
}

static void test_timestamp_padded_parts_accepted(void)
{
    CHECK_TS("06/04/11", "01:03 PM", K2_OK, "2011-04-06T13:03:00");
}

static void test_timestamp_12_am_is_midnight(void)
{
    CHECK_TS("26/4/11", "12:00 AM", K2_OK, "2011-04-26T00:00:00");
    CHECK_TS("26/4/11", "12:59 AM", K2_OK, "2011-04-26T00:59:00");
}

static void test_timestamp_12_pm_is_noon(void)
{
    CHECK_TS("26/4/11", "12:30 PM", K2_OK, "2011-04-26T12:30:00");
}

static void test_timestamp_am_and_pm_hours(void)
{
    CHECK_TS("26/4/11", "1:03 AM", K2_OK, "2011-04-26T01:03:00");
    CHECK_TS("26/4/11", "11:59 AM", K2_OK, "2011-04-26T11:59:00");
    CHECK_TS("26/4/11", "11:59 PM", K2_OK, "2011-04-26T23:59:00");
}

static void test_timestamp_meridiem_is_case_insensitive(void)
{
    CHECK_TS("26/4/11", "1:03 am", K2_OK, "2011-04-26T01:03:00");
    CHECK_TS("26/4/11", "1:03 pm", K2_OK, "2011-04-26T13:03:00");
    CHECK_TS("26/4/11", "1:03 Pm", K2_OK, "2011-04-26T13:03:00");
}

static void test_timestamp_leap_day(void)
{
    CHECK_TS("29/2/2024", "1:03 PM", K2_OK, "2024-02-29T13:03:00");
    CHECK_TS("29/2/24", "1:03 PM", K2_OK, "2024-02-29T13:03:00");
    CHECK_TS("29/2/2000", "1:03 PM", K2_OK, "2000-02-29T13:03:00");
}

static void test_timestamp_rejects_feb_29_of_common_year(void)
{
    CHECK_TS("29/2/2023", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("29/2/2100", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("30/2/2024", "1:03 PM", K2_BAD_DATE, "");
}

static void test_timestamp_rejects_day_past_month_end(void)
{
    CHECK_TS("31/4/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("32/1/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("31/12/11", "1:03 PM", K2_OK, "2011-12-31T13:03:00");
}

static void test_timestamp_rejects_day_or_month_out_of_range(void)
{
    CHECK_TS("0/1/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("1/0/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("1/13/11", "1:03 PM", K2_BAD_DATE, "");
}

static void test_timestamp_rejects_year_not_2_or_4_digits(void)
{
    CHECK_TS("1/1/111", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("1/1/1", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("1/1/20111", "1:03 PM", K2_BAD_DATE, "");
}

static void test_timestamp_rejects_year_before_1970(void)
{
    CHECK_TS("31/12/1969", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("1/1/0011", "1:03 PM", K2_BAD_DATE, "");
}

static void test_timestamp_rejects_other_date_separators(void)
{
    CHECK_TS("26-4-11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("26.4.11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("2011-04-26", "1:03 PM", K2_BAD_DATE, "");
}

static void test_timestamp_rejects_malformed_date(void)
{
    CHECK_TS("", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("26/4/11 ", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS(" 26/4/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("/4/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("26/4/", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("26/4", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("126/4/11", "1:03 PM", K2_BAD_DATE, "");
    CHECK_TS("26/004/11", "1:03 PM", K2_BAD_DATE, "");
}

static void test_timestamp_rejects_hour_out_of_range(void)
{
    CHECK_TS("26/4/11", "13:00 PM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "0:30 AM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "00:30 AM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "013:00 PM", K2_BAD_TIME, "");
}

static void test_timestamp_rejects_minute_not_2_digits(void)
{
    CHECK_TS("26/4/11", "1:3 PM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:003 PM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1: PM", K2_BAD_TIME, "");
}

static void test_timestamp_rejects_minute_60(void)
{
    CHECK_TS("26/4/11", "1:60 PM", K2_BAD_TIME, "");
}

static void test_timestamp_rejects_missing_or_double_space(void)
{
    CHECK_TS("26/4/11", "1:03PM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:03  PM", K2_BAD_TIME, "");
}

static void test_timestamp_rejects_bad_meridiem(void)
{
    CHECK_TS("26/4/11", "1:03 XM", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:03 P", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:03 PMX", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:03 P.M.", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:03 ", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "1:03", K2_BAD_TIME, "");
}

static void test_timestamp_rejects_24_hour_time(void)
{
    CHECK_TS("26/4/11", "13:03", K2_BAD_TIME, "");
    CHECK_TS("26/4/11", "13:03:00", K2_BAD_TIME, "");
}

static void test_timestamp_rejects_empty_time(void)
{
    CHECK_TS("26/4/11", "", K2_BAD_TIME, "");
}

static void test_timestamp_date_only_is_ok_and_empty(void)
{
    CHECK_TS("26/4/11", NULL, K2_OK, "");
    CHECK_TS("31/4/11", NULL, K2_BAD_DATE, "");
}

static void test_timestamp_time_only_is_ok_and_empty(void)
{
    CHECK_TS(NULL, "1:03 PM", K2_OK, "");
    CHECK_TS(NULL, "1:03PM", K2_BAD_TIME, "");
}

static void test_timestamp_neither_is_ok_and_empty(void)
{
    CHECK_TS(NULL, NULL, K2_OK, "");
}

static void test_timestamp_bad_date_reported_before_bad_time(void)
{
    CHECK_TS("31/4/11", "13:00 PM", K2_BAD_DATE, "");
}

/* ---- k2_notification_validate ----------------------------------------- */

static void test_validate_spec_example_is_ok(void)
{
    k2_notification_t n;
    int i;

    fill_spec(&n);
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    CHECK_STR(n.value[K2_F_TRANSACTION_TIMESTAMP], "2011-04-26T13:03:00");
    CHECK(n.value[K2_F_TRANSACTION_TIMESTAMP] == n.timestamp);
    CHECK(n.value[K2_F_REMOTE_USER] == NULL);
    CHECK_INT(n.missing_field, -1);
    CHECK_INT(n.conflict_field, -1);
    for (i = 0; i < K2_F_NPARAMS; i++) {
        CHECK_STR(n.value[i], spec_values[i]);
    }
}

static const int required_fields[] = {
    K2_F_K2_TRANSACTION_ID, K2_F_AC_NO, K2_F_AMOUNT, K2_F_CURRENCY
};

static void test_validate_missing_required_field_is_bad_request(void)
{
    k2_notification_t n;
    size_t i;

    for (i = 0; i < sizeof(required_fields) / sizeof(required_fields[0]); i++) {
        fill_spec(&n);
        n.value[required_fields[i]] = NULL;
        CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_MISSING);
        CHECK_INT(n.missing_field, required_fields[i]);
    }
}

static void test_validate_empty_required_field_is_bad_request(void)
{
    k2_notification_t n;
    size_t i;

    for (i = 0; i < sizeof(required_fields) / sizeof(required_fields[0]); i++) {
        fill_spec(&n);
        n.value[required_fields[i]] = "";
        CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_MISSING);
        CHECK_INT(n.missing_field, required_fields[i]);
    }
}

static void test_validate_first_missing_field_in_spec_order(void)
{
    k2_notification_t n;

    k2_notification_init(&n);
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_MISSING);
    CHECK_INT(n.missing_field, K2_F_K2_TRANSACTION_ID);
}

static void test_validate_only_four_fields_required(void)
{
    k2_notification_t n;
    int i;

    k2_notification_init(&n);
    n.value[K2_F_K2_TRANSACTION_ID] = "15";
    n.value[K2_F_AC_NO] = "A123333";
    n.value[K2_F_AMOUNT] = "1500";
    n.value[K2_F_CURRENCY] = "KES";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    CHECK_INT(n.missing_field, -1);
    for (i = 0; i < K2_F_COUNT; i++) {
        if (i != K2_F_K2_TRANSACTION_ID && i != K2_F_AC_NO
            && i != K2_F_AMOUNT && i != K2_F_CURRENCY) {
            CHECK(n.value[i] == NULL);
        }
    }
}

static void test_validate_empty_optional_fields_become_null(void)
{
    k2_notification_t n;
    int i;

    fill_spec(&n);
    for (i = 0; i < K2_F_NPARAMS; i++) {
        if (i != K2_F_K2_TRANSACTION_ID && i != K2_F_AC_NO
            && i != K2_F_AMOUNT && i != K2_F_CURRENCY) {
            n.value[i] = "";
        }
    }
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    for (i = 0; i < K2_F_COUNT; i++) {
        if (i == K2_F_K2_TRANSACTION_ID || i == K2_F_AC_NO
            || i == K2_F_AMOUNT || i == K2_F_CURRENCY) {
            CHECK_STR(n.value[i], spec_values[i]);
        }
        else if (n.value[i]) {
            fail_at(__FILE__, __LINE__, "%s is \"%s\", expected NULL",
                    k2_field_name(i), n.value[i]);
        }
    }
}

static void test_validate_bad_amount_is_invalid_payment(void)
{
    static const char *const bad[] = { "1e3", "0", "-5", "1,500", "1.234" };
    k2_notification_t n;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fill_spec(&n);
        n.value[K2_F_AMOUNT] = bad[i];
        CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_INVALID_AMOUNT);
    }
}

static void test_validate_currency_not_listed_is_invalid_payment(void)
{
    static const char *const kes_usd[] = { "USD", "KES", NULL };
    static const char *const none[] = { NULL };
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_CURRENCY] = "USD";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_INVALID_CURRENCY);

    fill_spec(&n);
    n.value[K2_F_CURRENCY] = "kes";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_INVALID_CURRENCY);

    fill_spec(&n);
    n.value[K2_F_CURRENCY] = "KES ";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_INVALID_CURRENCY);

    fill_spec(&n);
    CHECK_RV(k2_notification_validate(&n, none, NULL), K2_INVALID_CURRENCY);

    fill_spec(&n);
    CHECK_RV(k2_notification_validate(&n, kes_usd, NULL), K2_OK);
}

static void test_validate_null_biller_list_accepts_any_biller(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_BILLER_NUMBER] = "999999";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    CHECK_STR(n.value[K2_F_BILLER_NUMBER], "999999");

    fill_spec(&n);
    n.value[K2_F_BILLER_NUMBER] = NULL;
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
}

static void test_validate_biller_list_accepts_listed_biller(void)
{
    static const char *const two[] = { "111111", "888555", NULL };
    k2_notification_t n;

    fill_spec(&n);
    CHECK_RV(k2_notification_validate(&n, kes, two), K2_OK);
}

static void test_validate_biller_list_rejects_absent_biller(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_BILLER_NUMBER] = NULL;
    CHECK_RV(k2_notification_validate(&n, kes, biller_888555),
             K2_INVALID_BILLER);

    fill_spec(&n);
    n.value[K2_F_BILLER_NUMBER] = "";
    CHECK_RV(k2_notification_validate(&n, kes, biller_888555),
             K2_INVALID_BILLER);
}

static void test_validate_biller_list_rejects_other_biller(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_BILLER_NUMBER] = "888556";
    CHECK_RV(k2_notification_validate(&n, kes, biller_888555),
             K2_INVALID_BILLER);
}

static void test_validate_timestamp_needs_date_and_time(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_TIME] = NULL;
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    CHECK(n.value[K2_F_TRANSACTION_TIMESTAMP] == NULL);

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_DATE] = NULL;
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    CHECK(n.value[K2_F_TRANSACTION_TIMESTAMP] == NULL);

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_TIME] = "";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_OK);
    CHECK(n.value[K2_F_TRANSACTION_TIME] == NULL);
    CHECK(n.value[K2_F_TRANSACTION_TIMESTAMP] == NULL);
}

static void test_validate_bad_date_or_time_is_bad_request(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_DATE] = "31/4/11";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_DATE);
    CHECK(n.value[K2_F_TRANSACTION_TIMESTAMP] == NULL);

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_TIME] = "13:03";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_TIME);

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_DATE] = "26-4-11";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_DATE);
}

static void test_validate_missing_wins_over_invalid_payment(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_AC_NO] = "";
    n.value[K2_F_AMOUNT] = "1e3";
    n.value[K2_F_CURRENCY] = "USD";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_MISSING);
    CHECK_INT(n.missing_field, K2_F_AC_NO);
}

static void test_validate_bad_date_wins_over_invalid_payment(void)
{
    k2_notification_t n;

    fill_spec(&n);
    n.value[K2_F_TRANSACTION_DATE] = "0/1/11";
    n.value[K2_F_AMOUNT] = "-5";
    CHECK_RV(k2_notification_validate(&n, kes, NULL), K2_BAD_DATE);
}

static void test_reason_is_invalid_payment_only_for_k2_invalid(void)
{
    int r;

    for (r = K2_OK; r <= K2_INVALID_BILLER; r++) {
        int want = r == K2_INVALID_AMOUNT || r == K2_INVALID_CURRENCY
                   || r == K2_INVALID_BILLER;

        if (k2_reason_is_invalid_payment((k2_reason_e)r) != want) {
            fail_at(__FILE__, __LINE__, "k2_reason_is_invalid_payment(%s) "
                    "is %d, expected %d", reason_name((k2_reason_e)r),
                    !want, want);
        }
    }
}

static void test_reason_texts_are_fixed(void)
{
    CHECK_STR(k2_reason(K2_OK), "ok");
    CHECK_STR(k2_reason(K2_BAD_ESCAPE), "broken percent-encoding");
    CHECK_STR(k2_reason(K2_BAD_NUL), "NUL byte in a parameter");
    CHECK_STR(k2_reason(K2_BAD_CONTROL), "control character in a parameter");
    CHECK_STR(k2_reason(K2_BAD_UTF8), "parameter is not valid UTF-8");
    CHECK_STR(k2_reason(K2_BAD_EMPTY_NAME), "parameter with an empty name");
    CHECK_STR(k2_reason(K2_BAD_CONFLICT),
              "parameter given twice with different values");
    CHECK_STR(k2_reason(K2_BAD_MISSING), "required parameter missing or empty");
    CHECK_STR(k2_reason(K2_BAD_DATE),
              "transaction_date is not D/M/YY or D/M/YYYY");
    CHECK_STR(k2_reason(K2_BAD_TIME), "transaction_time is not H:MM AM|PM");
    CHECK_STR(k2_reason(K2_INVALID_AMOUNT),
              "amount is not a positive decimal with at most two decimals");
    CHECK_STR(k2_reason(K2_INVALID_CURRENCY), "currency not accepted");
    CHECK_STR(k2_reason(K2_INVALID_BILLER), "biller_number not accepted");
    CHECK_STR(k2_reason((k2_reason_e)99), "unknown reason");
}

/* ---- k2_field_lookup / k2_field_name ---------------------------------- */

static void test_field_names_are_the_spec_names(void)
{
    static const char *const names[K2_F_COUNT] = {
        "k2_account_id", "k2_transaction_id", "mm_system_id",
        "mp_transaction_id", "biller_number", "transaction_date",
        "transaction_time", "transaction_type", "ac_no", "sender",
        "first_name", "last_name", "middle_name", "amount", "currency",
        "transaction_timestamp", "remote_user"
    };
    int i;

    CHECK_INT(K2_F_NPARAMS, 15);
    CHECK_INT(K2_F_COUNT, 17);
    for (i = 0; i < K2_F_COUNT; i++) {
        CHECK_STR(k2_field_name(i), names[i]);
    }
}

static void test_field_names_round_trip(void)
{
    int i;

    for (i = 0; i < K2_F_COUNT; i++) {
        const char *name = k2_field_name(i);

        CHECK(name != NULL);
        if (!name) {
            continue;
        }
        CHECK_INT(k2_field_lookup(name, strlen(name), 0), i);
        CHECK_INT(k2_field_lookup(name, strlen(name), 1),
                  i < K2_F_NPARAMS ? i : -1);
    }
}

static void test_field_lookup_params_only_excludes_derived(void)
{
    CHECK_INT(k2_field_lookup("transaction_timestamp", 21, 1), -1);
    CHECK_INT(k2_field_lookup("remote_user", 11, 1), -1);
    CHECK_INT(k2_field_lookup("transaction_timestamp", 21, 0),
              K2_F_TRANSACTION_TIMESTAMP);
    CHECK_INT(k2_field_lookup("remote_user", 11, 0), K2_F_REMOTE_USER);
}

static void test_field_lookup_unknown_is_minus_one(void)
{
    CHECK_INT(k2_field_lookup("foo", 3, 0), -1);
    CHECK_INT(k2_field_lookup("", 0, 0), -1);
    CHECK_INT(k2_field_lookup("AC_NO", 5, 0), -1);
    CHECK_INT(k2_field_lookup("ac_no ", 6, 1), -1);
}

static void test_field_lookup_prefix_is_minus_one(void)
{
    CHECK_INT(k2_field_lookup("ac_n", 4, 1), -1);
    CHECK_INT(k2_field_lookup("ac_no", 4, 1), -1);
    CHECK_INT(k2_field_lookup("ac_nox", 6, 1), -1);
    CHECK_INT(k2_field_lookup("transaction", 11, 0), -1);
}

static void test_field_lookup_uses_len_not_nul(void)
{
    /* exact-size, unterminated copies */
    CHECK_INT(k2_field_lookup(heap_copy("ac_no=A1", 5), 5, 1), K2_F_AC_NO);
    CHECK_INT(k2_field_lookup(heap_copy("amount", 6), 6, 1), K2_F_AMOUNT);
}

static void test_field_name_out_of_range_is_null(void)
{
    CHECK(k2_field_name(-1) == NULL);
    CHECK(k2_field_name(K2_F_COUNT) == NULL);
}

/* ---- k2_reply_status / k2_reply_error --------------------------------- */

static void test_reply_status_is_json_string(void)
{
    static const char want[] = "{\"status\":\"01\",\"description\":\"Accepted\"}";
    char buf[128];

    CHECK_INT(k2_reply_status(K2_STATUS_ACCEPTED, buf, sizeof(buf)),
              sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_status_account_not_found(void)
{
    static const char want[] =
        "{\"status\":\"02\",\"description\":\"Account not Found\"}";
    char buf[128];

    CHECK_INT(k2_reply_status(K2_STATUS_ACCOUNT_NOT_FOUND, buf, sizeof(buf)),
              sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_status_invalid_payment(void)
{
    static const char want[] =
        "{\"status\":\"03\",\"description\":\"Invalid Payment\"}";
    char buf[128];

    CHECK_INT(k2_reply_status(K2_STATUS_INVALID_PAYMENT, buf, sizeof(buf)),
              sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_status_exact_fit_needs_room_for_nul(void)
{
    static const char want[] = "{\"status\":\"01\",\"description\":\"Accepted\"}";
    size_t len = sizeof(want) - 1;
    char *buf = test_alloc(len + 1);

    CHECK_INT(k2_reply_status(K2_STATUS_ACCEPTED, buf, len + 1), len);
    CHECK_STR(buf, want);
    CHECK_INT(k2_reply_status(K2_STATUS_ACCEPTED, test_alloc(len), len), 0);
}

static void test_reply_status_too_small_buffer_is_zero(void)
{
    char buf[16];

    CHECK_INT(k2_reply_status(K2_STATUS_ACCEPTED, buf, sizeof(buf)), 0);
    CHECK_INT(k2_reply_status(K2_STATUS_ACCEPTED, buf, 1), 0);
}

static void test_status_codes_and_descriptions(void)
{
    CHECK_STR(k2_status_code(K2_STATUS_ACCEPTED), "01");
    CHECK_STR(k2_status_code(K2_STATUS_ACCOUNT_NOT_FOUND), "02");
    CHECK_STR(k2_status_code(K2_STATUS_INVALID_PAYMENT), "03");
    CHECK_STR(k2_status_description(K2_STATUS_ACCEPTED), "Accepted");
    CHECK_STR(k2_status_description(K2_STATUS_ACCOUNT_NOT_FOUND),
              "Account not Found");
    CHECK_STR(k2_status_description(K2_STATUS_INVALID_PAYMENT),
              "Invalid Payment");
}

static void test_reply_error_with_reason(void)
{
    static const char want[] = "{\"description\":\"Bad Request\",\"reason\":\"x\"}";
    char buf[128];

    CHECK_INT(k2_reply_error("Bad Request", "x", buf, sizeof(buf)),
              sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_webhook_names_the_outcome(void)
{
    static const char want[] = "{\"description\":\"OK\",\"outcome\":\"ignored\"}";
    char buf[sizeof(want)];

    CHECK_INT(k2_reply_webhook("ignored", buf, sizeof(buf)), sizeof(want) - 1);
    CHECK_STR(buf, want);
    CHECK_INT(k2_reply_webhook("ignored", buf, sizeof(want) - 1), 0);
}

static void test_reply_error_null_reason_omits_key(void)
{
    static const char want[] = "{\"description\":\"Bad Request\"}";
    char buf[128];

    CHECK_INT(k2_reply_error("Bad Request", NULL, buf, sizeof(buf)),
              sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_error_reason_is_json_escaped(void)
{
    static const char want[] =
        "{\"description\":\"Bad Request\",\"reason\":\"say \\\"hi\\\"\\nnow\\\\\"}";
    char buf[128];

    CHECK_INT(k2_reply_error("Bad Request", "say \"hi\"\nnow\\", buf,
                             sizeof(buf)), sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_error_keeps_utf8_reason(void)
{
    static const char want[] =
        "{\"description\":\"Bad Request\",\"reason\":\"Wanjir\xC5\xA9\"}";
    char buf[128];

    CHECK_INT(k2_reply_error("Bad Request", "Wanjir\xC5\xA9", buf,
                             sizeof(buf)), sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_error_with_k2_reason_text(void)
{
    static const char want[] = "{\"description\":\"Bad Request\","
        "\"reason\":\"parameter given twice with different values\"}";
    char buf[256];

    CHECK_INT(k2_reply_error("Bad Request", k2_reason(K2_BAD_CONFLICT), buf,
                             sizeof(buf)), sizeof(want) - 1);
    CHECK_STR(buf, want);
}

static void test_reply_error_too_small_buffer_is_zero(void)
{
    static const char want[] = "{\"description\":\"Bad Request\",\"reason\":\"x\"}";
    size_t len = sizeof(want) - 1;

    CHECK_INT(k2_reply_error("Bad Request", "x", test_alloc(len), len), 0);
    CHECK_INT(k2_reply_error("Bad Request", "x", test_alloc(len + 1), len + 1),
              len);
}

/* ---- k2_form_parse's pair callback ------------------------------------ */

/* The pairs a parse reported, in order. */
typedef struct {
    k2_pair_t pair[32];
    size_t n;
} pair_log_t;

static void log_pair(void *baton, const char *name, const char *value)
{
    pair_log_t *log = baton;

    if (log->n < sizeof(log->pair) / sizeof(log->pair[0])) {
        log->pair[log->n].name = name;
        log->pair[log->n].value = value;
    }
    log->n++;
}

/* Like PARSE, reporting every pair to log. */
#define PARSE_PAIRS(n, lit, log) \
    parse_len_cb(n, lit, sizeof(lit) - 1, log_pair, log)

#define CHECK_PAIR(log, i, want_name, want_value) \
    do { \
        CHECK_STR((log)->pair[i].name, want_name); \
        CHECK_STR((log)->pair[i].value, want_value); \
    } while (0)

static void test_parse_reports_every_pair_known_or_not_in_order(void)
{
    k2_notification_t n;
    pair_log_t log = { .n = 0 };

    k2_notification_init(&n);
    CHECK_RV(PARSE_PAIRS(&n, "foo=1&ac_no=A1&x&&b=%26%3D+c&signature=s%2B%3D",
                         &log), K2_OK);
    CHECK_INT(log.n, 5);
    CHECK_PAIR(&log, 0, "foo", "1");
    CHECK_PAIR(&log, 1, "ac_no", "A1");
    CHECK_PAIR(&log, 2, "x", "");
    CHECK_PAIR(&log, 3, "b", "&= c");
    CHECK_PAIR(&log, 4, "signature", "s+=");
    CHECK_ONLY_FIELD(&n, K2_F_AC_NO, "A1");
}

static void test_parse_reports_repeated_pairs_each_time(void)
{
    k2_notification_t n;
    pair_log_t log = { .n = 0 };

    k2_notification_init(&n);
    CHECK_RV(PARSE_PAIRS(&n, "amount=5&amount=5&foo=1&foo=2", &log), K2_OK);
    CHECK_INT(log.n, 4);
    CHECK_PAIR(&log, 1, "amount", "5");
    CHECK_PAIR(&log, 3, "foo", "2");
}

static void test_parse_reports_pairs_up_to_the_first_error(void)
{
    k2_notification_t n;
    pair_log_t log = { .n = 0 };

    k2_notification_init(&n);
    CHECK_RV(PARSE_PAIRS(&n, "a=1&b=%ZZ&c=3", &log), K2_BAD_ESCAPE);
    CHECK_INT(log.n, 1);
    CHECK_PAIR(&log, 0, "a", "1");
}

static void test_parse_reports_query_and_body_pairs_together(void)
{
    k2_notification_t n;
    pair_log_t log = { .n = 0 };

    k2_notification_init(&n);
    CHECK_RV(PARSE_PAIRS(&n, "signature=abc", &log), K2_OK);
    CHECK_RV(PARSE_PAIRS(&n, "ac_no=A1", &log), K2_OK);
    CHECK_INT(log.n, 2);
    CHECK_PAIR(&log, 0, "signature", "abc");
    CHECK_PAIR(&log, 1, "ac_no", "A1");
}

/* ---- k2_signature_base ------------------------------------------------ */

/* The base string of pairs into a buffer of exactly size bytes (heap). */
static char *base_of(const k2_pair_t *pairs, size_t n, size_t size,
                     size_t *len)
{
    char *out = test_alloc(size);

    memset(out, 'X', size);
    *len = k2_signature_base(pairs, n, out, size);
    return out;
}

static void check_base_(const char *file, int line, const k2_pair_t *pairs,
                        size_t n, const char *want)
{
    size_t len, wlen = strlen(want);
    const char *out = base_of(pairs, n, wlen + 1, &len);

    if (len != wlen) {
        fail_at(file, line, "k2_signature_base is %zu, expected %zu", len, wlen);
    }
    check_str_(file, line, "k2_signature_base out", out, want);
}

#define NPAIRS(a) (sizeof(a) / sizeof((a)[0]))
#define CHECK_BASE(pairs, want) \
    check_base_(__FILE__, __LINE__, pairs, NPAIRS(pairs), want)

static void test_signature_base_k2_doc_example(void)
{
    /* K2's documentation: a=param2, c=param3, b=param1 */
    static const k2_pair_t pairs[] = {
        { "a", "param2" }, { "c", "param3" }, { "b", "param1" }
    };

    CHECK_BASE(pairs, "a=param2&b=param1&c=param3");
}

static void test_signature_base_leaves_out_the_signature(void)
{
    static const k2_pair_t first[] = {
        { "signature", "1FsEdrHdictgEKN+58rd6gh1wJI=" },
        { "a", "param2" }, { "c", "param3" }, { "b", "param1" }
    };
    static const k2_pair_t middle[] = {
        { "a", "param2" }, { "signature", "x" }, { "c", "param3" },
        { "b", "param1" }
    };
    static const k2_pair_t last[] = {
        { "a", "param2" }, { "c", "param3" }, { "b", "param1" },
        { "signature", "" }
    };
    /* only the exact name: these are ordinary parameters */
    static const k2_pair_t lookalikes[] = {
        { "Signature", "1" }, { "signatures", "2" }, { "signatur", "3" }
    };

    CHECK_BASE(first, "a=param2&b=param1&c=param3");
    CHECK_BASE(middle, "a=param2&b=param1&c=param3");
    CHECK_BASE(last, "a=param2&b=param1&c=param3");
    CHECK_BASE(lookalikes, "Signature=1&signatur=3&signatures=2");
}

static void test_signature_base_sorts_by_name_in_byte_order(void)
{
    static const k2_pair_t pairs[] = {
        { "amount", "1500" }, { "ac_no", "A1" }, { "ac", "x" },
        { "Z", "upper" }, { "a", "1" }, { "_", "u" }
    };

    /* 'Z' (0x5A) < '_' (0x5F) < 'a'; a prefix sorts first */
    CHECK_BASE(pairs, "Z=upper&_=u&a=1&ac=x&ac_no=A1&amount=1500");
}

static void test_signature_base_sorts_by_name_not_by_name_value_string(void)
{
    /* Sorting the joined "name=value" strings would put "a-b=1" before
     * "a=zzz" ('-' 0x2D < '=' 0x3D); by name, the prefix "a" comes first. */
    static const k2_pair_t pairs[] = {
        { "a_b", "2" }, { "a", "zzz" }, { "a-b", "1" }
    };

    CHECK_BASE(pairs, "a=zzz&a-b=1&a_b=2");
}

static void test_signature_base_sorts_equal_names_by_value(void)
{
    static const k2_pair_t pairs[] = {
        { "foo", "2" }, { "bar", "x" }, { "foo", "10" }, { "foo", "1" }
    };

    CHECK_BASE(pairs, "bar=x&foo=1&foo=10&foo=2");
}

static void test_signature_base_writes_exact_duplicates_once(void)
{
    /* the same parameter in the query string and in the body */
    static const k2_pair_t pairs[] = {
        { "amount", "1500" }, { "foo", "1" }, { "amount", "1500" },
        { "foo", "2" }, { "foo", "1" }, { "signature", "s" },
        { "signature", "s" }
    };

    CHECK_BASE(pairs, "amount=1500&foo=1&foo=2");
}

static void test_signature_base_includes_unknown_params(void)
{
    static const k2_pair_t pairs[] = {
        { "ac_no", "A1" }, { "k2_extra", "new in v2" }, { "amount", "10" }
    };

    CHECK_BASE(pairs, "ac_no=A1&amount=10&k2_extra=new in v2");
}

static void test_signature_base_joins_decoded_values_raw(void)
{
    /* a value holding '&' or '=' once decoded is not re-encoded */
    static const k2_pair_t pairs[] = {
        { "sender", "c=d&e" }, { "a", "x y+%" },
        { "first_name", "Wanjir\xC5\xA9" }, { "middle_name", "" }
    };

    CHECK_BASE(pairs, "a=x y+%&first_name=Wanjir\xC5\xA9&middle_name="
                      "&sender=c=d&e");
}

static void test_signature_base_from_the_parsed_spec_example(void)
{
    k2_notification_t n;
    pair_log_t log = { .n = 0 };

    k2_notification_init(&n);
    CHECK_RV(PARSE_PAIRS(&n, spec_body, &log), K2_OK);
    CHECK_INT(log.n, 15);
    check_base_(__FILE__, __LINE__, log.pair, log.n,
                "ac_no=A123333&amount=1500&biller_number=888555&currency=KES"
                "&first_name=John&k2_account_id=12&k2_transaction_id=15"
                "&last_name=Doe&middle_name=K.&mm_system_id=M-PESA"
                "&mp_transaction_id=54445&sender=0723456789"
                "&transaction_date=26/4/11&transaction_time=1:03 PM"
                "&transaction_type=Paybill");
}

static void test_signature_base_does_not_reorder_the_pairs(void)
{
    k2_pair_t pairs[] = {
        { "c", "3" }, { "a", "1" }, { "b", "2" }
    };
    size_t len;

    CHECK_STR(base_of(pairs, 3, 32, &len), "a=1&b=2&c=3");
    CHECK_STR(pairs[0].name, "c");
    CHECK_STR(pairs[1].name, "a");
    CHECK_STR(pairs[2].name, "b");
}

static void test_signature_base_too_small_buffer_is_zero(void)
{
    static const k2_pair_t pairs[] = {
        { "a", "param2" }, { "c", "param3" }, { "b", "param1" }
    };
    static const char want[] = "a=param2&b=param1&c=param3";
    size_t len, wlen = sizeof(want) - 1, size;
    char *out;

    out = base_of(pairs, 3, wlen + 1, &len);        /* exact fit */
    CHECK_INT(len, wlen);
    CHECK_STR(out, want);
    for (size = 0; size <= wlen; size++) {          /* no room for the NUL */
        out = base_of(pairs, 3, size, &len);
        CHECK_INT(len, 0);
        if (size > 0 && out[0] != '\0') {
            fail_at(__FILE__, __LINE__, "size %zu: out is not empty", size);
        }
    }
}

static void test_signature_base_with_nothing_but_a_signature_is_zero(void)
{
    static const k2_pair_t pairs[] = { { "signature", "x" } };
    size_t len;

    CHECK_STR(base_of(pairs, 1, 16, &len), "");
    CHECK_INT(len, 0);
    CHECK_STR(base_of(pairs, 0, 16, &len), "");
    CHECK_INT(len, 0);
}

/* ---- k2_signature_valid ----------------------------------------------- */

/* Test vectors computed independently of this code, with OpenSSL's command
 * line and coreutils' base64 (the command is above each vector). */

/* printf '%s' 'a=param2&b=param1&c=param3' \
 *   | openssl dgst -sha1 -hmac 'secret-key' -binary | base64 */
#define DOC_BASE "a=param2&b=param1&c=param3"
#define DOC_KEY "secret-key"
#define DOC_SIG "1FsEdrHdictgEKN+58rd6gh1wJI="

/* The spec's example, sorted:
 * printf '%s' 'ac_no=A123333&amount=1500&biller_number=888555&currency=KES&first_name=John&k2_account_id=12&k2_transaction_id=15&last_name=Doe&middle_name=K.&mm_system_id=M-PESA&mp_transaction_id=54445&sender=0723456789&transaction_date=26/4/11&transaction_time=1:03 PM&transaction_type=Paybill' \
 *   | openssl dgst -sha1 -hmac 'k2-api-key-0123456789' -binary | base64 */
#define SPEC_BASE \
    "ac_no=A123333&amount=1500&biller_number=888555&currency=KES" \
    "&first_name=John&k2_account_id=12&k2_transaction_id=15" \
    "&last_name=Doe&middle_name=K.&mm_system_id=M-PESA" \
    "&mp_transaction_id=54445&sender=0723456789" \
    "&transaction_date=26/4/11&transaction_time=1:03 PM" \
    "&transaction_type=Paybill"
#define SPEC_KEY "k2-api-key-0123456789"
#define SPEC_SIG "Vg84d+pk9u4IntiwqW7ogndyAjM="

/* k2_signature_valid over exact-size, unterminated copies. */
static int sig_valid(const char *base, const char *key, size_t keylen,
                     const char *signature)
{
    size_t len = strlen(base);

    return k2_signature_valid(heap_copy(base, len), len,
                              (const unsigned char *)heap_copy(key, keylen),
                              keylen, heap_str(signature));
}

#define SIG_VALID(base, key, signature) \
    sig_valid(base, key, sizeof(key) - 1, signature)

static void test_signature_valid_k2_doc_example_vector(void)
{
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, DOC_SIG), 1);
}

static void test_signature_valid_spec_example_vector(void)
{
    CHECK_INT(SIG_VALID(SPEC_BASE, SPEC_KEY, SPEC_SIG), 1);
}

static void test_signature_valid_rfc2202_hmac_sha1_case_2(void)
{
    /* RFC 2202, test case 2: digest effcdf6ae5eb2fa2d27416d5f184df9c259a7c79
     * printf 'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79' | xxd -r -p | base64 */
    CHECK_INT(SIG_VALID("what do ya want for nothing?", "Jefe",
                        "7/zfauXrL6LSdBbV8YTfnCWafHk="), 1);
}

static void test_signature_valid_rfc2202_hmac_sha1_case_6_long_key(void)
{
    /* RFC 2202, test case 6: an 80-byte key, longer than SHA-1's block,
     * is hashed first; digest aa4ae5e15272d00e95705637ce8a3b55ed402112
     * printf 'aa4ae5e15272d00e95705637ce8a3b55ed402112' | xxd -r -p | base64 */
    char key[80];

    memset(key, 0xAA, sizeof(key));
    CHECK_INT(sig_valid("Test Using Larger Than Block-Size Key - Hash Key First",
                        key, sizeof(key), "qkrl4VJy0A6VcFY3zoo7Ve1AIRI="), 1);
}

static void test_signature_valid_rejects_a_wrong_signature(void)
{
    /* the right one with one character changed, first, middle or last */
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "2FsEdrHdictgEKN+58rd6gh1wJI="), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKn+58rd6gh1wJI="), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJA="), 0);
    /* base64 is case-sensitive */
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1fSeDRhDICTGekn+58RD6GH1WJi="), 0);
    /* another notification's signature */
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, SPEC_SIG), 0);
}

static void test_signature_valid_rejects_other_data_or_key(void)
{
    /* the amount changed after signing */
    static const char tampered[] =
        "ac_no=A123333&amount=15000&biller_number=888555&currency=KES"
        "&first_name=John&k2_account_id=12&k2_transaction_id=15"
        "&last_name=Doe&middle_name=K.&mm_system_id=M-PESA"
        "&mp_transaction_id=54445&sender=0723456789"
        "&transaction_date=26/4/11&transaction_time=1:03 PM"
        "&transaction_type=Paybill";

    CHECK_INT(SIG_VALID(tampered, SPEC_KEY, SPEC_SIG), 0);
    /* unsorted, or with the signature in its own base string */
    CHECK_INT(SIG_VALID("a=param2&c=param3&b=param1", DOC_KEY, DOC_SIG), 0);
    CHECK_INT(SIG_VALID(DOC_BASE "&signature=" DOC_SIG, DOC_KEY, DOC_SIG), 0);
    /* another key, a key with its newline, a key one byte short */
    CHECK_INT(SIG_VALID(DOC_BASE, "secret-kez", DOC_SIG), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, "secret-key\n", DOC_SIG), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, "secret-ke", DOC_SIG), 0);
}

/* Issue 19: every one of the 28 characters is compared, the padding too.
 * The 28th is always base64's '=' (20 bytes), so a comparison that stops at
 * 27 has no security effect, but it accepts strings that are no base64 of
 * the digest: the contract is the whole signature. */
static void test_signature_valid_compares_all_28_characters_the_padding_too(void)
{
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJI="), 1);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJIA"), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJI "), 0);
    CHECK_INT(SIG_VALID(SPEC_BASE, SPEC_KEY, "Vg84d+pk9u4IntiwqW7ogndyAjM"
                        "\x01"), 0);
}

static void test_signature_valid_rejects_a_wrong_length(void)
{
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJI"), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJI=="), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "1FsEdrHdictgEKN+58rd6gh1wJI= "), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, " 1FsEdrHdictgEKN+58rd6gh1wJI="), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, ""), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, NULL), 0);
    /* the hex digest, and the hex digest base64-encoded (other receivers'
     * mistakes):
     * printf '%s' 'a=param2&b=param1&c=param3' \
     *   | openssl dgst -sha1 -hmac 'secret-key' -r | cut -c1-40 */
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY,
                        "d45b0476b1dd89cb6010a37ee7caddea0875c092"), 0);
    CHECK_INT(SIG_VALID(DOC_BASE, DOC_KEY, "ZDQ1YjA0NzZiMWRkODljYjYwMTBhMzdl"
                        "ZTdjYWRkZWEwODc1YzA5Mg=="), 0);
}

static void test_signature_valid_stops_at_len_of_base(void)
{
    /* base is (buffer, length): bytes past len are not signed */
    static const char longer[] = DOC_BASE "&d=param4";

    CHECK_INT(k2_signature_valid(heap_copy(longer, sizeof(longer) - 1),
                                 sizeof(DOC_BASE) - 1,
                                 (const unsigned char *)DOC_KEY,
                                 sizeof(DOC_KEY) - 1, DOC_SIG), 1);
    CHECK_INT(k2_signature_valid(heap_copy(longer, sizeof(longer) - 1),
                                 sizeof(longer) - 1,
                                 (const unsigned char *)DOC_KEY,
                                 sizeof(DOC_KEY) - 1, DOC_SIG), 0);
}

static void test_signature_valid_refuses_an_empty_key(void)
{
    /* printf '%s' 'a=param2&b=param1&c=param3' \
     *   | openssl dgst -sha1 -mac HMAC -macopt hexkey: -binary | base64
     * would be the HMAC under an empty key: the glue never has one */
    CHECK_INT(k2_signature_valid(DOC_BASE, sizeof(DOC_BASE) - 1,
                                 (const unsigned char *)"", 0, DOC_SIG), 0);
}

static void test_signature_base_then_valid_round_trip(void)
{
    static const k2_pair_t pairs[] = {
        { "c", "param3" }, { "signature", DOC_SIG }, { "b", "param1" },
        { "a", "param2" }, { "a", "param2" }
    };
    char out[64];
    size_t len = k2_signature_base(pairs, NPAIRS(pairs), out, sizeof(out));

    CHECK_INT(len, sizeof(DOC_BASE) - 1);
    CHECK_INT(k2_signature_valid(out, len, (const unsigned char *)DOC_KEY,
                                 sizeof(DOC_KEY) - 1, DOC_SIG), 1);
}

/* ---- runner ----------------------------------------------------------- */

UNIT_SUITE(k2,
    T(test_decode_plain_is_unchanged),
    T(test_decode_empty_is_empty),
    T(test_decode_plus_is_space),
    T(test_decode_percent_20_is_space),
    T(test_decode_percent_2b_is_plus),
    T(test_decode_hex_is_case_insensitive),
    T(test_decode_percent_escape_of_percent),
    T(test_decode_rejects_non_hex_escape),
    T(test_decode_rejects_short_escape),
    T(test_decode_rejects_trailing_percent),
    T(test_decode_rejects_lone_percent),
    T(test_decode_escape_is_bounded_by_len),
    T(test_decode_rejects_percent_00),
    T(test_decode_rejects_raw_nul_mid_buffer),
    T(test_decode_rejects_encoded_crlf),
    T(test_decode_rejects_raw_crlf),
    T(test_decode_rejects_tab),
    T(test_decode_rejects_del),
    T(test_decode_rejects_other_c0_controls),
    T(test_decode_accepts_space_and_tilde_bounds),
    T(test_decode_accepts_utf8_2_byte),
    T(test_decode_accepts_utf8_3_byte),
    T(test_decode_accepts_utf8_4_byte),
    T(test_decode_utf8_may_mix_raw_and_encoded_bytes),
    T(test_decode_rejects_lone_continuation),
    T(test_decode_rejects_overlong_c0_af),
    T(test_decode_rejects_overlong_e0_80_af),
    T(test_decode_rejects_truncated_utf8_at_end),
    T(test_decode_rejects_surrogate),
    T(test_decode_rejects_past_u10ffff),
    T(test_decode_rejects_f5),
    T(test_decode_every_prefix_stays_within_len),
    T(test_decode_long_input_exact_buffers),
    T(test_decode_output_uses_all_len_plus_1),

    T(test_utf8_accepts_empty_and_ascii),
    T(test_utf8_nul_is_valid_utf8),
    T(test_utf8_accepts_2_3_4_byte_sequences),
    T(test_utf8_accepts_range_bounds),
    T(test_utf8_rejects_lone_continuation),
    T(test_utf8_rejects_overlong_2_byte),
    T(test_utf8_rejects_overlong_3_byte),
    T(test_utf8_rejects_overlong_4_byte),
    T(test_utf8_rejects_truncated_sequence),
    T(test_utf8_rejects_surrogates),
    T(test_utf8_rejects_past_u10ffff),
    T(test_utf8_rejects_f5_to_ff),
    T(test_utf8_is_bounded_by_len),

    T(test_parse_spec_example_sets_all_15_fields),
    T(test_parse_spec_example_validates),
    T(test_parse_ignores_unknown_params),
    T(test_parse_name_is_case_sensitive),
    T(test_parse_ignores_derived_field_names),
    T(test_parse_skips_empty_segments),
    T(test_parse_empty_body_sets_nothing),
    T(test_parse_empty_name_is_bad_request),
    T(test_parse_name_without_equals_is_empty_value),
    T(test_parse_name_with_equals_and_nothing_is_empty_value),
    T(test_parse_value_keeps_later_equals),
    T(test_parse_same_value_twice_is_ok),
    T(test_parse_duplicate_compares_decoded_values),
    T(test_parse_conflicting_duplicate_is_bad_request),
    T(test_parse_empty_then_value_is_conflict),
    T(test_parse_query_then_body_conflict_across_sources),
    T(test_parse_query_then_body_same_values_merge),
    T(test_parse_percent_3d_in_name_is_unknown_name),
    T(test_parse_encoded_name_sets_field),
    T(test_parse_decode_errors_in_value_are_bad_request),
    T(test_parse_decode_errors_in_name_are_bad_request),
    T(test_parse_bad_value_of_unknown_param_is_bad_request),
    T(test_parse_raw_nul_in_body_is_bad_request),
    T(test_parse_scratch_len_plus_1_is_enough),
    T(test_parse_values_are_decoded_utf8),

    T(test_amount_accepts_integer),
    T(test_amount_accepts_one_or_two_decimals),
    T(test_amount_accepts_leading_zeros),
    T(test_amount_accepts_15_digit_integer_part),
    T(test_amount_rejects_16_digit_integer_part),
    T(test_amount_equal_ignores_leading_and_trailing_zeros),
    T(test_amount_equal_tells_different_amounts_apart),
    T(test_amount_equal_more_cents_than_the_other_is_another_amount),
    T(test_amount_equal_refuses_what_is_not_a_plain_decimal),
    T(test_amount_rejects_zero),
    T(test_amount_rejects_sign),
    T(test_amount_rejects_exponent),
    T(test_amount_rejects_thousands_separator),
    T(test_amount_rejects_three_decimals),
    T(test_amount_rejects_whitespace),
    T(test_amount_rejects_missing_digits_around_dot),
    T(test_amount_rejects_empty_and_letters),
    T(test_amount_rejects_double_dot),

    T(test_timestamp_spec_example),
    T(test_timestamp_two_digit_year_is_20yy),
    T(test_timestamp_four_digit_year),
    T(test_timestamp_padded_parts_accepted),
    T(test_timestamp_12_am_is_midnight),
    T(test_timestamp_12_pm_is_noon),
    T(test_timestamp_am_and_pm_hours),
    T(test_timestamp_meridiem_is_case_insensitive),
    T(test_timestamp_leap_day),
    T(test_timestamp_rejects_feb_29_of_common_year),
    T(test_timestamp_rejects_day_past_month_end),
    T(test_timestamp_rejects_day_or_month_out_of_range),
    T(test_timestamp_rejects_year_not_2_or_4_digits),
    T(test_timestamp_rejects_year_before_1970),
    T(test_timestamp_rejects_other_date_separators),
    T(test_timestamp_rejects_malformed_date),
    T(test_timestamp_rejects_hour_out_of_range),
    T(test_timestamp_rejects_minute_not_2_digits),
    T(test_timestamp_rejects_minute_60),
    T(test_timestamp_rejects_missing_or_double_space),
    T(test_timestamp_rejects_bad_meridiem),
    T(test_timestamp_rejects_24_hour_time),
    T(test_timestamp_rejects_empty_time),
    T(test_timestamp_date_only_is_ok_and_empty),
    T(test_timestamp_time_only_is_ok_and_empty),
    T(test_timestamp_neither_is_ok_and_empty),
    T(test_timestamp_bad_date_reported_before_bad_time),

    T(test_validate_spec_example_is_ok),
    T(test_validate_missing_required_field_is_bad_request),
    T(test_validate_empty_required_field_is_bad_request),
    T(test_validate_first_missing_field_in_spec_order),
    T(test_validate_only_four_fields_required),
    T(test_validate_empty_optional_fields_become_null),
    T(test_validate_bad_amount_is_invalid_payment),
    T(test_validate_currency_not_listed_is_invalid_payment),
    T(test_validate_null_biller_list_accepts_any_biller),
    T(test_validate_biller_list_accepts_listed_biller),
    T(test_validate_biller_list_rejects_absent_biller),
    T(test_validate_biller_list_rejects_other_biller),
    T(test_validate_timestamp_needs_date_and_time),
    T(test_validate_bad_date_or_time_is_bad_request),
    T(test_validate_missing_wins_over_invalid_payment),
    T(test_validate_bad_date_wins_over_invalid_payment),
    T(test_reason_is_invalid_payment_only_for_k2_invalid),
    T(test_reason_texts_are_fixed),

    T(test_field_names_are_the_spec_names),
    T(test_field_names_round_trip),
    T(test_field_lookup_params_only_excludes_derived),
    T(test_field_lookup_unknown_is_minus_one),
    T(test_field_lookup_prefix_is_minus_one),
    T(test_field_lookup_uses_len_not_nul),
    T(test_field_name_out_of_range_is_null),

    T(test_reply_status_is_json_string),
    T(test_reply_status_account_not_found),
    T(test_reply_status_invalid_payment),
    T(test_reply_status_exact_fit_needs_room_for_nul),
    T(test_reply_status_too_small_buffer_is_zero),
    T(test_status_codes_and_descriptions),
    T(test_reply_error_with_reason),
    T(test_reply_webhook_names_the_outcome),
    T(test_reply_error_null_reason_omits_key),
    T(test_reply_error_reason_is_json_escaped),
    T(test_reply_error_keeps_utf8_reason),
    T(test_reply_error_with_k2_reason_text),
    T(test_reply_error_too_small_buffer_is_zero),

    T(test_parse_reports_every_pair_known_or_not_in_order),
    T(test_parse_reports_repeated_pairs_each_time),
    T(test_parse_reports_pairs_up_to_the_first_error),
    T(test_parse_reports_query_and_body_pairs_together),
    T(test_signature_base_k2_doc_example),
    T(test_signature_base_leaves_out_the_signature),
    T(test_signature_base_sorts_by_name_in_byte_order),
    T(test_signature_base_sorts_by_name_not_by_name_value_string),
    T(test_signature_base_sorts_equal_names_by_value),
    T(test_signature_base_writes_exact_duplicates_once),
    T(test_signature_base_includes_unknown_params),
    T(test_signature_base_joins_decoded_values_raw),
    T(test_signature_base_from_the_parsed_spec_example),
    T(test_signature_base_does_not_reorder_the_pairs),
    T(test_signature_base_too_small_buffer_is_zero),
    T(test_signature_base_with_nothing_but_a_signature_is_zero),
    T(test_signature_valid_k2_doc_example_vector),
    T(test_signature_valid_spec_example_vector),
    T(test_signature_valid_rfc2202_hmac_sha1_case_2),
    T(test_signature_valid_rfc2202_hmac_sha1_case_6_long_key),
    T(test_signature_valid_rejects_a_wrong_signature),
    T(test_signature_valid_rejects_other_data_or_key),
    T(test_signature_valid_compares_all_28_characters_the_padding_too),
    T(test_signature_valid_rejects_a_wrong_length),
    T(test_signature_valid_stops_at_len_of_base),
    T(test_signature_valid_refuses_an_empty_key),
    T(test_signature_base_then_valid_round_trip)
)
