/* k2_batch.c: the group-commit queue of k2_batch.h. */
#include "apr_thread_mutex.h"

#include "k2_batch.h"

enum { K2_BATCH_QUEUED = 0, K2_BATCH_LEADING, K2_BATCH_DONE };

struct k2_batch_t {
    apr_thread_mutex_t *mutex;
    k2_batch_commit_fn *fn;
    k2_batch_item_t *head, *tail;       /* queued, not yet taken by a leader */
    int leading;                        /* a leader is committing */
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

apr_status_t k2_batch_submit(k2_batch_t *b, k2_batch_item_t *item,
                             void *leader, apr_pool_t *pool)
{
    k2_batch_item_t **items, *it;
    apr_status_t rv;
    int n, i;

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
        b->leading = 1;                 /* nobody commits: lead at once */
        item->state = K2_BATCH_LEADING;
    }
    while (item->state == K2_BATCH_QUEUED) {
        apr_thread_cond_wait(item->cond, b->mutex);
    }
    if (item->state == K2_BATCH_DONE) {
        apr_thread_mutex_unlock(b->mutex);
        return APR_SUCCESS;
    }

    /* The leader takes everything queued, itself included. */
    for (n = 0, it = b->head; it; it = it->next) {
        n++;
    }
    items = apr_palloc(pool, sizeof(*items) * (apr_size_t)n);
    for (i = 0, it = b->head; it; it = it->next) {
        items[i++] = it;
    }
    b->head = b->tail = NULL;
    apr_thread_mutex_unlock(b->mutex);

    b->fn(leader, items, n, pool);

    apr_thread_mutex_lock(b->mutex);
    for (i = 0; i < n; i++) {
        items[i]->batch_size = n;
        items[i]->state = K2_BATCH_DONE;
        if (items[i] != item) {
            /* Once signalled and the mutex released, a follower returns
             * and its item (in its pool) is gone: not touched again. */
            apr_thread_cond_signal(items[i]->cond);
        }
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
