/* test_sql.c: unit tests of k2_sql.c, the lexer that finds placeholders
 * mod_dbd would not bind (inside quotes or comments) and RETURNING. */
#include <string.h>

#include "unit.h"
#include "k2_sql.h"

/* Scan an exact-size heap copy of sql. */
static k2_sql_info_t scan(const char *sql, const char **copy)
{
    k2_sql_info_t info;

    *copy = heap_str(sql);
    k2_sql_scan(*copy, &info);
    return info;
}

/* The offset of p in copy, or -1 for NULL. */
static long at(const char *copy, const char *p)
{
    return p ? (long)(p - copy) : -1;
}

static void test_sql_counts_placeholders_like_apr_dbd_prepare(void)
{
    const char *c;
    k2_sql_info_t i = scan("INSERT INTO t VALUES (%s, %s, %s)", &c);

    CHECK_INT(i.placeholders, 3);
    CHECK(i.bad == NULL);
    CHECK(i.misplaced == NULL);
    CHECK(i.returning == NULL);
}

static void test_sql_double_percent_is_a_literal_not_a_placeholder(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a FROM t WHERE b LIKE '%%abc' AND c = %s", &c);

    CHECK_INT(i.placeholders, 1);
    CHECK(i.misplaced == NULL);
}

static void test_sql_percent_before_a_non_letter_is_not_a_placeholder(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a FROM t WHERE b LIKE 'A%' AND c = %s", &c);

    CHECK_INT(i.placeholders, 1);
    CHECK(i.misplaced == NULL);
}

static void test_sql_reports_the_first_placeholder_other_than_percent_s(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a FROM t WHERE b = %s AND c = %d AND d = %f", &c);

    CHECK_INT(i.placeholders, 3);
    CHECK_INT(at(c, i.bad), (long)(strstr(c, "%d") - c));
}

static void test_sql_single_quoted_placeholder_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("INSERT INTO t VALUES ('%s', '%s')", &c);

    CHECK_INT(i.placeholders, 2);
    CHECK_INT(at(c, i.misplaced), (long)(strstr(c, "%s") - c));
    CHECK_INT(i.where, K2_SQL_IN_STRING);
}

static void test_sql_placeholder_in_a_longer_string_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a FROM t WHERE b = 'x%sy'", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_STRING);
}

static void test_sql_double_quoted_placeholder_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT ac_no FROM accounts WHERE ac_no = \"%s\"", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_IDENTIFIER);
}

static void test_sql_backquoted_placeholder_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT `%s` FROM t", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_IDENTIFIER);
}

static void test_sql_placeholder_after_a_closed_string_is_plain(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT 'it''s' || %s, \"a\"\"b\", %s", &c);

    CHECK_INT(i.placeholders, 2);
    CHECK(i.misplaced == NULL);
}

static void test_sql_doubled_quote_does_not_end_the_string(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT 'it''s %s'", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_STRING);
}

static void test_sql_e_string_backslash_quote_does_not_end_the_string(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT E'a\\' %s'", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_STRING);
}

static void test_sql_backslash_in_a_plain_string_is_a_character(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT 'a\\' || %s", &c);

    CHECK_INT(i.placeholders, 1);
    CHECK(i.misplaced == NULL);
}

static void test_sql_placeholder_in_a_line_comment_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a FROM t -- was %s\nWHERE b = %s", &c);

    CHECK_INT(i.placeholders, 2);
    CHECK_INT(at(c, i.misplaced), (long)(strstr(c, "%s") - c));
    CHECK_INT(i.where, K2_SQL_IN_COMMENT);
}

static void test_sql_line_comment_ends_at_the_newline(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a -- note\nFROM t WHERE b = %s", &c);

    CHECK(i.misplaced == NULL);
}

static void test_sql_placeholder_in_a_block_comment_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a /* %s */ FROM t WHERE b = %s", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_COMMENT);
}

static void test_sql_dollar_quoted_placeholder_is_misplaced(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT $x$ %s $x$, %s", &c);

    CHECK_INT(i.placeholders, 2);
    CHECK_INT(at(c, i.misplaced), (long)(strstr(c, "%s") - c));
    CHECK_INT(i.where, K2_SQL_IN_DOLLAR_QUOTE);
}

static void test_sql_dollar_quote_ends_only_at_its_own_tag(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT $a$ $$ %s $a$", &c);

    CHECK(i.misplaced != NULL);
    CHECK_INT(i.where, K2_SQL_IN_DOLLAR_QUOTE);
}

static void test_sql_positional_parameter_is_not_a_dollar_quote(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT $1, %s, $2", &c);

    CHECK_INT(i.placeholders, 1);
    CHECK(i.misplaced == NULL);
}

static void test_sql_dollar_inside_an_identifier_is_not_a_quote(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT a$b$ FROM t WHERE c = %s", &c);

    CHECK(i.misplaced == NULL);
}

static void test_sql_finds_returning_in_any_case(void)
{
    const char *c;
    k2_sql_info_t i = scan("INSERT INTO t VALUES (%s) ON CONFLICT (id) DO NOTHING "
                           "ReTuRnInG id", &c);

    CHECK_INT(at(c, i.returning), (long)(strstr(c, "ReTuRnInG") - c));
}

static void test_sql_returning_in_a_string_or_a_name_is_not_a_clause(void)
{
    const char *c;
    k2_sql_info_t i = scan("INSERT INTO t (\"returning\", note) VALUES (%s, "
                           "'returning') -- returning\n", &c);

    CHECK(i.returning == NULL);
}

static void test_sql_returning_as_part_of_a_name_is_not_a_clause(void)
{
    const char *c;
    k2_sql_info_t i = scan("INSERT INTO returning_log (returning_at, xreturning) "
                           "VALUES (%s, %s)", &c);

    CHECK(i.returning == NULL);
}

static void test_sql_unterminated_string_keeps_scanning_safely(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT '%s", &c);

    CHECK_INT(i.placeholders, 1);
    CHECK_INT(i.where, K2_SQL_IN_STRING);
}

static void test_sql_trailing_percent_is_not_a_placeholder(void)
{
    const char *c;
    k2_sql_info_t i = scan("SELECT 5 %", &c);

    CHECK_INT(i.placeholders, 0);
}

/* -- the ON CONFLICT key --------------------------------------------------- */

/* key[] of sql as a string of digits, one per placeholder ("0110"), and
 * the number of key columns. */
static int conflict_key(const char *sql, int nph, char *out)
{
    int key[64], i, n;

    n = k2_sql_conflict_key(heap_str(sql), key, nph);
    for (i = 0; i < nph; i++) {
        out[i] = (char)('0' + key[i]);
    }
    out[nph] = '\0';
    return n;
}

static void test_sql_conflict_key_of_the_k2connect_sample_is_its_coalesced_event_id(void)
{
    char k[64];

    CHECK_INT(conflict_key("INSERT INTO k2_events (event_id, topic, raw_body) "
                           "VALUES (COALESCE(%s, %s), COALESCE(%s, %s), %s) "
                           "ON CONFLICT (event_id) DO NOTHING", 5, k), 1);
    CHECK_STR(k, "11000");
    /* Daraja's: TransID alone, a constant beside it */
    CHECK_INT(conflict_key("INSERT INTO k2_events (event_id, topic, reference) "
                           "VALUES (%s, 'daraja', %s) ON CONFLICT (event_id) "
                           "DO NOTHING", 2, k), 1);
    CHECK_STR(k, "10");
    /* the form API's: k2_transaction_id, not first */
    CHECK_INT(conflict_key("insert into k2_transactions (ac_no, k2_transaction_id)"
                           " values (%s, %s) on conflict (k2_transaction_id) do "
                           "nothing", 2, k), 1);
    CHECK_STR(k, "01");
}

static void test_sql_conflict_key_columns_of_a_composite_key_are_numbered(void)
{
    char k[64];

    CHECK_INT(conflict_key("INSERT INTO public.t AS x (\"A\", b, c) VALUES "
                           "(%s, %s, %s) ON CONFLICT (c, \"A\") DO NOTHING", 3, k), 2);
    CHECK_STR(k, "201");
    /* a quoted name is case-sensitive, a plain one is not */
    CHECK_INT(conflict_key("INSERT INTO t (\"Id\", v) VALUES (%s, %s) ON "
                           "CONFLICT (id) DO NOTHING", 2, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (Id, v) VALUES (%s, %s) ON "
                           "CONFLICT (ID) DO NOTHING", 2, k), 1);
    CHECK_STR(k, "10");
}

/* Found by fuzz/fuzz_sql.c: the target's columns were numbered before the
 * list turned out malformed, and those numbers were left in key[]. */
static void test_sql_conflict_key_cut_short_after_a_column_leaves_every_key_0(void)
{
    char k[64];

    CHECK_INT(conflict_key("INSERT INTO k2_events (event_id, topic) VALUES "
                           "(COALESCE(%s, %s), %s) ON CONFLICT (event_id,) DO "
                           "NOTHING", 3, k), 0);
    CHECK_STR(k, "000");
    CHECK_INT(conflict_key("INSERT INTO t (id, v) VALUES (%s, %s) ON CONFLICT "
                           "(id", 2, k), 0);
    CHECK_STR(k, "00");
}

static void test_sql_conflict_key_value_of_another_shape_is_not_judged(void)
{
    char k[64];

    /* NULL only if all are: COALESCE with a constant never is */
    CHECK_INT(conflict_key("INSERT INTO t (id, v) VALUES (COALESCE(%s, 'x'), %s)"
                           " ON CONFLICT (id) DO NOTHING", 2, k), 0);
    CHECK_STR(k, "00");
    CHECK_INT(conflict_key("INSERT INTO t (id, v) VALUES (CAST(%s AS text), %s)"
                           " ON CONFLICT (id) DO NOTHING", 2, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id, v) VALUES ('k2-' || %s, %s)"
                           " ON CONFLICT (id) DO NOTHING", 2, k), 0);
    /* the value of another column is still counted: v's placeholders */
    CHECK_INT(conflict_key("INSERT INTO t (v, id) VALUES (lower(%s), %s) "
                           "ON CONFLICT (id) DO NOTHING", 2, k), 1);
    CHECK_STR(k, "01");
}

static void test_sql_conflict_key_is_unknown_for_statements_without_one(void)
{
    char k[64];

    CHECK_INT(conflict_key("INSERT OR IGNORE INTO t (id) VALUES (%s)", 1, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id) VALUES (%s) ON DUPLICATE KEY "
                           "UPDATE id = id", 1, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id) VALUES (%s), (%s) ON CONFLICT "
                           "(id) DO NOTHING", 2, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id) SELECT %s ON CONFLICT (id) DO "
                           "NOTHING", 1, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id) VALUES (%s) ON CONFLICT ON "
                           "CONSTRAINT t_pkey DO NOTHING", 1, k), 0);
    CHECK_INT(conflict_key("UPDATE t SET v = %s WHERE id = %s", 2, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id, v) VALUES (%s)", 1, k), 0);
    CHECK_INT(conflict_key("", 0, k), 0);
    CHECK_INT(conflict_key("INSERT INTO t (id", 0, k), 0);
}

static void test_sql_conflict_key_skips_comments_strings_and_literal_percents(void)
{
    char k[64];

    CHECK_INT(conflict_key("-- the events\nINSERT /* here */ INTO t (note, id) "
                           "VALUES ('a, (b)', %s) ON CONFLICT ( id ) DO NOTHING",
                           1, k), 1);
    CHECK_STR(k, "1");
    CHECK_INT(conflict_key("INSERT INTO t (v, id) VALUES ('100%%s' || %s, %s) "
                           "ON CONFLICT (id) DO NOTHING", 2, k), 1);
    CHECK_STR(k, "01");
}

static void test_sql_insert_or_clause_is_named_whatever_its_case_and_comments(void)
{
    CHECK_STR(k2_sql_insert_or(heap_str("INSERT OR IGNORE INTO t (id) VALUES (%s)")),
              "IGNORE");
    CHECK_STR(k2_sql_insert_or(heap_str("-- x\n  insert /* y */ or replace into t "
                                        "(id) VALUES (%s)")), "REPLACE");
    CHECK_STR(k2_sql_insert_or(heap_str("Replace Into t (id) VALUES (%s)")),
              "REPLACE");
    CHECK_STR(k2_sql_insert_or(heap_str("INSERT OR ROLLBACK INTO t (id) VALUES (%s)")),
              "ROLLBACK");
}

static void test_sql_insert_without_or_clause_has_none(void)
{
    CHECK(k2_sql_insert_or(heap_str("INSERT INTO t (id) VALUES (%s) ON CONFLICT "
                                    "(id) DO NOTHING")) == NULL);
    CHECK(k2_sql_insert_or(heap_str("INSERT INTO \"or\" (id) VALUES (%s)")) == NULL);
    CHECK(k2_sql_insert_or(heap_str("INSERT INTO t (note) VALUES ('or ignore')"))
          == NULL);
    CHECK(k2_sql_insert_or(heap_str("UPDATE t SET x = %s")) == NULL);
}

UNIT_SUITE(sql,
    T(test_sql_insert_or_clause_is_named_whatever_its_case_and_comments),
    T(test_sql_insert_without_or_clause_has_none),
    T(test_sql_conflict_key_of_the_k2connect_sample_is_its_coalesced_event_id),
    T(test_sql_conflict_key_columns_of_a_composite_key_are_numbered),
    T(test_sql_conflict_key_value_of_another_shape_is_not_judged),
    T(test_sql_conflict_key_cut_short_after_a_column_leaves_every_key_0),
    T(test_sql_conflict_key_is_unknown_for_statements_without_one),
    T(test_sql_conflict_key_skips_comments_strings_and_literal_percents),
    T(test_sql_counts_placeholders_like_apr_dbd_prepare),
    T(test_sql_double_percent_is_a_literal_not_a_placeholder),
    T(test_sql_percent_before_a_non_letter_is_not_a_placeholder),
    T(test_sql_reports_the_first_placeholder_other_than_percent_s),
    T(test_sql_single_quoted_placeholder_is_misplaced),
    T(test_sql_placeholder_in_a_longer_string_is_misplaced),
    T(test_sql_double_quoted_placeholder_is_misplaced),
    T(test_sql_backquoted_placeholder_is_misplaced),
    T(test_sql_placeholder_after_a_closed_string_is_plain),
    T(test_sql_doubled_quote_does_not_end_the_string),
    T(test_sql_e_string_backslash_quote_does_not_end_the_string),
    T(test_sql_backslash_in_a_plain_string_is_a_character),
    T(test_sql_placeholder_in_a_line_comment_is_misplaced),
    T(test_sql_line_comment_ends_at_the_newline),
    T(test_sql_placeholder_in_a_block_comment_is_misplaced),
    T(test_sql_dollar_quoted_placeholder_is_misplaced),
    T(test_sql_dollar_quote_ends_only_at_its_own_tag),
    T(test_sql_positional_parameter_is_not_a_dollar_quote),
    T(test_sql_dollar_inside_an_identifier_is_not_a_quote),
    T(test_sql_finds_returning_in_any_case),
    T(test_sql_returning_in_a_string_or_a_name_is_not_a_clause),
    T(test_sql_returning_as_part_of_a_name_is_not_a_clause),
    T(test_sql_unterminated_string_keeps_scanning_safely),
    T(test_sql_trailing_percent_is_not_a_placeholder)
)
