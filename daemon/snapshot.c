/*
 * snapshot.c: checkpoint slicing (snapshot.h): the loop's half of the
 * handoff to the store's writer described in checkpoint.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/snapshot.h"

#include "daemon/server_internal.h"

/* How long the snapshot lets the cursor wait, slice after slice, for the
 * batch stepping its slot to be delivered before it waits in a slice, ns. */
#define SN_WAIT_NS 20000000

void sn_start(dm *d) {
    if (ck_busy(d->ck)) { d->ckpt_want = 1; return; }
    d->ckpt_want = 0;
    /* Rows of series idle for idle_ttl go in the same transaction. */
    if (d->cfg.idle_ttl > 0) ck_expire_before(d->ck, lg_wall_s() - d->cfg.idle_ttl);
    if (ck_begin(d->ck) != RC_OK) { d->ckpt_want = 1; return; }
    d->ckpt_gen++;
    d->job_is_ckpt = 1;
    d->snap_active = 1;
    d->snap_cursor = 0;
    d->snap_wait_ns = 0;
    d->snap_rows = 0;
    d->snap_ns = 0;
    d->snap_slice_max_ns = 0;
}

/* The time is read every 32 slots: one en_slot_save is a few us. The
 * engine keeps stepping meanwhile: a slot whose sample is in flight stops
 * the slice (the loop comes back when the batch is delivered) rather than
 * waiting in it, unless the cursor has already waited SN_WAIT_NS there (a
 * series in every batch). A slot with a sample only queued is saved as it
 * is; that sample goes into the next checkpoint. */
int sn_slice(dm *d, int64_t budget_ns) {
    int64_t t0 = lg_mono_ns();
    uint32_t done = 0, s = d->snap_cursor;
    int progress = 0;
    for (s = rg_next(d->rg, s); s != RG_NONE; s = rg_next(d->rg, s + 1)) {
        if ((++done & 31) == 0 && lg_mono_ns() - t0 > budget_ns) break;
        if (en_slot_in_flight(d->en, s)) {
            int64_t now = lg_mono_ns();
            if (!d->snap_wait_ns) d->snap_wait_ns = now;
            if (now - d->snap_wait_ns < SN_WAIT_NS) break;
        }
        d->snap_wait_ns = 0;
        if (!d->ckpt_full && !en_slot_dirty(d->en, s)) continue;
        size_t len;
        const char *id = rg_id(d->rg, s, &len);
        uint8_t *b = ck_snap_add(d->ck, id, len, d->model->hash);
        if (!b) break; /* every chunk is with the writer: resume here later */
        en_slot_save(d->en, s, b);
        en_slot_clear_dirty(d->en, s);
        d->snap_rows++;
        progress = 1;
    }
    if (s == RG_NONE) {
        ck_seal(d->ck);
        d->snap_active = 0;
        d->ckpt_full = 0;
        progress = 1;
        LOG(LG_DEBUG, "store", "Checkpoint snapshot of %u series handed to the writer.", d->snap_rows);
    } else {
        progress |= s != d->snap_cursor;
        d->snap_cursor = s;
    }
    int64_t took = lg_mono_ns() - t0;
    d->snap_ns += took;
    if (took > d->snap_slice_max_ns) d->snap_slice_max_ns = took;
    if (!d->snap_active) {
        d->last_snapshot_s = (double)d->snap_ns * 1e-9;
        d->last_slice_max_s = (double)d->snap_slice_max_ns * 1e-9;
    }
    return progress;
}

/* Sends evicted states and deletions to the store without a snapshot, so
 * eviction churn does not turn into back-to-back full checkpoints. */
static void flush_evictions(dm *d) {
    if (ck_submit(d->ck) == RC_OK) d->job_is_ckpt = 0;
}

double sn_advance(dm *d) {
    /* Evictions waiting while no checkpoint is due still go out promptly. */
    if (!ck_busy(d->ck) && d->ckpt_want) sn_start(d);
    else if (!ck_busy(d->ck) && ck_pending(d->ck) && lg_mono_ns() >= d->flush_after_ns) flush_evictions(d);
    /* One bounded slice per iteration; come back at once while it moves,
     * soon when it waits for the writer to free a chunk or for a batch in
     * flight (whose end also wakes the loop: the engine's notify fd).
     * Poll more often while the writer works, to collect its result soon. */
    if (d->snap_active) return sn_slice(d, SN_SLICE_NS) && d->snap_active ? 0 : 0.002;
    return ck_busy(d->ck) ? 0.02 : 1.0;
}

int sn_done(dm *d, const ck_result *r) {
    if (r->rc != RC_OK && r->lost)
        LOG(LG_ERROR, "store", "%u evicted states or deletions of the failed job did not fit in the "
            "queue again ('series.evict_queue'); they are lost.", r->lost);
    if (!d->job_is_ckpt) {
        if (r->rc != RC_OK) {
            d->ckpt_fail++;
            /* A failing disk is not retried at loop speed: the rows wait a
             * second, or for the next checkpoint, which carries them too. */
            d->flush_after_ns = lg_mono_ns() + 1000000000LL;
            LOG(LG_ERROR, "store", "Writing evicted series failed (%s); %u states and deletions are queued "
                "for the next try.", r->error, r->requeued);
        }
        return 0;
    }
    d->ckpt_last = *r;
    d->ckpt_have_last = 1;
    if (r->rc == RC_OK) {
        d->ckpt_count++;
        d->ckpt_ok_at = r->started + r->duration;
        d->rows_expired += r->expired;
        if (r->expired) LOG(LG_VERBOSE, "store", "%u idle series' rows expired (series.idle_ttl).", r->expired);
        LOG(LG_VERBOSE, "store", "Checkpoint: %u rows in %.3f s.", r->rows, r->duration);
    } else {
        d->ckpt_fail++;
        d->ckpt_full = 1;
        LOG(LG_ERROR, "store", "Checkpoint failed (%s); the next one rewrites every series.", r->error);
    }
    return 1;
}
