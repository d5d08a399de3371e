//! How bulk cost grows: time per row and peak client memory of `create_many` and `stream` at
//! 10^3, 10^4, 10^5 and 10^6 rows, against SeaORM on the same pool, in one run.
//!
//! ```sh
//! cargo build --release -p ops-benches --bin bulk_curves
//! target/release/bulk_curves run                    # SQLite file (BENCH_DATABASE_URL unset)
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test target/release/bulk_curves run
//! BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306/test target/release/bulk_curves run
//! target/release/bulk_curves plot              # benches/results/bulk-*.csv -> benches/plots/bulk-*.svg
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test target/release/bulk_curves threshold
//! ```
//!
//! `threshold` (PostgreSQL) measures where `COPY` starts to pay: at 10 to 2,000 rows, one
//! multi-row `INSERT` against `BEGIN`, `COPY ... FROM STDIN` (text), `COMMIT` (what `create_many`
//! sends on a `Db` from `COPY_THRESHOLD` rows on), both through sqlx on the `Db`'s own pool, and
//! `create_many` itself; 40 loads per size and contender, order alternating, medians.
//!
//! The contenders:
//! - load: `create_many` (multi-row inserts in one transaction; `COPY` on PostgreSQL above its
//!   threshold) against SeaORM's `insert_many` split under the bind-parameter limit, in one
//!   transaction. The table is emptied before each load, outside the measured time.
//! - read all rows: `stream` (keyset batches) against raw sqlx's `fetch` (one query, rows decoded
//!   as they arrive) and SeaORM's `find().all()` (everything in one `Vec`). SeaORM's own `stream`
//!   needs its `stream` feature, which the workspace does not build.
//!
//! Memory is the process's heap above what it held when the call started, tracked by a counting
//! allocator: the peak during the call. The input rows of a load are built before the call, so a
//! load's peak is what the library adds on top of its input. Each size runs `--repeats` times
//! (default 3; once at 10^6), the contenders' order alternating, and the median time is kept.

// The counting allocator is the one unsafe item: a forwarding `GlobalAlloc` impl.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt as _;
use ops_benches::contenders::insert_many_chunked;
use ops_benches::plot::{self, PlotResult};
use ops_benches::{BenchDb, SqlxPool, bulk_row, bulk_rows};
use ops_sea::prelude::*;
use plotters::prelude::*;
use sea_orm::EntityTrait;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are only
// arithmetic on the sizes the caller passes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = IN_USE.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a measurement: the bytes in use now, with the peak reset to them.
fn memory_baseline() -> usize {
    let now = IN_USE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The peak above `baseline` since [`memory_baseline`].
fn memory_peak(baseline: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(baseline)
}

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const LOADS: [&str; 2] = ["ops_create_many", "seaorm_insert_many"];
const READS: [&str; 3] = ["ops_stream", "sqlx_fetch", "seaorm_all"];

/// One measured point.
#[derive(Clone, Debug)]
struct Point {
    operation: String,
    rows: usize,
    contender: String,
    ns_per_row: f64,
    peak_bytes: usize,
}

const HEADER: &str = "operation,rows,contender,ns_per_row,peak_bytes";

/// Loads `input` with one contender; returns the rows loaded, the time and the peak memory.
async fn load(db: &Db, contender: &str, input: Vec<(String, i32)>) -> (u64, f64, usize) {
    let conn = db.connection();
    let baseline = memory_baseline();
    let started = Instant::now();
    let loaded = if contender == "ops_create_many" {
        let new = input
            .into_iter()
            .map(|(name, qty)| bulk_row::New { name, qty });
        bulk_row::Ops::create_many(db, new)
            .await
            .expect("create_many")
    } else {
        insert_many_chunked(conn, input).await.expect("insert_many")
    };
    let elapsed = started.elapsed().as_secs_f64();
    (loaded, elapsed, memory_peak(baseline))
}

/// Reads every row with one contender; returns the rows read, the time and the peak memory.
async fn read_all(db: &Db, sqlx: &SqlxPool, contender: &str) -> (u64, f64, usize) {
    let conn = db.connection();
    let baseline = memory_baseline();
    let started = Instant::now();
    let mut count = 0u64;
    match contender {
        "ops_stream" => {
            let mut rows = std::pin::pin!(bulk_row::Ops::stream(db));
            while let Some(row) = rows.next().await {
                let _ = std::hint::black_box(row.expect("stream row"));
                count += 1;
            }
        }
        "sqlx_fetch" => {
            macro_rules! fetch {
                ($pool:expr) => {{
                    let mut rows = sqlx::query_as::<_, (i32, String, i32)>(
                        "SELECT id, name, qty FROM bench_bulk ORDER BY id",
                    )
                    .fetch($pool);
                    while let Some(row) = rows.next().await {
                        let _ = std::hint::black_box(row.expect("sqlx row"));
                        count += 1;
                    }
                }};
            }
            match sqlx {
                SqlxPool::Sqlite(p) => fetch!(p),
                SqlxPool::Postgres(p) => fetch!(p),
                SqlxPool::MySql(p) => fetch!(p),
            }
        }
        _ => {
            let all = bulk_row::Entity::find()
                .all(conn)
                .await
                .expect("SeaORM all");
            count = all.len() as u64;
            drop(std::hint::black_box(all));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    (count, elapsed, memory_peak(baseline))
}

fn median(mut values: Vec<(f64, usize)>) -> (f64, usize) {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let time = values[values.len() / 2].0;
    let peak = values.iter().map(|v| v.1).max().unwrap_or(0);
    (time, peak)
}

fn run(args: &[String]) {
    let repeats: usize = ops_benches::load::arg(args, "--repeats", 3);
    let largest: usize = ops_benches::load::arg(args, "--largest", 1_000_000);
    let rt = ops_benches::load::current_thread_runtime();
    let mut points = Vec::new();
    let started = Instant::now();
    let backend = rt.block_on(async {
        let bench = BenchDb::create_for_load()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let backend = bench.backend.label();
        let db = Db::connect(&bench.url).await.expect("connect");
        ops_benches::prepare_schema(&db).await.expect("tables");
        let sqlx = SqlxPool::of(&db);
        for n in SIZES.into_iter().filter(|&n| n <= largest) {
            let input = bulk_rows(n);
            let turns = if n >= 1_000_000 { 1 } else { repeats.max(1) };
            let mut by_load: Vec<Vec<(f64, usize)>> = vec![Vec::new(); LOADS.len()];
            let mut by_read: Vec<Vec<(f64, usize)>> = vec![Vec::new(); READS.len()];
            for turn in 0..turns {
                // The contenders' order alternates each turn.
                let order: Vec<usize> = if turn % 2 == 0 {
                    vec![0, 1]
                } else {
                    vec![1, 0]
                };
                for i in order {
                    sqlx.clear_bulk().await.expect("empty bench_bulk");
                    let (loaded, secs, peak) = load(&db, LOADS[i], input.clone()).await;
                    assert_eq!(loaded, n as u64, "{}: every row loaded", LOADS[i]);
                    by_load[i].push((secs, peak));
                }
                // The table holds n rows now: read them back, rotating the readers.
                for k in 0..READS.len() {
                    let i = (k + turn) % READS.len();
                    let (read, secs, peak) = read_all(&db, &sqlx, READS[i]).await;
                    assert_eq!(read, n as u64, "{}: every row read", READS[i]);
                    by_read[i].push((secs, peak));
                }
            }
            for (operation, names, samples) in
                [("load", &LOADS[..], by_load), ("read", &READS[..], by_read)]
            {
                for (name, values) in names.iter().zip(samples) {
                    let (secs, peak) = median(values);
                    let ns_per_row = secs * 1e9 / n as f64;
                    eprintln!(
                        "{backend} {operation} rows={n} {name}: {ns_per_row:.0} ns/row \
                         ({secs:.3} s), peak {:.1} MiB",
                        peak as f64 / (1024.0 * 1024.0)
                    );
                    points.push(Point {
                        operation: operation.to_owned(),
                        rows: n,
                        contender: (*name).to_owned(),
                        ns_per_row,
                        peak_bytes: peak,
                    });
                }
            }
        }
        sqlx.clear_bulk().await.expect("empty bench_bulk");
        db.close().await;
        if let Err(e) = bench.drop_database().await {
            eprintln!("{e}");
        }
        backend
    });
    let mut csv = String::from(HEADER);
    csv.push('\n');
    for p in &points {
        let _ = writeln!(
            csv,
            "{},{},{},{:.1},{}",
            p.operation, p.rows, p.contender, p.ns_per_row, p.peak_bytes
        );
    }
    std::fs::create_dir_all(plot::results_dir()).expect("create benches/results");
    let path = plot::results_dir().join(format!("bulk-{backend}.csv"));
    std::fs::write(&path, csv).expect("write the results");
    eprintln!(
        "wrote {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}

fn read(path: &Path) -> Vec<Point> {
    let text = std::fs::read_to_string(path).expect("read the results");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Point {
                operation: f[0].to_owned(),
                rows: f[1].parse().expect("rows"),
                contender: f[2].to_owned(),
                ns_per_row: f[3].parse().expect("ns per row"),
                peak_bytes: f[4].parse().expect("peak bytes"),
            }
        })
        .collect()
}

fn color(contender: &str) -> RGBColor {
    match contender {
        "ops_create_many" | "ops_stream" => RGBColor(0x1f, 0x77, 0xb4),
        "seaorm_insert_many" | "seaorm_all" => RGBColor(0xd6, 0x27, 0x28),
        _ => RGBColor(0x2c, 0xa0, 0x2c),
    }
}

fn label(contender: &str) -> &'static str {
    match contender {
        "ops_create_many" => "ops create_many",
        "seaorm_insert_many" => "SeaORM insert_many (chunked, one transaction)",
        "ops_stream" => "ops stream (keyset batches)",
        "sqlx_fetch" => "raw sqlx fetch (streamed)",
        _ => "SeaORM find().all()",
    }
}

/// One figure per backend: rows are load and read, columns time per row and peak memory.
fn plot_backend(backend: &str, points: &[Point]) -> PlotResult {
    let path = plot::plots_dir().join(format!("bulk-{backend}.svg"));
    let root = SVGBackend::new(&path, (1200, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{backend}: bulk load and full read, by number of rows (log scales)"),
        ("sans-serif", 22),
    )?;
    let panels = root.split_evenly((2, 2));
    let largest = points.iter().map(|p| p.rows).max().unwrap_or(1_000) as f64;
    for (index, panel) in panels.iter().enumerate() {
        let (operation, names) = if index < 2 {
            ("load", &LOADS[..])
        } else {
            ("read", &READS[..])
        };
        let memory = index % 2 == 1;
        let cell: Vec<&Point> = points.iter().filter(|p| p.operation == operation).collect();
        let value = |p: &Point| {
            if memory {
                (p.peak_bytes as f64 / (1024.0 * 1024.0)).max(0.01)
            } else {
                p.ns_per_row
            }
        };
        let low = cell.iter().map(|p| value(p)).fold(f64::INFINITY, f64::min);
        let high = cell.iter().map(|p| value(p)).fold(0.0, f64::max);
        let low = if low.is_finite() { low / 1.5 } else { 0.01 };
        let what = if operation == "load" {
            "load"
        } else {
            "read every row"
        };
        let caption = if memory {
            format!("{what}: peak heap above the input (MiB)")
        } else {
            format!("{what}: time per row (ns)")
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62)
            .build_cartesian_2d(
                (500f64..largest * 2.0).log_scale(),
                (low..high * 2.0).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("rows")
            .y_desc(if memory { "MiB" } else { "ns/row" })
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y < 1.0 {
                    format!("{y:.2}")
                } else {
                    format!("{y:.0}")
                }
            })
            .draw()?;
        for &name in names {
            let line: Vec<(f64, f64)> = cell
                .iter()
                .filter(|p| p.contender == name)
                .map(|p| (p.rows as f64, value(p)))
                .collect();
            plot::line_with_dots(&mut chart, &line, color(name), label(name))?;
        }
        plot::legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    root.present()?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn plot_all() -> PlotResult {
    plot::each_backend("bulk", "bulk_curves", |backend, path| {
        plot_backend(backend, &read(path))
    })
}

/// One `BEGIN`, `COPY ... FROM STDIN` in text format, `COMMIT` on a pool connection.
async fn copy_in(pool: &sqlx::PgPool, rows: &[(String, i32)]) -> u64 {
    let mut text = String::with_capacity(rows.len() * 16);
    for (name, qty) in rows {
        // The bench's names need no escaping (letters, digits and a space).
        let _ = writeln!(text, "{name}\t{qty}");
    }
    let mut txn = pool.begin().await.expect("begin");
    let mut copy = txn
        .copy_in_raw("COPY bench_bulk (name, qty) FROM STDIN")
        .await
        .expect("copy in");
    // ops-scan: allow(session-held-across-io) -- the send is the COPY's data, to this transaction's own connection
    copy.send(text.as_bytes()).await.expect("copy data");
    let n = copy.finish().await.expect("copy finish");
    txn.commit().await.expect("commit");
    n
}

fn threshold() {
    const SIZES: [usize; 9] = [10, 50, 100, 200, 350, 500, 750, 1_000, 2_000];
    const CONTENDERS: [&str; 3] = ["insert", "copy", "ops_create_many"];
    const TURNS: usize = 40;
    let rt = ops_benches::load::current_thread_runtime();
    rt.block_on(async {
        let bench = BenchDb::create_for_load()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let db = Db::connect(&bench.url).await.expect("connect");
        ops_benches::prepare_schema(&db).await.expect("tables");
        let sqlx = SqlxPool::of(&db);
        let SqlxPool::Postgres(pg) = &sqlx else {
            eprintln!("threshold: PostgreSQL only (set BENCH_DATABASE_URL=postgres://...)");
            std::process::exit(2);
        };
        println!(
            "| rows | one multi-row INSERT | BEGIN + COPY + COMMIT | `create_many` | INSERT / COPY |"
        );
        println!("| --- | --- | --- | --- | --- |");
        for n in SIZES {
            let input = bulk_rows(n);
            let mut times: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
            for turn in 0..TURNS {
                for k in 0..CONTENDERS.len() {
                    let i = (k + turn) % CONTENDERS.len();
                    sqlx.clear_bulk().await.expect("empty bench_bulk");
                    let started = Instant::now();
                    let loaded = match CONTENDERS[i] {
                        "insert" => sqlx.insert_bulk(&input).await.expect("insert"),
                        "copy" => copy_in(pg, &input).await,
                        _ => bulk_row::Ops::create_many(
                            &db,
                            input.iter().map(|(name, qty)| bulk_row::New {
                                name: name.clone(),
                                qty: *qty,
                            }),
                        )
                        .await
                        .expect("create_many"),
                    };
                    times[i].push(started.elapsed().as_secs_f64() * 1e3);
                    assert_eq!(loaded, n as u64, "{}: every row loaded", CONTENDERS[i]);
                }
            }
            let medians: Vec<f64> = times
                .into_iter()
                .map(|mut t| {
                    t.sort_by(f64::total_cmp);
                    t[t.len() / 2]
                })
                .collect();
            println!(
                "| {n} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} |",
                medians[0],
                medians[1],
                medians[2],
                medians[0] / medians[1]
            );
        }
        sqlx.clear_bulk().await.expect("empty bench_bulk");
        db.close().await;
        if let Err(e) = bench.drop_database().await {
            eprintln!("{e}");
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") => run(&args),
        Some("threshold") => threshold(),
        Some("plot") => {
            if let Err(e) = plot_all() {
                eprintln!("bulk_curves plot: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: bulk_curves run [--repeats N] [--largest ROWS] | threshold | plot");
            std::process::exit(2);
        }
    }
}
