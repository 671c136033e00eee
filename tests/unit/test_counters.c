/* test_counters.c: unit tests of k2_counters.c, the server-status counters
 * and the slots that say which location each row counts.
 *
 * The counters are shared by processes (prefork) and threads (event,
 * worker): the concurrency tests fork processes that count in one shared
 * anonymous mapping, as httpd children do.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "k2_counters.h"

/* A shared anonymous mapping of n rows, as the glue's apr_shm_create. */
static k2_counters_t *shared_rows(size_t n)
{
    void *p = mmap(NULL, n * sizeof(k2_counters_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        fail_at(__FILE__, __LINE__, "mmap failed");
        return NULL;
    }
    return p;
}

/* Run fn(rows, i) in each of n child processes at once; wait for all. */
static void in_processes(int n, k2_counters_t *rows,
                         void (*fn)(k2_counters_t *rows, int i))
{
    pid_t pids[16];
    int i;

    for (i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            fn(rows, i);
            _exit(0);
        }
        CHECK(pids[i] > 0);
    }
    for (i = 0; i < n; i++) {
        int status = 0;

        CHECK(waitpid(pids[i], &status, 0) == pids[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

#define PROCESSES 4
#define INCREMENTS 500000

static void count_a_lot(k2_counters_t *rows, int i)
{
    int n;

    (void)i;
    for (n = 0; n < INCREMENTS; n++) {
        k2_counters_add(&rows[1], 3);
    }
}

static void test_counts_of_concurrent_processes_add_up_exactly(void)
{
    k2_counters_t *rows = shared_rows(3);
    int w;

    if (!rows) {
        return;
    }
    in_processes(PROCESSES, rows, count_a_lot);
    CHECK_INT(k2_counters_get(&rows[1], 3), PROCESSES * INCREMENTS);
    /* and nothing else moved */
    for (w = 0; w < K2_COUNTERS_MAX; w++) {
        CHECK_INT(k2_counters_get(&rows[0], w), 0);
        CHECK_INT(k2_counters_get(&rows[2], w), 0);
        if (w != 3) {
            CHECK_INT(k2_counters_get(&rows[1], w), 0);
        }
    }
    CHECK_INT(k2_counters_last(&rows[1]), 0);
    munmap(rows, 3 * sizeof(k2_counters_t));
}

static void test_each_counter_of_a_row_is_its_own(void)
{
    k2_counters_t *rows = test_alloc(2 * sizeof(k2_counters_t));
    int w, k;

    k2_counters_clear(rows, 2);
    for (w = 0; w < K2_COUNTERS_MAX; w++) {
        for (k = 0; k <= w; k++) {
            k2_counters_add(&rows[1], w);
        }
    }
    for (w = 0; w < K2_COUNTERS_MAX; w++) {
        CHECK_INT(k2_counters_get(&rows[1], w), w + 1);
        CHECK_INT(k2_counters_get(&rows[0], w), 0);
    }
    CHECK_INT(k2_counters_last(&rows[0]), 0);
    CHECK_INT(k2_counters_last(&rows[1]), 0);
}

static void test_clear_zeroes_every_counter_and_the_time(void)
{
    k2_counters_t *rows = test_alloc(2 * sizeof(k2_counters_t));
    int w;

    k2_counters_clear(rows, 2);
    for (w = 0; w < K2_COUNTERS_MAX; w++) {
        k2_counters_add(&rows[0], w);
        k2_counters_add(&rows[1], w);
    }
    k2_counters_note_time(&rows[1], 42);
    k2_counters_clear(rows, 2);
    for (w = 0; w < K2_COUNTERS_MAX; w++) {
        CHECK_INT(k2_counters_get(&rows[0], w), 0);
        CHECK_INT(k2_counters_get(&rows[1], w), 0);
    }
    CHECK_INT(k2_counters_last(&rows[1]), 0);
}

static void test_the_last_time_is_the_latest_noted_not_the_last_written(void)
{
    k2_counters_t *row = test_alloc(sizeof(k2_counters_t));

    k2_counters_clear(row, 1);
    k2_counters_note_time(row, 1764500000000000LL);
    CHECK(k2_counters_last(row) == 1764500000000000LL);
    /* A child that decided earlier but notes later must not go back. */
    k2_counters_note_time(row, 1764499999000000LL);
    CHECK(k2_counters_last(row) == 1764500000000000LL);
    k2_counters_note_time(row, 1764500000000001LL);
    CHECK(k2_counters_last(row) == 1764500000000001LL);
}

/* Process i notes the times i + 1, i + 1 + PROCESSES, ... so that the
 * largest of all, PROCESSES * 100000, is noted by the last process. */
static void note_times(k2_counters_t *rows, int i)
{
    long long t;

    for (t = i + 1; t <= PROCESSES * 100000LL; t += PROCESSES) {
        k2_counters_note_time(&rows[0], t);
    }
}

static void test_concurrent_times_keep_the_latest(void)
{
    k2_counters_t *rows = shared_rows(1);

    if (!rows) {
        return;
    }
    in_processes(PROCESSES, rows, note_times);
    CHECK(k2_counters_last(&rows[0]) == PROCESSES * 100000LL);
    munmap(rows, sizeof(k2_counters_t));
}

/* ---- slots ------------------------------------------------------------ */

typedef struct {
    int calls;
    const char *copies[16];
} keeper_t;

/* keep: a copy, so that the table never points into the caller's keys. */
static const char *keep_copy(void *baton, const char *key)
{
    keeper_t *k = baton;
    char *copy = test_alloc(strlen(key) + 1);

    strcpy(copy, key);
    k->copies[k->calls++] = copy;
    return copy;
}

#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_slots_at_start_are_given_in_order(void)
{
    const char *table[4] = { NULL, NULL, NULL, NULL };
    const char *const keys[] = { "*\n/k2/a", "*\n/k2/b", "h:443\n/k2/a" };
    int slot[3];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 4, keys, NKEYS(keys), 0, slot, keep_copy,
                              &k), 0);
    CHECK_INT(slot[0], 0);
    CHECK_INT(slot[1], 1);
    CHECK_INT(slot[2], 2);
    CHECK_STR(table[0], "*\n/k2/a");
    CHECK_STR(table[1], "*\n/k2/b");
    CHECK_STR(table[2], "h:443\n/k2/a");
    CHECK(table[3] == NULL);
    CHECK_INT(k.calls, 3);
    CHECK(table[2] == k.copies[2] && table[2] != keys[2]);
}

static void test_slots_at_graceful_keep_known_keys_and_never_reuse_a_removed_one(void)
{
    const char *table[4] = { "a", "b", "c", NULL };
    /* b removed, d added, c and a reordered */
    const char *const keys[] = { "c", "d", "a" };
    int slot[3];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 4, keys, NKEYS(keys), 1, slot, keep_copy,
                              &k), 0);
    CHECK_INT(slot[0], 2);
    CHECK_INT(slot[1], 3);
    CHECK_INT(slot[2], 0);
    CHECK_STR(table[1], "b");           /* b's late counts still land there */
    CHECK_STR(table[3], "d");
    CHECK_INT(k.calls, 1);
}

static void test_slots_at_graceful_a_key_that_comes_back_finds_its_slot(void)
{
    const char *table[3] = { "a", "b", NULL };
    const char *const without_b[] = { "a" };
    const char *const with_b[] = { "b", "a" };
    int slot[2];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 3, without_b, 1, 1, slot, keep_copy, &k), 0);
    CHECK_INT(slot[0], 0);
    CHECK_INT(k2_slots_assign(table, 3, with_b, 2, 1, slot, keep_copy, &k), 0);
    CHECK_INT(slot[0], 1);
    CHECK_INT(slot[1], 0);
    CHECK_INT(k.calls, 0);
}

static void test_slots_at_graceful_without_room_leave_the_new_key_out(void)
{
    const char *table[3] = { "a", "b", "c" };
    /* b's slot is not free: children of the old configuration may count. */
    const char *const keys[] = { "a", "d", "e" };
    int slot[3];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 3, keys, NKEYS(keys), 1, slot, keep_copy,
                              &k), 2);
    CHECK_INT(slot[0], 0);
    CHECK_INT(slot[1], -1);
    CHECK_INT(slot[2], -1);
    CHECK_STR(table[1], "b");
    CHECK_INT(k.calls, 0);
}

static void test_slots_a_new_key_never_takes_the_slot_of_a_later_known_key(void)
{
    const char *table[3] = { NULL, "b", NULL };
    const char *const keys[] = { "new", "b" };
    int slot[2];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 3, keys, NKEYS(keys), 1, slot, keep_copy,
                              &k), 0);
    CHECK_INT(slot[0], 0);
    CHECK_INT(slot[1], 1);
}

static void test_slots_at_restart_forget_everything_and_start_from_zero(void)
{
    const char *table[3] = { "a", "b", "c" };
    const char *const keys[] = { "d", "c" };
    int slot[2];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 3, keys, NKEYS(keys), 0, slot, keep_copy,
                              &k), 0);
    CHECK_INT(slot[0], 0);
    CHECK_INT(slot[1], 1);
    CHECK_STR(table[0], "d");
    CHECK_STR(table[1], "c");
    CHECK(table[2] == NULL);
    CHECK_INT(k.calls, 2);
}

static void test_slots_at_restart_without_room_count_the_first_keys(void)
{
    const char *table[2] = { NULL, NULL };
    const char *const keys[] = { "a", "b", "c" };
    int slot[3];
    keeper_t k = { 0, { NULL } };

    CHECK_INT(k2_slots_assign(table, 2, keys, NKEYS(keys), 0, slot, keep_copy,
                              &k), 1);
    CHECK_INT(slot[0], 0);
    CHECK_INT(slot[1], 1);
    CHECK_INT(slot[2], -1);
}

UNIT_SUITE(counters,
    T(test_counts_of_concurrent_processes_add_up_exactly),
    T(test_each_counter_of_a_row_is_its_own),
    T(test_clear_zeroes_every_counter_and_the_time),
    T(test_the_last_time_is_the_latest_noted_not_the_last_written),
    T(test_concurrent_times_keep_the_latest),
    T(test_slots_at_start_are_given_in_order),
    T(test_slots_at_graceful_keep_known_keys_and_never_reuse_a_removed_one),
    T(test_slots_at_graceful_a_key_that_comes_back_finds_its_slot),
    T(test_slots_at_graceful_without_room_leave_the_new_key_out),
    T(test_slots_a_new_key_never_takes_the_slot_of_a_later_known_key),
    T(test_slots_at_restart_forget_everything_and_start_from_zero),
    T(test_slots_at_restart_without_room_count_the_first_keys)
)
