/* fail_open_once.c: an LD_PRELOAD library for a connection that mod_dbd
 * fails to open, once, at a moment the test chooses: when the file named by
 * K2N_TEST_FAIL_OPEN exists, the next sqlite3_open (apr-util's driver opens
 * with it) removes it and fails with SQLITE_CANTOPEN; the one after it is
 * SQLite's own.  unlink() decides which open fails: exactly one.  Built by
 * test_dbd_persist_off.py. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct sqlite3 sqlite3;

#define SQLITE_CANTOPEN 14

int sqlite3_open(const char *filename, sqlite3 **db)
{
    static int (*real_open)(const char *, sqlite3 **);
    const char *flag = getenv("K2N_TEST_FAIL_OPEN");

    if (!real_open) {
        void *lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_NOLOAD);

        real_open = (int (*)(const char *, sqlite3 **))dlsym(
            lib ? lib : RTLD_NEXT, "sqlite3_open");
    }
    if (flag && unlink(flag) == 0) {
        *db = NULL;
        return SQLITE_CANTOPEN;
    }
    return real_open(filename, db);
}
