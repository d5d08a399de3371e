//! Cost of registering a session with the tracker: one open plus one finish, from one thread and
//! from 64 concurrent tokio tasks on a multi-thread runtime.
//!
//! Both benchmarks report time per session; with 64 tasks that is wall time divided by the
//! sessions all tasks completed, so it shows whether concurrent sessions serialize on the tracker.

use std::borrow::Cow;
use std::hint::black_box;
use std::panic::Location;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ops_core::tracker::{SessionOutcome, SessionTracker};

const TASKS: u64 = 64;

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker");
    group.throughput(Throughput::Elements(1));
    let tracker = SessionTracker::new(Some(Duration::from_secs(30)));
    let origin = Location::caller();
    group.bench_function("open_finish/1_thread", |b| {
        b.iter(|| {
            let ticket = tracker.open(Cow::Borrowed(black_box("bench")), origin);
            ticket.finish(SessionOutcome::Committed);
        });
    });
    group.finish();
}

fn concurrent_tasks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let workers = runtime.metrics().num_workers();
    let mut group = c.benchmark_group("tracker");
    group.throughput(Throughput::Elements(1));
    let tracker = SessionTracker::new(Some(Duration::from_secs(30)));
    group.bench_function(
        format!("open_finish/{TASKS}_tasks_{workers}_workers"),
        |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let tracker = tracker.clone();
                async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|task| {
                            // Spread `iters` sessions over the tasks so the time is per session.
                            let sessions = iters / TASKS + u64::from(task < iters % TASKS);
                            let tracker = tracker.clone();
                            tokio::spawn(async move {
                                let origin = Location::caller();
                                for _ in 0..sessions {
                                    let ticket =
                                        tracker.open(Cow::Borrowed(black_box("bench")), origin);
                                    ticket.finish(SessionOutcome::Committed);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("bench task succeeds");
                    }
                    start.elapsed()
                }
            });
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = single_thread, concurrent_tasks
}
criterion_main!(benches);
