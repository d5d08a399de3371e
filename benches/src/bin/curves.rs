//! How cost grows: throughput and p50/p99 latency of a primary-key `get` and of a 2-statement
//! managed session at 1, 8, 64 and 256 concurrent tasks, for pool sizes 5, 10 and 20; ops against
//! SeaORM and sqlx, each with its own defaults apart from the pool size, in one run.
//!
//! ```sh
//! cargo build --release -p ops-benches --bin curves
//! target/release/curves run                    # SQLite file (BENCH_DATABASE_URL unset)
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test target/release/curves run
//! BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306/test target/release/curves run
//! target/release/curves plot                   # benches/results/*.csv -> benches/plots/*.svg
//! ```
//!
//! `benches/curves.sh` runs all three and plots. Each point is `--rounds 3` turns of `--round
//! 0.5` seconds per contender, order rotated each round (see `ops_benches::load`); a backend takes
//! about two and a half minutes.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ops_benches::contenders::{bump, bump_by_hand};
use ops_benches::load::{self, Contender, Plan};
use ops_benches::plot::{self, PlotResult};
use ops_benches::{BenchDb, SEEDED, SqlxPool, item};
use ops_sea::Db;
use plotters::prelude::*;
use sea_orm::{ConnectOptions, DatabaseConnection, EntityTrait};

const POOL_SIZES: [u32; 3] = [5, 10, 20];
const TASKS: [usize; 4] = [1, 8, 64, 256];
const OPERATIONS: [&str; 2] = ["get", "session"];
const CONTENDERS: [&str; 3] = ["ops", "seaorm", "sqlx"];

fn key(n: u64) -> i32 {
    i32::try_from(n.wrapping_mul(7919) % u64::try_from(SEEDED).unwrap_or(1)).unwrap_or(0) + 1
}

/// The three pools of one pool size.
struct Pools {
    ops: Db,
    sea: DatabaseConnection,
    sqlx: SqlxPool,
}

impl Pools {
    async fn connect(url: &str, size: u32) -> Pools {
        let ops = Db::builder(url)
            .pool_size(size)
            .connect()
            .await
            .expect("Db connect");
        let mut options = ConnectOptions::new(url.to_owned());
        options.max_connections(size);
        let sea = sea_orm::Database::connect(options)
            .await
            .expect("SeaORM connect");
        let sqlx = SqlxPool::connect(url, Some(size))
            .await
            .expect("sqlx connect");
        Pools { ops, sea, sqlx }
    }

    fn contender(&self, name: &str, operation: &str) -> Contender {
        let op = match (name, operation) {
            ("ops", "get") => {
                let db = self.ops.clone();
                load::op(move |n| {
                    let db = db.clone();
                    async move {
                        item::Ops::get(&db, key(n))
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                })
            }
            ("ops", _) => {
                let db = self.ops.clone();
                load::op(move |n| {
                    let db = db.clone();
                    async move { bump(&db, key(n)).await.map(drop).map_err(|e| e.to_string()) }
                })
            }
            ("seaorm", "get") => {
                let conn = self.sea.clone();
                load::op(move |n| {
                    let conn = conn.clone();
                    async move {
                        match item::Entity::find_by_id(key(n)).one(&conn).await {
                            Ok(Some(_)) => Ok(()),
                            Ok(None) => Err("row not found".to_owned()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                })
            }
            ("seaorm", _) => {
                let conn = self.sea.clone();
                load::op(move |n| {
                    let conn = conn.clone();
                    async move {
                        bump_by_hand(&conn, key(n))
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                })
            }
            (_, "get") => {
                let pool = self.sqlx.clone();
                load::op(move |n| {
                    let pool = pool.clone();
                    async move { pool.get(key(n)).await.map(drop).map_err(|e| e.to_string()) }
                })
            }
            _ => {
                let pool = self.sqlx.clone();
                load::op(move |n| {
                    let pool = pool.clone();
                    async move { pool.bump(key(n)).await.map_err(|e| e.to_string()) }
                })
            }
        };
        Contender::new(name, op)
    }

    async fn close(self) {
        self.ops.close().await;
        let _ = self.sea.close().await;
        self.sqlx.close().await;
    }
}

/// One measured point.
#[derive(Clone, Debug)]
struct Point {
    operation: String,
    pool: u32,
    tasks: usize,
    contender: String,
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

const HEADER: &str = "operation,pool,tasks,contender,throughput,p50_us,p99_us,errors";

fn run(args: &[String]) {
    let round = Duration::from_secs_f64(load::arg(args, "--round", 0.5));
    let rounds: usize = load::arg(args, "--rounds", 3);
    let setup = load::current_thread_runtime();
    let bench = setup.block_on(async {
        let bench = BenchDb::create_for_load()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let db = Db::connect(&bench.url).await.expect("connect");
        ops_benches::prepare_schema(&db).await.expect("tables");
        db.close().await;
        bench
    });
    drop(setup);
    let backend = bench.backend.label();
    let started = std::time::Instant::now();
    let mut points = Vec::new();
    let rt = load::multi_thread_runtime();
    rt.block_on(async {
        for pool in POOL_SIZES {
            let pools = Pools::connect(&bench.url, pool).await;
            for operation in OPERATIONS {
                let contenders: Vec<Contender> = CONTENDERS
                    .iter()
                    .map(|name| pools.contender(name, operation))
                    .collect();
                for tasks in TASKS {
                    let plan = Plan {
                        tasks,
                        round,
                        rounds,
                        warm_up: Duration::from_millis(300),
                        pause: Duration::from_millis(50),
                    };
                    for s in load::compare(&contenders, plan).await {
                        eprintln!(
                            "{backend} {operation} pool={pool} tasks={tasks} {}: {} calls/s, \
                             p50 {}, p99 {}, {} errors{}",
                            s.name,
                            load::per_second(s.throughput),
                            load::latency(s.p50),
                            load::latency(s.p99),
                            s.errors,
                            s.first_error
                                .as_deref()
                                .map(|e| format!(" (first: {e})"))
                                .unwrap_or_default()
                        );
                        points.push(Point {
                            operation: operation.to_owned(),
                            pool,
                            tasks,
                            contender: s.name.clone(),
                            throughput: s.throughput,
                            p50_us: s.p50.as_secs_f64() * 1e6,
                            p99_us: s.p99.as_secs_f64() * 1e6,
                            errors: s.errors,
                        });
                    }
                }
            }
            pools.close().await;
        }
    });
    drop(rt);
    let teardown = load::current_thread_runtime();
    teardown.block_on(async {
        if let Err(e) = bench.drop_database().await {
            eprintln!("{e}");
        }
    });
    let mut csv = String::from(HEADER);
    csv.push('\n');
    for p in &points {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.1},{:.1},{:.1},{}",
            p.operation, p.pool, p.tasks, p.contender, p.throughput, p.p50_us, p.p99_us, p.errors
        );
    }
    std::fs::create_dir_all(plot::results_dir()).expect("create benches/results");
    let path = plot::results_dir().join(format!("curves-{backend}.csv"));
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
            let num = |i: usize| -> f64 { f[i].parse().expect("a number in the results") };
            Point {
                operation: f[0].to_owned(),
                pool: f[1].parse().expect("pool"),
                tasks: f[2].parse().expect("tasks"),
                contender: f[3].to_owned(),
                throughput: num(4),
                p50_us: num(5),
                p99_us: num(6),
                errors: f[7].parse().expect("errors"),
            }
        })
        .collect()
}

fn color(contender: &str) -> RGBColor {
    match contender {
        "ops" => RGBColor(0x1f, 0x77, 0xb4),
        "seaorm" => RGBColor(0xd6, 0x27, 0x28),
        _ => RGBColor(0x2c, 0xa0, 0x2c),
    }
}

fn label(contender: &str) -> &'static str {
    match contender {
        "ops" => "ops defaults",
        "seaorm" => "SeaORM defaults",
        _ => "raw sqlx defaults",
    }
}

/// One figure per backend and metric: rows are the operations, columns the pool sizes.
fn plot_backend(backend: &str, points: &[Point], latency: bool) -> PlotResult {
    let name = if latency { "latency" } else { "throughput" };
    let path = plot::plots_dir().join(format!("{name}-{backend}.svg"));
    let root = SVGBackend::new(&path, (1260, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = if latency {
        format!("{backend}: latency per call, p50 (solid) and p99 (dashed), log scale")
    } else {
        format!("{backend}: successful calls per second")
    };
    let root = root.titled(&title, ("sans-serif", 22))?;
    let panels = root.split_evenly((OPERATIONS.len(), POOL_SIZES.len()));
    for (index, panel) in panels.iter().enumerate() {
        let operation = OPERATIONS[index / POOL_SIZES.len()];
        let pool = POOL_SIZES[index % POOL_SIZES.len()];
        let cell: Vec<&Point> = points
            .iter()
            .filter(|p| p.operation == operation && p.pool == pool)
            .collect();
        let what = if operation == "get" {
            "get (PK read)"
        } else {
            "managed session (read + update)"
        };
        let caption = format!("{what}, pool size {pool}");
        let x_range = (0.8f64..320f64).log_scale();
        let mut builder = ChartBuilder::on(panel);
        builder
            .caption(caption, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(62);
        if latency {
            let low = cell.iter().map(|p| p.p50_us).fold(f64::INFINITY, f64::min);
            let high = cell.iter().map(|p| p.p99_us).fold(1.0, f64::max);
            let low = if low.is_finite() { low / 1.5 } else { 1.0 };
            let mut chart =
                builder.build_cartesian_2d(x_range, (low.max(1.0)..high * 1.5).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("concurrent tasks")
                .y_desc("µs")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .draw()?;
            for contender in CONTENDERS {
                let series: Vec<&&Point> =
                    cell.iter().filter(|p| p.contender == contender).collect();
                let p50: Vec<(f64, f64)> =
                    series.iter().map(|p| (p.tasks as f64, p.p50_us)).collect();
                let p99: Vec<(f64, f64)> =
                    series.iter().map(|p| (p.tasks as f64, p.p99_us)).collect();
                plot::line_with_dots(&mut chart, &p50, color(contender), label(contender))?;
                let style = color(contender).stroke_width(2);
                chart.draw_series(DashedLineSeries::new(p99, 6, 4, style))?;
            }
            plot::legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        } else {
            let high = cell.iter().map(|p| p.throughput).fold(1.0, f64::max);
            let mut chart = builder.build_cartesian_2d(x_range, 0f64..high * 1.15)?;
            chart
                .configure_mesh()
                .x_desc("concurrent tasks")
                .y_desc("calls/s")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .draw()?;
            for contender in CONTENDERS {
                let line: Vec<(f64, f64)> = cell
                    .iter()
                    .filter(|p| p.contender == contender)
                    .map(|p| (p.tasks as f64, p.throughput))
                    .collect();
                plot::line_with_dots(&mut chart, &line, color(contender), label(contender))?;
            }
            plot::legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
    }
    root.present()?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn plot_all() -> PlotResult {
    plot::each_backend("curves", "curves", |backend, path| {
        let points = read(path);
        let failed: u64 = points.iter().map(|p| p.errors).sum();
        if failed > 0 {
            eprintln!("{backend}: {failed} failed calls in the results (not plotted)");
        }
        plot_backend(backend, &points, false)?;
        plot_backend(backend, &points, true)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") => run(&args),
        Some("plot") => {
            if let Err(e) = plot_all() {
                eprintln!("curves plot: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: curves run [--round SECONDS] [--rounds N] | curves plot");
            std::process::exit(2);
        }
    }
}
