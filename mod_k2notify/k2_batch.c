/* k2_batch.c: the group-commit queue of k2_batch.h. */
#include "apr_strings.h"
#include "apr_thread_mutex.h"

#include "k2_batch.h"

enum { K2_BATCH_QUEUED = 0, K2_BATCH_LEADING, K2_BATCH_TAKEN, K2_BATCH_DONE };

struct k2_batch_t {
    apr_thread_mutex_t *mutex;
    k2_batch_commit_fn *fn;
    k2_batch_item_t *head, *tail;       /* queued, not yet taken */
    int leading;                        /* a leader runs a transaction */
    /* the leader's transaction */
    k2_batch_item_t *taken[K2_BATCH_MAX];
    int ntaken;
};

apr_status_t k2_batch_create(k2_batch_t **batch, k2_batch_commit_fn *fn,
                             apr_pool_t *pool)
{
    k2_batch_t *b = apr_pcalloc(pool, sizeof(*b));
    apr_status_t rv = apr_thread_mutex_create(&b->mutex,
                                              APR_THREAD_MUTEX_DEFAULT, pool);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    b->fn = fn;
    *batch = b;
    return APR_SUCCESS;
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
    apr_status_t rv;
    int i, n;

    rv = apr_thread_cond_create(&item->cond, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    item->next = NULL;
    item->state = K2_BATCH_QUEUED;
    item->batch_size = 0;

    apr_thread_mutex_lock(b->mutex);
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
    while (item->state != K2_BATCH_LEADING && item->state != K2_BATCH_DONE) {
        apr_thread_cond_wait(item->cond, b->mutex);
    }
    if (item->state == K2_BATCH_DONE) {
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
            /* Once signalled and the mutex released, a follower returns
             * and its item (in its pool) is gone: not touched again. */
            apr_thread_cond_signal(it->cond);
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
        apr_thread_cond_signal(b->head->cond);
    }
    else {
        b->leading = 0;
    }
    apr_thread_mutex_unlock(b->mutex);
    return APR_SUCCESS;
}
