/* k2_sql.h: what the module must know of a statement before mod_dbd
 * prepares it.
 *
 * apr_dbd_prepare() turns every '%' followed by a letter into a driver
 * placeholder ('?' for SQLite, '$n' for PostgreSQL), wherever it stands:
 * inside a quoted string it becomes the literal text "?" or "$1", and the
 * value is silently not bound.  mod_dbd gives no SQL lexer, so this one is
 * small and only tells strings, quoted identifiers and comments from the
 * rest, the way SQLite and PostgreSQL read them.
 */
#ifndef K2_SQL_H
#define K2_SQL_H

#include <stddef.h>

/* Where a placeholder was found out of place. */
typedef enum {
    K2_SQL_PLAIN = 0,           /* not quoted: a real placeholder */
    K2_SQL_IN_STRING,           /* '...' or E'...' */
    K2_SQL_IN_IDENTIFIER,       /* "..." or `...` */
    K2_SQL_IN_DOLLAR_QUOTE,     /* PostgreSQL $$...$$ or $tag$...$tag$ */
    K2_SQL_IN_COMMENT           /* -- ... or a block comment */
} k2_sql_context_e;

typedef struct {
    int placeholders;           /* '%' + letter, as apr_dbd_prepare() counts */
    const char *bad;            /* the first placeholder other than %s, or NULL */
    const char *misplaced;      /* the first placeholder in quotes or a
                                 * comment, or NULL */
    k2_sql_context_e where;     /* where misplaced stands */
    const char *returning;      /* the keyword RETURNING outside strings,
                                 * identifiers and comments, or NULL */
} k2_sql_info_t;

/* Scan a NUL-terminated statement.  Pointers in info point into sql. */
void k2_sql_scan(const char *sql, k2_sql_info_t *info);

/* The placeholders that make the deduplication key of
 *   INSERT INTO t (col, ...) VALUES (value, ...) ON CONFLICT (col, ...) ...
 * For each conflict column whose value is a placeholder, or COALESCE() of
 * placeholders only (it is NULL when they all are), key[i] is that column's
 * number among such key columns (1, 2, ...) for each of its placeholders i
 * (counted from 0 in the order written); every other key[i] (i < nkey) is
 * 0.  Returns the number of such key columns: 0 when the statement is of
 * another shape (INSERT OR IGNORE, ON DUPLICATE KEY, several rows, a
 * SELECT...) and its key is unknown. */
int k2_sql_conflict_key(const char *sql, int *key, int nkey);

/* The conflict clause of SQLite's INSERT OR IGNORE / OR REPLACE / ...
 * (and REPLACE INTO, INSERT OR REPLACE's other name): "IGNORE", "REPLACE",
 * "ABORT", "FAIL", "ROLLBACK" as written at the start of the statement
 * (after comments), or NULL.  OR IGNORE skips a row that breaks any
 * constraint (NOT NULL, CHECK, UNIQUE) with no error and 0 rows changed;
 * OR REPLACE deletes the stored row that a new one conflicts with. */
const char *k2_sql_insert_or(const char *sql);

/* "a string", "a quoted identifier", ... for messages. */
const char *k2_sql_context_name(k2_sql_context_e where);

#endif /* K2_SQL_H */
