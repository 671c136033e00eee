/* fuzz_sql.c: libFuzzer target of configtest's readers of the
 * administrator's SQL and DBDParams (k2_sql.c, k2_mysql.c).
 *
 * These read configuration, not K2's input, but a crash there is a crash
 * of apachectl configtest and of every (re)start.  The input, as a
 * NUL-terminated heap copy of exactly its size, is given to each reader;
 * what each reports must stay inside the text and agree with a count
 * written here independently: apr_dbd_prepare() turns every '%' followed by
 * a letter into a placeholder and "%%" into '%', wherever they stand.
 */
#include "fuzz_common.h"
#include "k2_mysql.h"
#include "k2_sql.h"

#define NKEY 64

static int inside(const char *p, const char *s, size_t len)
{
    return p >= s && p <= s + len;
}

static int is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* What apr_dbd_prepare counts, and where the first one other than %s is. */
static int count_placeholders(const char *s, const char **bad)
{
    int n = 0;

    *bad = NULL;
    while (*s) {
        if (s[0] == '%' && s[1] == '%') {
            s += 2;
        }
        else if (s[0] == '%' && is_letter((unsigned char)s[1])) {
            if (s[1] != 's' && !*bad) {
                *bad = s;
            }
            n++;
            s += 2;
        }
        else {
            s++;
        }
    }
    return n;
}

static void check_finding(const k2_mysql_finding_t *f, const char *s,
                          size_t len)
{
    if (f->problem == K2_MYSQL_OK) {
        return;
    }
    FUZZ_ASSERT(k2_mysql_problem_why(f->problem) != NULL);
    FUZZ_ASSERT(f->at && inside(f->at, s, len));
    FUZZ_ASSERT(f->len <= (size_t)(s + len - f->at));
    if (f->after) {
        FUZZ_ASSERT(inside(f->after, s, len));
        FUZZ_ASSERT(f->after_len <= (size_t)(s + len - f->after));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const clauses[] = {
        "IGNORE", "REPLACE", "ABORT", "FAIL", "ROLLBACK"
    };
    char *s = fuzz_strndup(data, size);
    size_t len = strlen(s);             /* up to the input's first NUL */
    const char *bad, *clause;
    k2_sql_info_t info;
    k2_mysql_finding_t f;
    int key[NKEY], n, i, expected, known;

    k2_sql_scan(s, &info);
    expected = count_placeholders(s, &bad);
    FUZZ_ASSERT(info.placeholders == expected);
    FUZZ_ASSERT(info.bad == bad);
    if (info.misplaced) {
        FUZZ_ASSERT(inside(info.misplaced, s, len) && info.misplaced[0] == '%');
        FUZZ_ASSERT(info.where != K2_SQL_PLAIN);
        FUZZ_ASSERT(k2_sql_context_name(info.where) != NULL);
    }
    if (info.returning) {
        FUZZ_ASSERT(inside(info.returning, s, len));
    }

    n = k2_sql_conflict_key(s, key, NKEY);
    FUZZ_ASSERT(n >= 0 && n <= NKEY);
    for (i = 0; i < NKEY; i++) {
        FUZZ_ASSERT(key[i] >= 0 && key[i] <= n);
        FUZZ_ASSERT(i < expected || key[i] == 0);
    }

    clause = k2_sql_insert_or(s);
    if (clause) {
        for (known = 0, i = 0; i < 5; i++) {
            known |= strcmp(clause, clauses[i]) == 0;
        }
        FUZZ_ASSERT(known);
    }

    k2_mysql_params_check(s, &f);
    check_finding(&f, s, len);
    k2_mysql_record_check(s, &f);
    check_finding(&f, s, len);

    free(s);
    return 0;
}
