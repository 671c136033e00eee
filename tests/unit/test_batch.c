/* test_batch.c: unit tests of k2_batch.c, the group-commit queue, driven
 * from APR threads with a fake commit function (no database, no httpd). */
#ifndef _GNU_SOURCE                     /* RTLD_NEXT (APR's flags define it) */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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

/* -- items never run, followers that stop waiting ---------------------------- */

/* A commit function that takes every item and sets no result: a bug the
 * queue must not turn into a success. */
static void forgetful_commit(void *leader, k2_batch_t *b, apr_pool_t *pool)
{
    (void)leader; (void)pool;
    while (k2_batch_next(b) != NULL) {
        seen.commits++;
    }
}

static void test_batch_item_whose_result_no_commit_function_set_is_not_a_success(void)
{
    apr_pool_t *p = test_pool();
    k2_batch_t *b;
    fake_stmt_t st = { 7, 0, 0 };
    fake_leader_t l = { 0 };
    k2_batch_item_t item;

    reset_seen(0);
    CHECK_INT(k2_batch_create(&b, forgetful_commit, p), APR_SUCCESS);
    memset(&item, 0, sizeof(item));     /* status 0 before it is submitted */
    item.data = &st;
    CHECK_INT(k2_batch_submit(b, &item, &l, p), APR_SUCCESS);
    CHECK_INT(seen.commits, 1);
    CHECK_INT(item.status, K2_BATCH_NOT_RUN);
    CHECK(strstr(item.err, "not run") != NULL);

    k2_batch_item_init(&item, &st);     /* committed without a queue */
    CHECK_INT(item.status, K2_BATCH_NOT_RUN);
    CHECK(item.data == &st);
    CHECK(strstr(item.err, "not run") != NULL);
    apr_pool_destroy(p);
}

/* The leader's transaction: its own item, then it waits (as for a lock a
 * stopped process holds) until the test lets it go on, then takes whatever
 * is queued, and commits. */
static struct {
    volatile apr_uint32_t leading;      /* the leader took its own item */
    volatile apr_uint32_t go;           /* the test lets it take the rest */
    volatile apr_uint32_t hold_taken;   /* hold this long after taking all */
    int taken_after;                    /* items taken once it went on */
} stuck;

static void stuck_commit(void *leader, k2_batch_t *b, apr_pool_t *pool)
{
    k2_batch_item_t *items[K2_BATCH_MAX], *it;
    int i, n = 0;

    (void)leader; (void)pool;
    items[n++] = k2_batch_next(b);
    apr_atomic_set32(&stuck.leading, 1);
    while (!apr_atomic_read32(&stuck.go)) {
        apr_sleep(1000);
    }
    while ((it = k2_batch_next(b)) != NULL) {
        items[n++] = it;
        stuck.taken_after++;
    }
    if (stuck.hold_taken) {
        apr_sleep(stuck.hold_taken);
    }
    for (i = 0; i < n; i++) {
        items[i]->status = 0;
        items[i]->nrows = ((const fake_stmt_t *)items[i]->data)->id;
    }
}

typedef struct {
    k2_batch_t *b;
    fake_stmt_t st;
    k2_batch_item_t item;
    apr_status_t rv;
    apr_time_t waited;
} one_submit_t;

static void *APR_THREAD_FUNC submit_one(apr_thread_t *t, void *data)
{
    one_submit_t *o = data;
    fake_leader_t l = { o->st.id };
    apr_pool_t *rp;
    apr_time_t t0 = apr_time_now();

    apr_pool_create(&rp, NULL);
    memset(&o->item, 0, sizeof(o->item));
    o->item.data = &o->st;
    o->rv = k2_batch_submit(o->b, &o->item, &l, rp);
    o->waited = apr_time_now() - t0;
    apr_pool_destroy(rp);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void start_stuck_leader(apr_pool_t *p, k2_batch_t *b, one_submit_t *o,
                               apr_thread_t **t)
{
    memset(&stuck, 0, sizeof(stuck));
    memset(o, 0, sizeof(*o));
    o->b = b;
    o->st.id = 1;
    CHECK_INT(apr_thread_create(t, NULL, submit_one, o, p), APR_SUCCESS);
    while (!apr_atomic_read32(&stuck.leading)) {
        apr_sleep(1000);
    }
}

static void test_batch_queued_follower_gives_up_after_its_patience_not_run(void)
{
    apr_pool_t *p = test_pool();
    apr_thread_t *lt, *ft;
    one_submit_t leader, follower;
    apr_status_t rv;
    k2_batch_t *b;

    alarm(30);
    CHECK_INT(k2_batch_create(&b, stuck_commit, p), APR_SUCCESS);
    k2_batch_patience(b, apr_time_from_msec(200));
    start_stuck_leader(p, b, &leader, &lt);
    memset(&follower, 0, sizeof(follower));
    follower.b = b;
    follower.st.id = 2;
    CHECK_INT(apr_thread_create(&ft, NULL, submit_one, &follower, p), APR_SUCCESS);
    apr_thread_join(&rv, ft);           /* while the leader is stuck */
    CHECK_INT(follower.rv, APR_TIMEUP);
    CHECK_INT(follower.item.status, K2_BATCH_NOT_RUN);
    CHECK(strstr(follower.item.err, "within 200 ms") != NULL);
    CHECK(follower.waited >= apr_time_from_msec(200));
    /* Out of the queue: the leader, once it goes on, never sees it. */
    apr_atomic_set32(&stuck.go, 1);
    apr_thread_join(&rv, lt);
    CHECK_INT(leader.rv, APR_SUCCESS);
    CHECK_INT(leader.item.status, 0);
    CHECK_INT(stuck.taken_after, 0);
    CHECK_INT(leader.item.batch_size, 1);
    alarm(0);
    apr_pool_destroy(p);
}

static void test_batch_taken_follower_waits_for_its_transaction_to_end(void)
{
    apr_pool_t *p = test_pool();
    apr_thread_t *lt, *ft;
    one_submit_t leader, follower;
    apr_status_t rv;
    k2_batch_t *b;

    alarm(30);
    CHECK_INT(k2_batch_create(&b, stuck_commit, p), APR_SUCCESS);
    k2_batch_patience(b, apr_time_from_msec(100));
    start_stuck_leader(p, b, &leader, &lt);
    stuck.hold_taken = apr_time_from_msec(400);   /* past its patience */
    memset(&follower, 0, sizeof(follower));
    follower.b = b;
    follower.st.id = 2;
    CHECK_INT(apr_thread_create(&ft, NULL, submit_one, &follower, p), APR_SUCCESS);
    apr_sleep(apr_time_from_msec(20));  /* queued, within its patience */
    apr_atomic_set32(&stuck.go, 1);     /* taken at once */
    apr_thread_join(&rv, ft);
    apr_thread_join(&rv, lt);
    CHECK_INT(stuck.taken_after, 1);
    CHECK_INT(follower.rv, APR_SUCCESS);
    CHECK_INT(follower.item.status, 0);
    CHECK_INT(follower.item.nrows, 2);
    CHECK_INT(follower.item.batch_size, 2);
    CHECK(follower.waited >= apr_time_from_msec(400));
    alarm(0);
    apr_pool_destroy(p);
}

/* A clock that stands still: a queued follower measured on it never runs
 * out of patience, however long the wall clock says it has waited. */
static apr_time_t frozen_clock(void)
{
    return apr_time_from_sec(1000);
}

static void test_batch_follower_patience_is_measured_on_the_queue_s_clock_not_the_wall_clock(void)
{
    apr_pool_t *p = test_pool();
    apr_thread_t *lt, *ft;
    one_submit_t leader, follower;
    apr_status_t rv;
    k2_batch_t *b;

    alarm(30);
    CHECK_INT(k2_batch_create(&b, stuck_commit, p), APR_SUCCESS);
    k2_batch_patience(b, apr_time_from_msec(50));
    k2_batch_clock(b, frozen_clock);
    start_stuck_leader(p, b, &leader, &lt);
    memset(&follower, 0, sizeof(follower));
    follower.b = b;
    follower.st.id = 2;
    CHECK_INT(apr_thread_create(&ft, NULL, submit_one, &follower, p), APR_SUCCESS);
    apr_sleep(apr_time_from_msec(400)); /* eight patiences on the wall clock */
    apr_atomic_set32(&stuck.go, 1);
    apr_thread_join(&rv, ft);
    apr_thread_join(&rv, lt);
    CHECK_INT(follower.rv, APR_SUCCESS);
    CHECK_INT(follower.item.status, 0);
    CHECK_INT(follower.item.nrows, 2);
    CHECK_INT(follower.item.batch_size, 2);
    CHECK_INT(stuck.taken_after, 1);
    alarm(0);
    apr_pool_destroy(p);
}

static void test_k2_clock_is_the_system_s_monotonic_clock_not_the_wall_clock(void)
{
    struct timespec ts;
    apr_time_t mono, k2 = k2_clock();

    clock_gettime(CLOCK_MONOTONIC, &ts);
    mono = (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
    CHECK(k2 <= mono && mono - k2 < APR_USEC_PER_SEC);
}

/* -- the observer of the queue -------------------------------------------- */

static struct {
    volatile apr_uint32_t calls;
    int leader[8];                      /* the submitter's thread number */
    int waiting[8];
} queued;

static void note_queued(void *leader, int waiting)
{
    apr_uint32_t i = apr_atomic_read32(&queued.calls);

    if (i < 8) {
        queued.leader[i] = ((const fake_leader_t *)leader)->thread;
        queued.waiting[i] = waiting;
    }
    apr_atomic_inc32(&queued.calls);
}

static void test_batch_observer_sees_each_follower_queued_not_the_leader(void)
{
    apr_pool_t *p = test_pool();
    apr_thread_t *lt, *ft[3];
    one_submit_t leader, follower[3];
    apr_status_t rv;
    k2_batch_t *b;
    int i;

    alarm(30);
    memset(&queued, 0, sizeof(queued));
    CHECK_INT(k2_batch_create(&b, stuck_commit, p), APR_SUCCESS);
    k2_batch_on_queued(b, note_queued);
    start_stuck_leader(p, b, &leader, &lt);
    CHECK_INT(apr_atomic_read32(&queued.calls), 0);     /* it leads */
    for (i = 0; i < 3; i++) {
        memset(&follower[i], 0, sizeof(follower[i]));
        follower[i].b = b;
        follower[i].st.id = 2 + i;
        CHECK_INT(apr_thread_create(&ft[i], NULL, submit_one, &follower[i], p),
                  APR_SUCCESS);
        while (apr_atomic_read32(&queued.calls) != (apr_uint32_t)i + 1) {
            apr_sleep(1000);            /* queued once it is seen */
        }
    }
    for (i = 0; i < 3; i++) {
        CHECK_INT(queued.leader[i], 2 + i);
        CHECK_INT(queued.waiting[i], i + 1);
    }
    apr_atomic_set32(&stuck.go, 1);
    for (i = 0; i < 3; i++) {
        apr_thread_join(&rv, ft[i]);
        CHECK_INT(follower[i].item.status, 0);
        CHECK_INT(follower[i].item.batch_size, 4);
    }
    apr_thread_join(&rv, lt);
    CHECK_INT(stuck.taken_after, 3);
    CHECK_INT(apr_atomic_read32(&queued.calls), 3);
    alarm(0);
    apr_pool_destroy(p);
}

/* -- a transaction never takes more than K2_BATCH_MAX ---------------------- */

/* To know that items are queued without taking them: a follower waits for
 * its turn in apr_thread_cond_wait, called under the queue's mutex once its
 * item is queued.  This binary's own apr_thread_cond_wait (the one k2_batch.c
 * is linked to) counts the threads that got there, then waits in APR's. */
static apr_status_t (*apr_cond_wait)(apr_thread_cond_t *, apr_thread_mutex_t *);
static volatile apr_uint32_t cond_waiters;     /* threads that waited once */
static __thread int cond_waited;

__attribute__((constructor)) static void find_apr_cond_wait(void)
{
    *(void **)&apr_cond_wait = dlsym(RTLD_NEXT, "apr_thread_cond_wait");
}

apr_status_t apr_thread_cond_wait(apr_thread_cond_t *cond,
                                  apr_thread_mutex_t *mutex)
{
    if (!cond_waited) {
        cond_waited = 1;
        apr_atomic_inc32(&cond_waiters);
    }
    return apr_cond_wait(cond, mutex);
}

#define CAP_FOLLOWERS (K2_BATCH_MAX + 10)

static struct {
    k2_batch_t *b;
    apr_pool_t *pool;
    apr_thread_t *threads[CAP_FOLLOWERS];
    k2_batch_item_t items[CAP_FOLLOWERS + 1];   /* [0] the first leader's */
    fake_stmt_t stmts[CAP_FOLLOWERS + 1];
    int ntransactions;
    int sizes[4];
    int taken[CAP_FOLLOWERS + 1];
    int all_queued;
} cap;

static void *APR_THREAD_FUNC cap_follower(apr_thread_t *t, void *data)
{
    int id = (int)(apr_uintptr_t)data;
    fake_leader_t l = { id };
    apr_pool_t *rp;

    apr_pool_create(&rp, NULL);
    if (k2_batch_submit(cap.b, &cap.items[id], &l, rp) != APR_SUCCESS) {
        cap.items[id].status = -3;
    }
    apr_pool_destroy(rp);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* The first transaction starts the followers, waits until every one of them
 * is queued behind it, then takes items until k2_batch_next says no more:
 * it must stop at K2_BATCH_MAX though more are queued; the next leader
 * takes the rest. */
static void cap_commit(void *leader, k2_batch_t *b, apr_pool_t *pool)
{
    k2_batch_item_t *it;
    int i, n = 0;

    (void)leader; (void)pool;
    if (cap.ntransactions == 0) {
        apr_threadattr_t *attr;
        apr_time_t deadline = apr_time_now() + apr_time_from_sec(30);

        apr_threadattr_create(&attr, cap.pool);
        apr_threadattr_stacksize_set(attr, 256 * 1024);
        for (i = 0; i < CAP_FOLLOWERS; i++) {
            CHECK_INT(apr_thread_create(&cap.threads[i], attr, cap_follower,
                                        (void *)(apr_uintptr_t)(i + 1), cap.pool),
                      APR_SUCCESS);
        }
        while (apr_atomic_read32(&cond_waiters) < CAP_FOLLOWERS
               && apr_time_now() < deadline) {
            apr_sleep(1000);
        }
        cap.all_queued = apr_atomic_read32(&cond_waiters) == CAP_FOLLOWERS;
        if (!cap.all_queued) {
            return;                     /* reported by the test */
        }
    }
    /* at most one call past the limit: a 257th item would already have
     * overwritten what follows the queue's array */
    while (n <= K2_BATCH_MAX && (it = k2_batch_next(b)) != NULL) {
        const fake_stmt_t *st = it->data;

        n++;
        cap.taken[st->id]++;
        it->status = 0;
        it->nrows = st->id;
    }
    if (n > K2_BATCH_MAX) {
        unit_fail_at(__FILE__, __LINE__, "k2_batch_next gave one transaction "
                     "a %dth item (K2_BATCH_MAX is %d)", n, K2_BATCH_MAX);
    }
    if (cap.ntransactions < 4) {
        cap.sizes[cap.ntransactions] = n;
    }
    cap.ntransactions++;
}

static void test_batch_next_gives_no_item_past_k2_batch_max_the_rest_go_next(void)
{
    fake_leader_t l = { 0 };
    apr_status_t rv;
    int i, wrong = 0;

    memset(&cap, 0, sizeof(cap));
    cond_waiters = 0;
    cap.pool = test_pool();
    alarm(60);
    CHECK_INT(k2_batch_create(&cap.b, cap_commit, cap.pool), APR_SUCCESS);
    for (i = 0; i <= CAP_FOLLOWERS; i++) {
        cap.stmts[i].id = i;
        cap.items[i].data = &cap.stmts[i];
        cap.items[i].status = 99;
    }
    CHECK_INT(k2_batch_submit(cap.b, &cap.items[0], &l, cap.pool), APR_SUCCESS);
    for (i = 0; i < CAP_FOLLOWERS; i++) {
        apr_thread_join(&rv, cap.threads[i]);
    }
    alarm(0);
    if (!cap.all_queued) {
        unit_fail_at(__FILE__, __LINE__, "only %u of %d followers reached "
                     "apr_thread_cond_wait (does k2_batch wait otherwise now?)",
                     apr_atomic_read32(&cond_waiters), CAP_FOLLOWERS);
        apr_pool_destroy(cap.pool);
        return;
    }
    /* 256 of the 267 queued in the first transaction, the 11 others next */
    CHECK_INT(cap.ntransactions, 2);
    CHECK_INT(cap.sizes[0], K2_BATCH_MAX);
    CHECK_INT(cap.sizes[1], CAP_FOLLOWERS + 1 - K2_BATCH_MAX);
    CHECK_INT(cap.items[0].batch_size, K2_BATCH_MAX);
    /* each item taken once, with its own result and its transaction's size */
    for (i = 0; i <= CAP_FOLLOWERS; i++) {
        wrong += cap.taken[i] != 1 || cap.items[i].status != 0
                 || cap.items[i].nrows != i
                 || (cap.items[i].batch_size != cap.sizes[0]
                     && cap.items[i].batch_size != cap.sizes[1]);
    }
    CHECK_INT(wrong, 0);
    apr_pool_destroy(cap.pool);
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
    T(test_batch_failed_commit_fails_every_item_of_its_batch_only),
    T(test_batch_item_whose_result_no_commit_function_set_is_not_a_success),
    T(test_batch_queued_follower_gives_up_after_its_patience_not_run),
    T(test_batch_taken_follower_waits_for_its_transaction_to_end),
    T(test_batch_follower_patience_is_measured_on_the_queue_s_clock_not_the_wall_clock),
    T(test_k2_clock_is_the_system_s_monotonic_clock_not_the_wall_clock),
    T(test_batch_observer_sees_each_follower_queued_not_the_leader),
    T(test_batch_next_gives_no_item_past_k2_batch_max_the_rest_go_next)
)
