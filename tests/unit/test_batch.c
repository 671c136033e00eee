/* test_batch.c: unit tests of k2_batch.c, the group-commit queue, driven
 * from APR threads with a fake commit function (no database, no httpd). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apr_atomic.h"
#include "apr_general.h"
#include "apr_thread_proc.h"
#include "apr_time.h"

#include "unit.h"
#include "k2_batch.h"

#define NTHREADS 16
#define PER_THREAD 40
#define MAX_ITEMS ((NTHREADS + 1) * 1000)

/* What a test's items carry, and what the fake commit saw. */
typedef struct {
    int id;                             /* unique per item */
    int fail;                           /* this statement fails */
    int fail_commit;                    /* the COMMIT of its batch fails */
} fake_stmt_t;

typedef struct {
    int thread;                         /* the leader's thread number */
} fake_leader_t;

static struct {
    volatile apr_uint32_t running;      /* commits running now */
    volatile apr_uint32_t overlap;      /* a commit started while one ran */
    int commits;
    int committed[MAX_ITEMS];           /* times each id was in a batch */
    int max_batch;
    int leader_not_in_batch;            /* a leader whose item was not in it */
    apr_interval_time_t sleep;          /* the fake fsync */
    apr_interval_time_t run_sleep;      /* the fake statement */
} seen;

static void reset_seen(apr_interval_time_t sleep)
{
    memset((void *)&seen, 0, sizeof(seen));
    seen.sleep = sleep;
}

/* The fake transaction: takes every item queued (some join while it runs:
 * each takes run_sleep), then "commits" (commit_sleep, the fsync).  The
 * leader's own item is in its batch; its thread number is the item's id /
 * 1000 in the threaded tests. */
static void fake_commit(void *leader, k2_batch_t *b, apr_pool_t *pool)
{
    const fake_leader_t *l = leader;
    k2_batch_item_t *items[K2_BATCH_MAX + 1], *it;
    int i, n = 0, fail_commit = 0, own = 0;

    (void)pool;
    if (apr_atomic_inc32(&seen.running) != 0) {
        apr_atomic_inc32(&seen.overlap);
    }
    seen.commits++;
    while ((it = k2_batch_next(b)) != NULL) {
        const fake_stmt_t *st = it->data;

        items[n++] = it;
        seen.committed[st->id]++;
        own |= st->id / 1000 == l->thread;
        fail_commit |= st->fail_commit;
        if (st->fail) {
            it->status = -1;
            snprintf(it->err, sizeof(it->err), "statement %d failed", st->id);
        }
        else {
            it->status = 0;
            it->nrows = st->id;         /* each item its own answer */
        }
        if (seen.run_sleep) {
            apr_sleep(seen.run_sleep);
        }
    }
    if (n > seen.max_batch) {
        seen.max_batch = n;
    }
    if (!own) {
        seen.leader_not_in_batch++;
    }
    if (seen.sleep) {
        apr_sleep(seen.sleep);
    }
    for (i = 0; fail_commit && i < n; i++) {
        if (items[i]->status == 0) {
            items[i]->status = -2;
            snprintf(items[i]->err, sizeof(items[i]->err), "COMMIT failed");
        }
    }
    apr_atomic_dec32(&seen.running);
}

/* A commit function that takes nothing: the leader's item must still get
 * an answer. */
static void empty_commit(void *leader, k2_batch_t *b, apr_pool_t *pool)
{
    (void)leader; (void)b; (void)pool;
    seen.commits++;
}

static apr_pool_t *test_pool(void)
{
    static int initialized;
    apr_pool_t *p;

    if (!initialized) {
        apr_initialize();
        initialized = 1;
    }
    apr_pool_create(&p, NULL);
    return p;
}

static void test_batch_lone_item_commits_at_once_alone(void)
{
    apr_pool_t *p = test_pool();
    k2_batch_t *b;
    fake_stmt_t st = { 7, 0, 0 };
    fake_leader_t l = { 0 };
    k2_batch_item_t item;

    reset_seen(0);
    CHECK_INT(k2_batch_create(&b, fake_commit, p), APR_SUCCESS);
    memset(&item, 0, sizeof(item));
    item.data = &st;
    item.status = 99;
    CHECK_INT(k2_batch_submit(b, &item, &l, p), APR_SUCCESS);
    CHECK_INT(item.status, 0);
    CHECK_INT(item.nrows, 7);
    CHECK_INT(item.batch_size, 1);
    CHECK_INT(seen.commits, 1);
    CHECK_INT(seen.committed[7], 1);

    /* and again: the queue is free once its leader is done */
    st.id = 8;
    CHECK_INT(k2_batch_submit(b, &item, &l, p), APR_SUCCESS);
    CHECK_INT(item.nrows, 8);
    CHECK_INT(item.batch_size, 1);
    CHECK_INT(seen.commits, 2);
    apr_pool_destroy(p);
}

static void test_batch_leader_item_not_taken_gets_an_error_not_a_hang(void)
{
    apr_pool_t *p = test_pool();
    k2_batch_t *b;
    fake_stmt_t st = { 7, 0, 0 };
    fake_leader_t l = { 0 };
    k2_batch_item_t item;

    reset_seen(0);
    CHECK_INT(k2_batch_create(&b, empty_commit, p), APR_SUCCESS);
    memset(&item, 0, sizeof(item));
    item.data = &st;
    CHECK_INT(k2_batch_submit(b, &item, &l, p), APR_SUCCESS);
    CHECK_INT(item.status, -1);
    CHECK(strstr(item.err, "ended before") != NULL);
    /* the queue is usable again */
    CHECK_INT(k2_batch_submit(b, &item, &l, p), APR_SUCCESS);
    CHECK_INT(seen.commits, 2);
    apr_pool_destroy(p);
}

/* -- many threads ----------------------------------------------------------- */




typedef struct {
    k2_batch_t *b;
    int thread;
    int fail_every;                     /* 0: none; k: every k-th fails */
    int fail_commit_item;               /* this item's COMMIT fails, or -1 */
    int wrong;                          /* results not this item's own */
    int statuses[PER_THREAD];
    int sizes[PER_THREAD];
} worker_t;

static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    fake_leader_t l;
    int i;

    l.thread = w->thread;
    for (i = 0; i < PER_THREAD; i++) {
        apr_pool_t *rp;                 /* a request's pool */
        fake_stmt_t st;
        k2_batch_item_t item;

        apr_pool_create(&rp, NULL);
        st.id = w->thread * 1000 + i;
        st.fail = w->fail_every && i % w->fail_every == 0;
        st.fail_commit = i == w->fail_commit_item;
        memset(&item, 0, sizeof(item));
        item.data = &st;
        item.nrows = -1;
        if (k2_batch_submit(w->b, &item, &l, rp) != APR_SUCCESS) {
            w->wrong++;
        }
        w->statuses[i] = item.status;
        w->sizes[i] = item.batch_size;
        if (item.status == 0 && item.nrows != st.id) {
            w->wrong++;
        }
        apr_pool_destroy(rp);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void run_workers_(worker_t *w, apr_interval_time_t sleep,
                         apr_interval_time_t run_sleep, int fail_every,
                         int fail_commit_thread)
{
    apr_pool_t *p = test_pool();
    apr_thread_t *threads[NTHREADS];
    k2_batch_t *b;
    apr_status_t rv;
    int i;

    reset_seen(sleep);
    seen.run_sleep = run_sleep;
    alarm(60);                          /* a lost wake-up hangs: fail instead */
    CHECK_INT(k2_batch_create(&b, fake_commit, p), APR_SUCCESS);
    for (i = 0; i < NTHREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].b = b;
        w[i].thread = i + 1;
        w[i].fail_every = fail_every;
        w[i].fail_commit_item = i + 1 == fail_commit_thread ? PER_THREAD / 2 : -1;
        CHECK_INT(apr_thread_create(&threads[i], NULL, worker, &w[i], p),
                  APR_SUCCESS);
    }
    for (i = 0; i < NTHREADS; i++) {
        apr_thread_join(&rv, threads[i]);
    }
    alarm(0);
    apr_pool_destroy(p);
}

static void run_workers(worker_t *w, apr_interval_time_t sleep, int fail_every,
                        int fail_commit_thread)
{
    run_workers_(w, sleep, 0, fail_every, fail_commit_thread);
}

static void test_batch_every_item_is_committed_exactly_once_with_its_own_result(void)
{
    static worker_t w[NTHREADS];
    int i, j, total = 0;

    run_workers(w, 2000, 0, -1);
    for (i = 0; i < NTHREADS; i++) {
        CHECK_INT(w[i].wrong, 0);
        for (j = 0; j < PER_THREAD; j++) {
            CHECK_INT(w[i].statuses[j], 0);
            CHECK_INT(seen.committed[(i + 1) * 1000 + j], 1);
            total += seen.committed[(i + 1) * 1000 + j];
        }
    }
    CHECK_INT(total, NTHREADS * PER_THREAD);
}

static void test_batch_commits_never_overlap(void)
{
    static worker_t w[NTHREADS];

    run_workers(w, 1000, 0, -1);
    CHECK_INT(seen.overlap, 0);
}

static void test_batch_items_queued_during_a_commit_share_the_next_one(void)
{
    static worker_t w[NTHREADS];

    /* 16 threads and a 5 ms "fsync": while one commit runs, the others
     * queue, so far fewer commits than items. */
    run_workers(w, 5000, 0, -1);
    CHECK(seen.max_batch > 1);
    CHECK(seen.commits < NTHREADS * PER_THREAD / 2);
}

static void test_batch_items_queued_while_statements_run_join_the_open_transaction(void)
{
    static worker_t w[NTHREADS];

    /* No commit delay at all, but each statement takes 1 ms: whoever
     * queues meanwhile is run in the same transaction. */
    run_workers_(w, 0, 1000, 0, -1);
    CHECK(seen.max_batch > 2);
    CHECK(seen.commits < NTHREADS * PER_THREAD / 2);
}

static void test_batch_leader_commits_its_own_item_in_its_batch(void)
{
    static worker_t w[NTHREADS];

    run_workers(w, 1000, 0, -1);
    CHECK_INT(seen.leader_not_in_batch, 0);
}

static void test_batch_reports_the_size_of_the_transaction_to_every_item(void)
{
    static worker_t w[NTHREADS];
    int i, j;

    run_workers(w, 3000, 0, -1);
    for (i = 0; i < NTHREADS; i++) {
        for (j = 0; j < PER_THREAD; j++) {
            CHECK(w[i].sizes[j] >= 1 && w[i].sizes[j] <= seen.max_batch);
        }
    }
}

static void test_batch_failing_statement_fails_that_item_alone(void)
{
    static worker_t w[NTHREADS];
    int i, j;

    run_workers(w, 2000, 3, -1);
    for (i = 0; i < NTHREADS; i++) {
        CHECK_INT(w[i].wrong, 0);
        for (j = 0; j < PER_THREAD; j++) {
            CHECK_INT(w[i].statuses[j], j % 3 == 0 ? -1 : 0);
        }
    }
}

static void test_batch_failed_commit_fails_every_item_of_its_batch_only(void)
{
    static worker_t w[NTHREADS];
    int i, j, failed = 0;

    run_workers(w, 2000, 0, 5);
    for (i = 0; i < NTHREADS; i++) {
        for (j = 0; j < PER_THREAD; j++) {
            failed += w[i].statuses[j] == -2;
            CHECK(w[i].statuses[j] == 0 || w[i].statuses[j] == -2);
        }
    }
    /* thread 5's item 20 and the batch-mates it had: at least one, and
     * never more than the largest batch */
    CHECK_INT(w[4].statuses[PER_THREAD / 2], -2);
    CHECK(failed >= 1 && failed <= seen.max_batch);
}

UNIT_SUITE(batch,
    T(test_batch_lone_item_commits_at_once_alone),
    T(test_batch_leader_item_not_taken_gets_an_error_not_a_hang),
    T(test_batch_every_item_is_committed_exactly_once_with_its_own_result),
    T(test_batch_commits_never_overlap),
    T(test_batch_items_queued_during_a_commit_share_the_next_one),
    T(test_batch_items_queued_while_statements_run_join_the_open_transaction),
    T(test_batch_leader_commits_its_own_item_in_its_batch),
    T(test_batch_reports_the_size_of_the_transaction_to_every_item),
    T(test_batch_failing_statement_fails_that_item_alone),
    T(test_batch_failed_commit_fails_every_item_of_its_batch_only)
)
