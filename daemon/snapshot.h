/*
 * snapshot.h: checkpoints from the loop's side: copying the dirty series
 * states into the store's checkpoint job in time-budgeted slices, sending
 * evictions on their own, and collecting a job's result. Prefix: sn_.
 *
 * Checkpoints never stall ingest for long: the snapshot is copied in
 * slices of at most SN_SLICE_NS of loop time, one per loop iteration, into
 * the store's fixed chunks while the writer thread writes earlier chunks
 * inside the checkpoint's single transaction (checkpoint.h). A slot is
 * copied at most once per checkpoint, when the cursor passes it; a slot
 * changed after that is dirty again and goes into the next checkpoint. The
 * engine's workers keep stepping meanwhile: the cursor waits (across
 * slices) only at a slot whose own sample is in flight.
 *
 * Errors: a failed job is counted (d->ckpt_fail) and logged, and the next
 * checkpoint rewrites every series; a failed eviction-only job loses those
 * states (logged). Nothing here fails the daemon.
 *
 * Threads: the event-loop thread only; the store's writer does the SQLite
 * work. Every function takes the daemon state (server_internal.h) and
 * writes its "Checkpoints" section.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SNAPSHOT_H
#define SNAPSHOT_H

#include <stdint.h>

#include "daemon/checkpoint.h"

typedef struct dm dm;

/* Loop time one snapshot slice may take: the ingest stall bound of a checkpoint, ns. */
#define SN_SLICE_NS 2000000
/* Rows per snapshot chunk (the store keeps 4): about 1 MB each for the default model. */
#define SN_CHUNK_ROWS 256

/* Asks for a checkpoint: opens the store's job now, or, while a job is in
 * flight, sets d->ckpt_want so sn_advance opens it once the writer is idle.
 * d->ckpt_gen counts the checkpoints begun. */
void sn_start(dm *d);

/*
 * Copies dirty slots from the cursor on for at most budget_ns of loop
 * time, or until every chunk is with the writer; seals the job once the
 * cursor has passed the last slot. Returns 1 when it made progress (or
 * finished), 0 when it is blocked on the writer or on a slot in flight.
 * Only while d->snap_active.
 */
int sn_slice(dm *d, int64_t budget_ns);

/*
 * The checkpoint part of one loop iteration (after any finished job was
 * collected with sn_done): opens a wanted checkpoint, or sends pending
 * evictions on their own, once the writer is idle; copies one slice.
 * Returns the longest the loop may then sleep, seconds: 0 while the
 * snapshot moves, a little while it waits, longer when all is idle.
 */
double sn_advance(dm *d);

/* Books a finished job's result r (from ck_poll or ck_wait): counters,
 * d->ckpt_last, the log line, a full rewrite next after a failure.
 * Returns 1 when the job was a checkpoint, 0 when it only carried
 * evictions and deletions (no client waits for those). */
int sn_done(dm *d, const ck_result *r);

#endif
