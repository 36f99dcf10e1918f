//! Worker threads kept for splitting a batch over the cores.
//!
//! Starting a thread per call costs tens of microseconds, as much as a whole 1,024-row batch of
//! a small model takes on one core; so the split paid only for big batches. These workers are
//! started once and spin briefly after each job before they sleep, so back-to-back calls (a
//! benchmark loop, `StreamScorer`, the KSQL UDF) find them awake, as onnxruntime's do.
//!
//! One caller at a time uses the workers; a second, concurrent caller runs its parts on its
//! own thread rather than wait (two callers would fight over the same cores anyway).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker keeps spinning for the next job before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// A job shared with the workers: `part(i)` for the parts it was given.
type Part<'a> = &'a (dyn Fn(usize) + Sync);

struct Job {
    /// The caller's closure with its lifetime erased: `run` does not return before every
    /// worker has finished with it, which is what makes this sound.
    part: Part<'static>,
    index: usize,
}

struct Slot {
    job: Mutex<Option<Job>>,
    wake: Condvar,
    /// Set with the job, so a spinning worker sees it without taking the lock.
    ready: AtomicBool,
}

struct Pool {
    slots: Vec<Arc<Slot>>,
    /// Parts still running on workers, and the first panic one of them raised.
    pending: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    done: Mutex<()>,
    finished: Condvar,
    /// Held by the caller using the workers.
    in_use: Mutex<()>,
}

/// Threads beside the caller: one per core after the caller's own.
pub fn workers() -> usize {
    super::dense::cores().saturating_sub(1)
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let workers = workers();
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            slots: (0..workers)
                .map(|_| {
                    Arc::new(Slot {
                        job: Mutex::new(None),
                        wake: Condvar::new(),
                        ready: AtomicBool::new(false),
                    })
                })
                .collect(),
            pending: AtomicUsize::new(0),
            panic: Mutex::new(None),
            done: Mutex::new(()),
            finished: Condvar::new(),
            in_use: Mutex::new(()),
        }));
        for (number, slot) in pool.slots.iter().enumerate() {
            let slot = Arc::clone(slot);
            std::thread::Builder::new()
                .name(format!("kafkaml-infer-{number}"))
                .spawn(move || work(pool, &slot))
                .expect("cannot start an inference worker thread");
        }
        pool
    })
}

fn work(pool: &'static Pool, slot: &Slot) {
    loop {
        let job = wait_for_job(slot);
        let result = panic::catch_unwind(AssertUnwindSafe(|| (job.part)(job.index)));
        if let Err(payload) = result {
            let mut first = pool.panic.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(payload);
        }
        if pool.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _guard = pool.done.lock().unwrap_or_else(|e| e.into_inner());
            pool.finished.notify_all();
        }
    }
}

fn wait_for_job(slot: &Slot) -> Job {
    let spin_until = Instant::now() + SPIN;
    while !slot.ready.load(Ordering::Acquire) && Instant::now() < spin_until {
        std::hint::spin_loop();
    }
    let mut job = slot.job.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(taken) = job.take() {
            slot.ready.store(false, Ordering::Release);
            return taken;
        }
        job = slot.wake.wait(job).unwrap_or_else(|e| e.into_inner());
    }
}

/// Runs `part(0)`, ..., `part(parts - 1)`, the first on this thread and the others on the
/// workers (at most `workers() + 1` parts), and returns when all have finished. A panic in any
/// part is raised again here.
pub fn run(parts: usize, part: &(dyn Fn(usize) + Sync)) {
    assert!(
        parts <= workers() + 1,
        "{parts} parts for {} workers",
        workers()
    );
    if parts <= 1 {
        (0..parts).for_each(part);
        return;
    }
    let pool = pool();
    let Ok(_in_use) = pool.in_use.try_lock() else {
        (0..parts).for_each(part);
        return;
    };
    // SAFETY: the lifetime is erased only for as long as this function waits below, until
    // `pending` is zero, i.e. until no worker holds the reference any more.
    let shared: Part<'static> = unsafe { std::mem::transmute::<Part<'_>, Part<'static>>(part) };
    pool.pending.store(parts - 1, Ordering::Release);
    for (index, slot) in (1..parts).zip(&pool.slots) {
        let mut job = slot.job.lock().unwrap_or_else(|e| e.into_inner());
        *job = Some(Job {
            part: shared,
            index,
        });
        slot.ready.store(true, Ordering::Release);
        slot.wake.notify_one();
    }
    let mine = panic::catch_unwind(AssertUnwindSafe(|| part(0)));
    let mut guard = pool.done.lock().unwrap_or_else(|e| e.into_inner());
    while pool.pending.load(Ordering::Acquire) != 0 {
        guard = pool.finished.wait(guard).unwrap_or_else(|e| e.into_inner());
    }
    drop(guard);
    if let Err(payload) = mine {
        panic::resume_unwind(payload);
    }
    if let Some(payload) = pool.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
        panic::resume_unwind(payload);
    }
}

/// A piece of a split batch: its input rows and the output rows they fill, until taken.
type RowPiece<'a> = Mutex<Option<(&'a [f32], &'a mut [f32])>>;

/// Splits row-major `input` (`in_width` floats a row) and `output` (`out_width` a row) into
/// `parts` pieces of whole rows and runs `piece(input rows, output rows)` on each through
/// [`run`].
pub fn run_rows(
    input: &[f32],
    in_width: usize,
    output: &mut [f32],
    out_width: usize,
    parts: usize,
    piece: &(dyn Fn(&[f32], &mut [f32]) + Sync),
) {
    let n_rows = input.len() / in_width.max(1);
    let per_part = n_rows.div_ceil(parts.max(1)).max(1);
    // Each piece is taken once by the part that runs it (a Mutex makes the `&mut` shareable).
    let pieces: Vec<RowPiece<'_>> = input
        .chunks(per_part * in_width)
        .zip(output.chunks_mut(per_part * out_width))
        .map(|pair| Mutex::new(Some(pair)))
        .collect();
    run(pieces.len(), &|part| {
        let taken = pieces[part]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((rows, out)) = taken {
            piece(rows, out);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_and_the_caller_waits_for_all() {
        let parts = workers() + 1;
        let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..200 {
            run(parts, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        for count in &counts {
            assert_eq!(count.load(Ordering::Relaxed), 200);
        }
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller_and_the_pool_still_works() {
        let parts = workers() + 1;
        let caught = panic::catch_unwind(|| {
            run(parts, &|i| {
                if i == parts - 1 {
                    panic!("the last part fails");
                }
            })
        });
        assert!(caught.is_err());
        let total = AtomicUsize::new(0);
        run(parts, &|i| {
            total.fetch_add(i + 1, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), parts * (parts + 1) / 2);
    }
}
