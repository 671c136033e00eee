/* k2_batch.c: the group-commit queue of k2_batch.h.
 *
 * Wake-ups: a follower sleeps on a condition variable of its own and the
 * leader signals it once the mutex is released, so that the woken thread
 * finds the mutex free instead of going back to sleep on it (glibc hands a
 * signalled waiter no mutex: signalled under the lock, it wakes, blocks on
 * the mutex still held, and is woken a second time).  A signal that comes
 * after its follower has already returned must touch nothing of the
 * follower's: the condition variables are the queue's, reused from a free
 * list (one per thread that ever waited), never the request's; a late
 * signal to one that another follower has taken since wakes that one
 * spuriously, and it waits again (every wait is in a loop on its state). */
#include <string.h>
#include <time.h>

#include "apr_strings.h"
#include "apr_time.h"
#include "apr_thread_mutex.h"

#include "k2_batch.h"

enum { K2_BATCH_QUEUED = 0, K2_BATCH_LEADING, K2_BATCH_TAKEN, K2_BATCH_DONE };

struct k2_batch_waiter_t {
    apr_thread_cond_t *cond;
    k2_batch_waiter_t *next;            /* on the free list */
};

struct k2_batch_t {
    apr_thread_mutex_t *mutex;
    k2_batch_commit_fn *fn;
    k2_batch_item_t *head, *tail;       /* queued, not yet taken */
    int leading;                        /* a leader runs a transaction */
    apr_interval_time_t patience;       /* of a queued follower, 0: none */
    k2_clock_fn *clock;                 /* what patience is measured on */
    k2_batch_queued_fn *on_queued;      /* or NULL */
    /* the leader's transaction */
    k2_batch_item_t *taken[K2_BATCH_MAX];
    int ntaken;
    /* condition variables not in use; more are made in pool, under the
     * mutex (the pool has an allocator of its own: nothing else allocates
     * from it meanwhile) */
    k2_batch_waiter_t *idle;
    apr_pool_t *pool;
};

apr_status_t k2_batch_create(k2_batch_t **batch, k2_batch_commit_fn *fn,
                             apr_pool_t *pool)
{
    k2_batch_t *b = apr_pcalloc(pool, sizeof(*b));
    apr_allocator_t *allocator;
    apr_status_t rv;

    if ((rv = apr_thread_mutex_create(&b->mutex, APR_THREAD_MUTEX_DEFAULT,
                                      pool)) != APR_SUCCESS
        || (rv = apr_allocator_create(&allocator)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_pool_create_ex(&b->pool, pool, NULL, allocator))
        != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        return rv;
    }
    apr_allocator_owner_set(allocator, b->pool);
    b->fn = fn;
    b->clock = k2_clock;
    *batch = b;
    return APR_SUCCESS;
}

/* A condition variable for one wait, under the mutex. */
static apr_status_t k2_batch_waiter(k2_batch_t *b, k2_batch_waiter_t **w)
{
    apr_status_t rv;

    if ((*w = b->idle) != NULL) {
        b->idle = (*w)->next;
        return APR_SUCCESS;
    }
    *w = apr_palloc(b->pool, sizeof(**w));
    rv = apr_thread_cond_create(&(*w)->cond, b->pool);
    if (rv != APR_SUCCESS) {
        *w = NULL;
    }
    return rv;
}

void k2_batch_item_init(k2_batch_item_t *item, void *data)
{
    memset(item, 0, sizeof(*item));
    item->data = data;
    item->status = K2_BATCH_NOT_RUN;
    apr_cpystrn(item->err, "the notification was not run", sizeof(item->err));
}

void k2_batch_on_queued(k2_batch_t *b, k2_batch_queued_fn *fn)
{
    b->on_queued = fn;
}

void k2_batch_patience(k2_batch_t *b, apr_interval_time_t wait)
{
    b->patience = wait > 0 ? wait : 0;
}

void k2_batch_clock(k2_batch_t *b, k2_clock_fn *clock)
{
    b->clock = clock ? clock : k2_clock;
}

/* APR has no monotonic clock (apr_time_now is the wall clock). */
apr_time_t k2_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Take a queued item out of the queue (b->mutex held). */
static void k2_batch_unlink(k2_batch_t *b, k2_batch_item_t *item)
{
    k2_batch_item_t **pp, *prev = NULL;

    for (pp = &b->head; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == item) {
            *pp = item->next;
            if (b->tail == item) {
                b->tail = prev;
            }
            return;
        }
    }
}

k2_batch_item_t *k2_batch_next(k2_batch_t *b)
{
    k2_batch_item_t *it = NULL;

    apr_thread_mutex_lock(b->mutex);
    if (b->head && b->ntaken < K2_BATCH_MAX) {
        it = b->head;
        b->head = it->next;
        if (!b->head) {
            b->tail = NULL;
        }
        it->state = K2_BATCH_TAKEN;
        b->taken[b->ntaken++] = it;
    }
    apr_thread_mutex_unlock(b->mutex);
    return it;
}

apr_status_t k2_batch_submit(k2_batch_t *b, k2_batch_item_t *item,
                             void *leader, apr_pool_t *pool)
{
    apr_thread_cond_t *wake[K2_BATCH_MAX], *next = NULL;
    apr_status_t rv;
    int i, n, nwake = 0;

    item->next = NULL;
    item->state = K2_BATCH_QUEUED;
    item->batch_size = 0;
    item->status = K2_BATCH_NOT_RUN;
    apr_cpystrn(item->err, "the notification was not run", sizeof(item->err));

    apr_thread_mutex_lock(b->mutex);
    if ((rv = k2_batch_waiter(b, &item->waiter)) != APR_SUCCESS) {
        apr_thread_mutex_unlock(b->mutex);
        return rv;
    }
    if (b->tail) {
        b->tail->next = item;
    }
    else {
        b->head = item;
    }
    b->tail = item;
    if (!b->leading) {
        b->leading = 1;                 /* no transaction open: lead at once */
        item->state = K2_BATCH_LEADING;
    }
    else if (b->on_queued) {
        const k2_batch_item_t *it;
        int waiting = 0;

        for (it = b->head; it; it = it->next) {
            waiting++;
        }
        b->on_queued(leader, waiting);
    }
    if (b->patience) {
        /* A wait on the condition variable is on the wall clock (APR's
         * timed wait takes no other), so a step of it may end one early:
         * the deadline itself is on b->clock, and a wait that ended early
         * is waited again. */
        apr_time_t deadline = b->clock() + b->patience;

        while (item->state == K2_BATCH_QUEUED) {
            apr_interval_time_t left = deadline - b->clock();

            if (left <= 0) {
                /* Not taken: nobody will touch it once it is out of the
                 * queue, and no leader signals a queued item's condition
                 * variable (only the head's, made leader under the mutex). */
                k2_batch_unlink(b, item);
                item->waiter->next = b->idle;
                b->idle = item->waiter;
                apr_thread_mutex_unlock(b->mutex);
                apr_snprintf(item->err, sizeof(item->err), "no transaction "
                             "took this notification within %" APR_TIME_T_FMT
                             " ms (the one running before it does not end): "
                             "not run", apr_time_as_msec(b->patience));
                return APR_TIMEUP;
            }
            apr_thread_cond_timedwait(item->waiter->cond, b->mutex, left);
        }
    }
    /* Taken by a transaction (its leader writes its result) or leading. */
    while (item->state != K2_BATCH_LEADING && item->state != K2_BATCH_DONE) {
        apr_thread_cond_wait(item->waiter->cond, b->mutex);
    }
    if (item->state == K2_BATCH_DONE) {
        item->waiter->next = b->idle;   /* a late signal to it is harmless */
        b->idle = item->waiter;
        apr_thread_mutex_unlock(b->mutex);
        return APR_SUCCESS;
    }
    /* Leading: this item is the head of the queue, taken first. */
    b->ntaken = 0;
    apr_thread_mutex_unlock(b->mutex);

    b->fn(leader, b, pool);

    apr_thread_mutex_lock(b->mutex);
    n = b->ntaken;
    for (i = 0; i < n; i++) {
        k2_batch_item_t *it = b->taken[i];

        it->batch_size = n;
        it->state = K2_BATCH_DONE;
        if (it != item) {
            /* Once the mutex is released, a follower may return at any
             * time and its item (in its pool) is gone: only its condition
             * variable, the queue's, is touched again. */
            wake[nwake++] = it->waiter->cond;
        }
    }
    b->ntaken = 0;
    if (item->state != K2_BATCH_DONE) {
        /* The commit function never took the leader's own item (still the
         * head of the queue): it has no result; say so rather than leave it
         * queued. */
        b->head = item->next;
        if (!b->head) {
            b->tail = NULL;
        }
        item->state = K2_BATCH_DONE;
        item->status = -1;
        apr_cpystrn(item->err, "the transaction ended before this "
                    "notification was run", sizeof(item->err));
        item->batch_size = 0;
    }
    if (b->head) {
        b->head->state = K2_BATCH_LEADING;      /* hand over */
        next = b->head->waiter->cond;
    }
    else {
        b->leading = 0;
    }
    item->waiter->next = b->idle;
    b->idle = item->waiter;
    apr_thread_mutex_unlock(b->mutex);

    /* The next leader first: the next transaction is what the other
     * notifications queued since wait for; its followers' replies can be
     * written while it runs. */
    if (next) {
        apr_thread_cond_signal(next);
    }
    for (i = 0; i < nwake; i++) {
        apr_thread_cond_signal(wake[i]);
    }
    return APR_SUCCESS;
}
