/* fail_rollback.c: an LD_PRELOAD library for one fault that real SQLite
 * does not make on demand: while the file named by K2N_TEST_FAIL_ROLLBACK
 * exists, every "ROLLBACK" statement fails with SQLITE_IOERR without
 * running (so the connection stays inside its transaction).  Everything
 * else is SQLite's own sqlite3_step.  Built by test_moved_files.py. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct sqlite3_stmt sqlite3_stmt;

#define SQLITE_IOERR 10

int sqlite3_step(sqlite3_stmt *stmt)
{
    static int (*real_step)(sqlite3_stmt *);
    static const char *(*real_sql)(sqlite3_stmt *);
    const char *flag = getenv("K2N_TEST_FAIL_ROLLBACK");

    if (!real_step) {
        void *lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_NOLOAD);

        real_step = (int (*)(sqlite3_stmt *))dlsym(lib ? lib : RTLD_NEXT,
                                                   "sqlite3_step");
        real_sql = (const char *(*)(sqlite3_stmt *))dlsym(lib ? lib : RTLD_NEXT,
                                                          "sqlite3_sql");
    }
    if (flag && real_sql && access(flag, F_OK) == 0) {
        const char *sql = real_sql(stmt);

        if (sql && strcasecmp(sql, "ROLLBACK") == 0) {
            return SQLITE_IOERR;
        }
    }
    return real_step(stmt);
}
