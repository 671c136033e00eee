/* test_mysql.c: unit tests of k2_mysql.c, configtest's reading of a mysql
 * DBDParams (as apr-util's driver parses it) and of a record statement (by
 * MySQL's lexical rules). */
#include <string.h>

#include "unit.h"
#include "k2_mysql.h"

typedef void (*k2_check_fn)(const char *, k2_mysql_finding_t *);

/* Check an exact-size heap copy of text; *what is the text at fault (or
 * "" when none), in a static buffer. */
static k2_mysql_problem_e check(k2_check_fn fn, const char *text,
                                const char **what)
{
    static char buf[256];
    k2_mysql_finding_t f;
    const char *copy = heap_str(text);

    fn(copy, &f);
    buf[0] = '\0';
    if (f.problem != K2_MYSQL_OK) {
        size_t n = f.len < sizeof(buf) - 1 ? f.len : sizeof(buf) - 1;

        CHECK(f.at >= copy && f.at + f.len <= copy + strlen(copy));
        memcpy(buf, f.at, n);
        buf[n] = '\0';
    }
    *what = buf;
    return f.problem;
}

static k2_mysql_problem_e params(const char *text, const char **what)
{
    return check(k2_mysql_params_check, text, what);
}

static k2_mysql_problem_e record(const char *text, const char **what)
{
    return check(k2_mysql_record_check, text, what);
}

/* -- DBDParams ---------------------------------------------------------------- */

static void test_mysql_params_the_samples_pass(void)
{
    const char *w;

    CHECK_INT(params("host=127.0.0.1 port=3306 user=k2notify pass=S3cret-x "
                     "dbname=k2", &w), K2_MYSQL_OK);
    CHECK_INT(params("host=db.example.internal;user=k2notify;pass=S;dbname=k2;"
                     "group=k2notify", &w), K2_MYSQL_OK);
    CHECK_INT(params("sock=/run/mysqld/mysqld.sock user=k2 pass=x db=k2 "
                     "reconnect=0 fldsz=4096", &w), K2_MYSQL_OK);
    CHECK_INT(params("", &w), K2_MYSQL_OK);
}

static void test_mysql_params_a_key_is_matched_by_prefix_as_the_driver_does(void)
{
    const char *w;

    CHECK_INT(params("h=127.0.0.1 u=k2 p=x d=k2", &w), K2_MYSQL_OK);
    CHECK_INT(params("HOST=127.0.0.1 DBNAME=k2", &w), K2_MYSQL_OK);
    CHECK_INT(params("host = 127.0.0.1 user =k2", &w), K2_MYSQL_OK);
}

static void test_mysql_params_password_is_refused_it_is_pass(void)
{
    const char *w;

    CHECK_INT(params("host=127.0.0.1 user=k2 password=S3cret dbname=k2", &w),
              K2_MYSQL_PASSWORD);
    CHECK_STR(w, "password=");
    CHECK_INT(params("user=k2 passwd=S3cret", &w), K2_MYSQL_PASSWORD);
    CHECK_STR(w, "passwd=");
    CHECK_INT(params("user=k2 pwd=S3cret", &w), K2_MYSQL_PASSWORD);
}

static void test_mysql_params_libpq_and_option_words_are_unknown_keys(void)
{
    const char *w;

    CHECK_INT(params("host=db user=k2 pass=x sslmode=require", &w),
              K2_MYSQL_UNKNOWN_KEY);
    CHECK_STR(w, "sslmode=");
    /* the driver sees only "ca": the word as written is reported */
    CHECK_INT(params("host=db ssl_ca=/etc/ca.pem", &w), K2_MYSQL_UNKNOWN_KEY);
    CHECK_STR(w, "ssl_ca=");
    CHECK_INT(params("host=db connect_timeout=3", &w), K2_MYSQL_UNKNOWN_KEY);
    CHECK_STR(w, "connect_timeout=");
    CHECK_INT(params("host=db charset=utf8mb4", &w), K2_MYSQL_UNKNOWN_KEY);
    /* a digit ends the driver's key: "port2" would set host */
    CHECK_INT(params("host=db port2=3307", &w), K2_MYSQL_UNKNOWN_KEY);
    CHECK_STR(w, "port2=");
}

static void test_mysql_params_a_separator_in_a_password_leaves_a_stray_word(void)
{
    const char *w;

    k2_mysql_finding_t f;

    CHECK_INT(params("host=db user=k2 pass=abc,def dbname=k2", &w),
              K2_MYSQL_STRAY_WORD);
    CHECK_STR(w, "def");
    /* what to name instead of the word (maybe a piece of the password) */
    k2_mysql_params_check("host=db user=k2 pass=abc,def dbname=k2", &f);
    CHECK(f.after && f.after_len == 5 && strncmp(f.after, "pass=", 5) == 0);
    k2_mysql_params_check("k2 host=db", &f);
    CHECK(f.problem == K2_MYSQL_STRAY_WORD && f.after == NULL);
    CHECK_INT(params("host=db user=k2 pass=ab;cd", &w), K2_MYSQL_STRAY_WORD);
    CHECK_STR(w, "cd");
    CHECK_INT(params("host=db user=k2 pass=ab|cd dbname=k2", &w),
              K2_MYSQL_STRAY_WORD);
    CHECK_STR(w, "cd");
    CHECK_INT(params("k2 host=db", &w), K2_MYSQL_STRAY_WORD);
    CHECK_STR(w, "k2");
}

static void test_mysql_params_an_equals_sign_in_a_value_is_kept(void)
{
    const char *w;

    CHECK_INT(params("host=db user=k2 pass=a=b dbname=k2", &w), K2_MYSQL_OK);
}

static void test_mysql_params_an_empty_value_that_takes_the_next_pair_is_refused(void)
{
    const char *w;

    CHECK_INT(params("host=db pass= user=k2 dbname=k2", &w),
              K2_MYSQL_STRAY_WORD);
    CHECK_STR(w, "pass= user=k2");
}

static void test_mysql_params_any_flags_are_refused(void)
{
    const char *w;

    CHECK_INT(params("host=db user=k2 pass=x flags=CLIENT_FOUND_ROWS", &w),
              K2_MYSQL_FLAGS);
    CHECK_STR(w, "flags=CLIENT_FOUND_ROWS");
    CHECK_INT(params("host=db fl=CLIENT_COMPRESS", &w), K2_MYSQL_FLAGS);
}

/* -- record statements --------------------------------------------------------- */

#define SAMPLE "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount) " \
               "VALUES (%s, %s, %s) "

static void test_mysql_record_the_sample_statement_passes(void)
{
    const char *w;

    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE k2_transaction_id = "
                     "k2_transaction_id", &w), K2_MYSQL_OK);
    CHECK_INT(record(SAMPLE "on duplicate key update `k2_transaction_id` = "
                     "k2_transaction_id;", &w), K2_MYSQL_OK);
    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE t.k2_transaction_id = "
                     "t.k2_transaction_id, ac_no = ac_no", &w), K2_MYSQL_OK);
    CHECK_INT(record(SAMPLE, &w), K2_MYSQL_OK);
}

static void test_mysql_record_ignore_is_refused_wherever_it_stands(void)
{
    const char *w;

    CHECK_INT(record("INSERT IGNORE INTO k2_transactions VALUES (%s)", &w),
              K2_MYSQL_IGNORE);
    CHECK_STR(w, "IGNORE");
    CHECK_INT(record("insert low_priority ignore into t values (%s)", &w),
              K2_MYSQL_IGNORE);
    CHECK_INT(record("INSERT /*!50000 IGNORE */ INTO t VALUES (%s)", &w),
              K2_MYSQL_IGNORE);
    /* an index hint is not the modifier */
    CHECK_INT(record("INSERT INTO t SELECT %s FROM u IGNORE INDEX (i)", &w),
              K2_MYSQL_OK);
}

static void test_mysql_record_ignore_in_a_string_or_comment_is_text(void)
{
    const char *w;

    CHECK_INT(record("INSERT INTO t (a, b) VALUES (%s, 'ignore') -- ignore\n"
                     "ON DUPLICATE KEY UPDATE a = a", &w), K2_MYSQL_OK);
    CHECK_INT(record("INSERT INTO t (a) VALUES (%s) # IGNORE", &w), K2_MYSQL_OK);
    CHECK_INT(record("INSERT /* IGNORE */ INTO t (a) VALUES (%s)", &w),
              K2_MYSQL_OK);
    CHECK_INT(record("INSERT INTO `ignore` (a) VALUES (%s)", &w), K2_MYSQL_OK);
}

static void test_mysql_record_replace_is_refused(void)
{
    const char *w;

    CHECK_INT(record("REPLACE INTO k2_transactions VALUES (%s, %s)", &w),
              K2_MYSQL_REPLACE);
    CHECK_INT(record("  replace k2_transactions VALUES (%s, %s)", &w),
              K2_MYSQL_REPLACE);
    /* the function REPLACE() in a value is not the statement */
    CHECK_INT(record("INSERT INTO t (a) VALUES (REPLACE(%s, ' ', ''))", &w),
              K2_MYSQL_OK);
}

static void test_mysql_record_an_update_clause_that_changes_a_column_is_refused(void)
{
    const char *w;

    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE amount = VALUES(amount)", &w),
              K2_MYSQL_UPDATE_CHANGES);
    CHECK_STR(w, "ON DUPLICATE KEY UPDATE amount = VALUES(amount)");
    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE amount = %s", &w),
              K2_MYSQL_UPDATE_CHANGES);
    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE ac_no = amount", &w),
              K2_MYSQL_UPDATE_CHANGES);
    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE amount = amount + 1", &w),
              K2_MYSQL_UPDATE_CHANGES);
    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE k2_transaction_id = "
                     "k2_transaction_id, amount = new.amount", &w),
              K2_MYSQL_UPDATE_CHANGES);
    /* MySQL 8's row alias: new.amount is not amount */
    CHECK_INT(record(SAMPLE "AS new ON DUPLICATE KEY UPDATE amount = new.amount",
                     &w), K2_MYSQL_UPDATE_CHANGES);
    CHECK_INT(record(SAMPLE "ON DUPLICATE KEY UPDATE", &w),
              K2_MYSQL_UPDATE_CHANGES);
}

static void test_mysql_record_on_conflict_is_refused_with_the_mysql_clause(void)
{
    const char *w;

    CHECK_INT(record(SAMPLE "ON CONFLICT (k2_transaction_id) DO NOTHING", &w),
              K2_MYSQL_ON_CONFLICT);
    CHECK_STR(w, "ON CONFLICT");
}

static void test_mysql_record_a_decimal_without_cents_is_refused(void)
{
    const char *w;

    CHECK_INT(record("INSERT INTO t (a) VALUES (CAST(%s AS DECIMAL))", &w),
              K2_MYSQL_DECIMAL_SCALE);
    CHECK_STR(w, "CAST(%s AS DECIMAL");
    CHECK_INT(record("INSERT INTO t (a) VALUES (CAST(%s AS numeric))", &w),
              K2_MYSQL_DECIMAL_SCALE);
    CHECK_INT(record("INSERT INTO t (a) VALUES (CAST(%s AS DECIMAL(17)))", &w),
              K2_MYSQL_DECIMAL_SCALE);
    CHECK_INT(record("INSERT INTO t (a) VALUES (cast(%s as dec(17,1)))", &w),
              K2_MYSQL_DECIMAL_SCALE);
    CHECK_INT(record("INSERT INTO t (a) VALUES (CONVERT(%s, DECIMAL))", &w),
              K2_MYSQL_DECIMAL_SCALE);
    CHECK_INT(record("INSERT INTO t (a) VALUES (CAST(TRIM(%s) AS FIXED))", &w),
              K2_MYSQL_DECIMAL_SCALE);
}

static void test_mysql_record_a_decimal_with_cents_passes(void)
{
    const char *w;

    CHECK_INT(record("INSERT INTO t (a) VALUES (CAST(%s AS DECIMAL(17,2)))", &w),
              K2_MYSQL_OK);
    CHECK_INT(record("INSERT INTO t (a) VALUES (CAST(%s AS DECIMAL(20, 4)))", &w),
              K2_MYSQL_OK);
    CHECK_INT(record("INSERT INTO t (a) VALUES (CONVERT(%s, DECIMAL(17,2)))", &w),
              K2_MYSQL_OK);
    CHECK_INT(record("INSERT INTO t (a, b) VALUES (CAST(%s AS DATETIME), "
                     "CONVERT(%s USING utf8mb4))", &w), K2_MYSQL_OK);
}

static void test_mysql_record_a_placeholder_quoted_by_mysql_rules_is_refused(void)
{
    const char *w;

    /* PostgreSQL's lexer ends the string at \' ; MySQL's does not */
    CHECK_INT(record("INSERT INTO t (a, b) VALUES ('it\\'s %s', %s)", &w),
              K2_MYSQL_QUOTED_PLACEHOLDER);
    CHECK_STR(w, "%s");
    CHECK_INT(record("INSERT INTO t (a) VALUES (\"%s\")", &w),
              K2_MYSQL_QUOTED_PLACEHOLDER);
    CHECK_INT(record("INSERT INTO t (a) VALUES (%s) # was %s", &w),
              K2_MYSQL_QUOTED_PLACEHOLDER);
    /* "--" without a space is not a comment in MySQL */
    CHECK_INT(record("INSERT INTO t (a) VALUES (1--%s)", &w), K2_MYSQL_OK);
}

static void test_mysql_record_an_unterminated_string_ends_the_scan(void)
{
    const char *w;

    CHECK_INT(record("INSERT INTO t (a) VALUES ('abc", &w), K2_MYSQL_OK);
    CHECK_INT(record("INSERT INTO t /* open", &w), K2_MYSQL_OK);
    CHECK_INT(record("ON DUPLICATE KEY UPDATE `a", &w), K2_MYSQL_UPDATE_CHANGES);
}

static void test_mysql_every_problem_has_its_reason(void)
{
    int p;

    for (p = K2_MYSQL_PASSWORD; p <= K2_MYSQL_QUOTED_PLACEHOLDER; p++) {
        const char *why = k2_mysql_problem_why((k2_mysql_problem_e)p);

        CHECK(why && strlen(why) > 40 && strcmp(why, "?") != 0);
    }
}

UNIT_SUITE(mysql,
    T(test_mysql_params_the_samples_pass),
    T(test_mysql_params_a_key_is_matched_by_prefix_as_the_driver_does),
    T(test_mysql_params_password_is_refused_it_is_pass),
    T(test_mysql_params_libpq_and_option_words_are_unknown_keys),
    T(test_mysql_params_a_separator_in_a_password_leaves_a_stray_word),
    T(test_mysql_params_an_equals_sign_in_a_value_is_kept),
    T(test_mysql_params_an_empty_value_that_takes_the_next_pair_is_refused),
    T(test_mysql_params_any_flags_are_refused),
    T(test_mysql_record_the_sample_statement_passes),
    T(test_mysql_record_ignore_is_refused_wherever_it_stands),
    T(test_mysql_record_ignore_in_a_string_or_comment_is_text),
    T(test_mysql_record_replace_is_refused),
    T(test_mysql_record_an_update_clause_that_changes_a_column_is_refused),
    T(test_mysql_record_on_conflict_is_refused_with_the_mysql_clause),
    T(test_mysql_record_a_decimal_without_cents_is_refused),
    T(test_mysql_record_a_decimal_with_cents_passes),
    T(test_mysql_record_a_placeholder_quoted_by_mysql_rules_is_refused),
    T(test_mysql_record_an_unterminated_string_ends_the_scan),
    T(test_mysql_every_problem_has_its_reason))
