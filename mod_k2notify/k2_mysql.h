/* k2_mysql.h: what configtest reads in a MySQL / MariaDB configuration
 * before mod_dbd hands it to apr-util's mysql driver.
 *
 * - DBDParams, parsed as the driver parses it (apr_dbd_mysql.c's
 *   dbd_mysql_open): each '=' ends a key (the letters before it) and starts
 *   a value that ends at a space, tab, CR, LF, ';', '|' or ','; a key
 *   selects the first known name it is a prefix of; anything else is
 *   ignored without a word.  No quoting.
 * - A record statement, read by MySQL's lexical rules (backslash escapes and
 *   "..." strings, # and "-- " comments, executable comments): the
 *   constructs that make the row count lie or store other values than the
 *   notification's.
 *
 * Plain C: no httpd, APR or client library.
 */
#ifndef K2_MYSQL_H
#define K2_MYSQL_H

#include <stddef.h>

typedef enum {
    K2_MYSQL_OK = 0,
    /* DBDParams */
    K2_MYSQL_PASSWORD,              /* password=: the driver reads pass= */
    K2_MYSQL_UNKNOWN_KEY,           /* a key the driver ignores (sslmode=...) */
    K2_MYSQL_STRAY_WORD,            /* not key=value: a value cut short */
    K2_MYSQL_FLAGS,                 /* flags=: CLIENT_FOUND_ROWS or ignored */
    /* a record statement */
    K2_MYSQL_IGNORE,                /* INSERT IGNORE and the like */
    K2_MYSQL_REPLACE,               /* REPLACE INTO */
    K2_MYSQL_UPDATE_CHANGES,        /* ON DUPLICATE KEY UPDATE a = (not a) */
    K2_MYSQL_ON_CONFLICT,           /* PostgreSQL's and SQLite's clause */
    K2_MYSQL_DECIMAL_SCALE,         /* CAST(... AS DECIMAL) without 2 decimals */
    K2_MYSQL_QUOTED_PLACEHOLDER     /* %s in a string or comment, by MySQL's
                                     * rules */
} k2_mysql_problem_e;

typedef struct {
    k2_mysql_problem_e problem;     /* the first one found */
    const char *at;                 /* where, in the text checked */
    size_t len;                     /* of the word or construct at fault */
    const char *after;              /* DBDParams: the "key=" before it (a
                                     * stray word may be a piece of a
                                     * password: name this, not it), or NULL */
    size_t after_len;
} k2_mysql_finding_t;

/* Check a mysql DBDParams string (NUL-terminated). */
void k2_mysql_params_check(const char *params, k2_mysql_finding_t *f);

/* Check a record statement (NUL-terminated). */
void k2_mysql_record_check(const char *sql, k2_mysql_finding_t *f);

/* Why a problem is refused: what it does, as measured on MariaDB 10.11 and
 * apr-util 1.6.3, and what to write instead.  One sentence, lower-case. */
const char *k2_mysql_problem_why(k2_mysql_problem_e problem);

#endif /* K2_MYSQL_H */
