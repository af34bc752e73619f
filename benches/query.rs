//! `cargo bench --bench query`: `elt query` beside DuckDB and ClickHouse (chdb) on the same rows,
//! on the table as the transform leaves it (a part per hour) and after `elt compact`, in one run.
//!
//! The data, generated once and kept in the target folder: one day of today's format (24 hours ×
//! 40,000 events, `elt gen` with a seed per hour) and a month of small 2013 timeline hours (720 ×
//! 2,000 events). They are transformed into a fresh lake (`elt transform`, one command), a first
//! query picks the repositories and the actor the queries name (the rarest repository, a
//! mid-size one, a mid-size actor), and then for each layout, hourly and compacted:
//!
//! * `elt query --format json --stats SQL`, one process a run: the figures are those `--stats`
//!   prints on stderr (plan and execution with the table open; the bytes the process read
//!   meanwhile, `rchar`; DataFusion's `bytes_scanned`);
//! * DuckDB over the table's live Parquet files and ClickHouse (chdb) over a MergeTree table
//!   loaded from them, in one Python process (`benches/query_peers.py`), timed in process, bytes
//!   the `rchar` of the process around each query.
//!
//! Every engine runs each query once to warm up and then QUERY_BENCH_RUNS times; its figures are
//! those of the fastest run. Between the layouts, `elt compact` of the day and of the month,
//! measured (wall, CPU, peak RSS). It prints a Markdown table per layout, the compaction's figures
//! and the targets (PASS/FAIL; the bench itself never fails on them), and writes everything to
//! `target/tmp/query-bench.json`.
//!
//! Environment: QUERY_BENCH_EVENTS (events an hour of the day, default 40000), QUERY_BENCH_HOURS
//! (hours of the day, default 24), QUERY_BENCH_MONTH_EVENTS (default 2000),
//! QUERY_BENCH_MONTH_HOURS (default 720, at most 744), QUERY_BENCH_SKIP_MONTH=1, QUERY_BENCH_RUNS
//! (default 3), QUERY_BENCH_PEERS (default `duckdb,clickhouse`; empty for `elt` alone).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::{env_number, measure, Measured};
use serde_json::{json, Value};

/// The generated day (and its partition).
const DAY: &str = "2024-03-05";
/// The targets: after compaction, a query that does not need every row reads at most this many
/// times ClickHouse's bytes and this share of the table's bytes, in no more time than DuckDB's;
/// the day's compaction leaves at most this many files in the day and peaks below this.
const CLICKHOUSE_BYTES_RATIO: f64 = 4.0;
const TABLE_BYTES_SHARE: f64 = 0.01;
const DAY_FILES_TARGET: usize = 2;
const COMPACT_PEAK_TARGET_MIB: f64 = 1024.0;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let elt = env!("CARGO_BIN_EXE_elt");
    let config = Config::from_env();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("query-bench");
    let files = generate(elt, &root, &config);
    let lake = root.join("lake");
    let transform = transform(elt, &lake, &files);
    let picks = Picks::find(elt, &lake);
    println!(
        "picked: rare repository {} ({} events), mid-size repository {} ({} events), \
         mid-size actor {} ({} events)",
        picks.rare_repo.0,
        picks.rare_repo.1,
        picks.mid_repo.0,
        picks.mid_repo.1,
        picks.actor.0,
        picks.actor.1
    );
    let queries = queries(&picks);
    let mut layouts = vec![Layout::run("hourly", elt, &lake, &root, &queries, &config)];
    let compactions = compact(elt, &lake, &config);
    if compactions.iter().any(|c| c.ran) {
        layouts.push(Layout::run(
            "compacted",
            elt,
            &lake,
            &root,
            &queries,
            &config,
        ));
    }
    for layout in &layouts {
        layout.print(&queries);
    }
    print_compaction(&compactions, &layouts);
    let targets = targets(&queries, &layouts, &compactions);
    save(
        &config,
        &transform,
        &picks,
        &queries,
        &layouts,
        &compactions,
        &targets,
    );
}

/// The sizes and runs, from the environment.
struct Config {
    day_events: u64,
    day_hours: usize,
    month_events: u64,
    month_hours: usize,
    runs: usize,
    peers: Vec<String>,
}

impl Config {
    fn from_env() -> Config {
        let skip_month = std::env::var_os("QUERY_BENCH_SKIP_MONTH").is_some_and(|v| v != "0");
        let peers = std::env::var("QUERY_BENCH_PEERS")
            .unwrap_or_else(|_| "duckdb,clickhouse".into())
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        Config {
            day_events: env_number("QUERY_BENCH_EVENTS", 40_000),
            day_hours: env_number("QUERY_BENCH_HOURS", 24usize).clamp(1, 24),
            month_events: env_number("QUERY_BENCH_MONTH_EVENTS", 2_000),
            month_hours: if skip_month {
                0
            } else {
                env_number("QUERY_BENCH_MONTH_HOURS", 720usize).min(31 * 24)
            },
            runs: env_number("QUERY_BENCH_RUNS", 3usize).max(1),
            peers,
        }
    }

    fn json(&self) -> Value {
        json!({
            "day": DAY, "day_hours": self.day_hours, "day_events_an_hour": self.day_events,
            "month": "2013-03", "month_hours": self.month_hours,
            "month_events_an_hour": self.month_events, "runs": self.runs, "peers": self.peers,
            "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }
}

/// The pools of repositories and actors the hours draw from (Zipf), as in the day.
const REPOS: &str = "90000";
const ACTORS: &str = "60000";

/// The hour files (`elt gen`, a seed per hour), made once and kept: the day's, then the month's.
fn generate(elt: &str, root: &Path, config: &Config) -> Vec<PathBuf> {
    let day_dir = root.join(format!("day-{}-zipf", config.day_events));
    let month_dir = root.join(format!("month-2013-03-{}-zipf", config.month_events));
    let mut wanted = Vec::new(); // (hour, events, seed, path)
    for h in 0..config.day_hours {
        let hour = format!("{DAY}-{h}");
        let path = day_dir.join(format!("{hour}.json.gz"));
        wanted.push((hour, config.day_events, 1 + h as u64, path));
    }
    for i in 0..config.month_hours {
        let hour = format!("2013-03-{:02}-{}", i / 24 + 1, i % 24);
        let path = month_dir.join(format!("{hour}.json.gz"));
        wanted.push((hour, config.month_events, 1_000 + i as u64, path));
    }
    let missing: Vec<_> = wanted.iter().filter(|w| !w.3.exists()).collect();
    if !missing.is_empty() {
        eprintln!("generating {} hour files (elt gen)…", missing.len());
        std::fs::create_dir_all(&day_dir).expect("the data folder is created");
        std::fs::create_dir_all(&month_dir).expect("the data folder is created");
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some((hour, events, seed, path)) =
                        missing.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        // Written aside and renamed, so that an interrupted run leaves no half file.
                        let partial = path.with_extension("partial.gz");
                        let status = Command::new(elt)
                            .args(["gen", "--hour", hour, "--events", &events.to_string()])
                            .args(["--seed", &seed.to_string()])
                            .args(["--repos", REPOS, "--actors", ACTORS])
                            .arg(&partial)
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .expect("elt gen runs");
                        assert!(status.success(), "elt gen of {hour} failed");
                        std::fs::rename(&partial, path).expect("the hour file is renamed");
                    }
                });
            }
        });
    }
    wanted.into_iter().map(|w| w.3).collect()
}

/// What `elt transform` of every hour into the fresh lake took.
struct Transformed {
    measured: Measured,
    files: usize,
    rows: u64,
}

fn transform(elt: &str, lake: &Path, files: &[PathBuf]) -> Transformed {
    let _ = std::fs::remove_dir_all(lake);
    eprintln!(
        "elt transform of {} hour files into {}…",
        files.len(),
        lake.display()
    );
    let measured = measure(
        Command::new(elt)
            .arg("transform")
            .arg("--lake")
            .arg(lake)
            .args(files)
            .stdout(Stdio::piped()),
    );
    assert!(measured.ok, "elt transform failed");
    let rows = json_lines(&measured.stdout)
        .iter()
        .filter_map(|s| s["rows"].as_u64())
        .sum();
    println!(
        "transform: {} hour files, {rows} rows, {:.1} s wall, {:.1} s CPU, peak {:.0} MiB",
        files.len(),
        measured.wall.as_secs_f64(),
        measured.cpu_seconds,
        measured.peak_rss_mib
    );
    Transformed {
        measured,
        files: files.len(),
        rows,
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// The repositories and the actor the queries name, found by a first query of the table.
struct Picks {
    /// The repository with the fewest events (ties: by name), with its events.
    rare_repo: (String, u64),
    /// The repository whose events are nearest the geometric mean of the fewest and the most.
    mid_repo: (String, u64),
    /// The actor picked as the mid-size repository is.
    actor: (String, u64),
}

impl Picks {
    fn find(elt: &str, lake: &Path) -> Picks {
        let counts = |column: &str| -> Vec<(String, u64)> {
            let sql = format!(
                "SELECT {column} AS name, count(*) AS events FROM ghactivity \
                 WHERE {column} IS NOT NULL AND {column} <> '' GROUP BY {column} \
                 ORDER BY events, name"
            );
            let out = Command::new(elt)
                .args(["query", "--format", "json", "--lake"])
                .arg(lake)
                .arg(&sql)
                .output()
                .expect("elt query runs");
            assert!(
                out.status.success(),
                "the first query failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            json_lines(&String::from_utf8_lossy(&out.stdout))
                .iter()
                .filter_map(|r| Some((r["name"].as_str()?.to_string(), r["events"].as_u64()?)))
                .collect()
        };
        let repos = counts("repo_name");
        let actors = counts("actor_login");
        assert!(
            !repos.is_empty() && !actors.is_empty(),
            "the table has no repositories or actors"
        );
        Picks {
            rare_repo: repos[0].clone(),
            mid_repo: mid(&repos),
            actor: mid(&actors),
        }
    }

    fn json(&self) -> Value {
        json!({
            "rare_repo": {"name": self.rare_repo.0, "events": self.rare_repo.1},
            "mid_repo": {"name": self.mid_repo.0, "events": self.mid_repo.1},
            "actor": {"name": self.actor.0, "events": self.actor.1},
        })
    }
}

/// Of counts sorted ascending, the one nearest (in ratio) the geometric mean of the ends.
fn mid(sorted: &[(String, u64)]) -> (String, u64) {
    let low = sorted[0].1.max(1) as f64;
    let high = sorted[sorted.len() - 1].1.max(1) as f64;
    let target = (low * high).sqrt();
    sorted
        .iter()
        .min_by(|a, b| {
            let off = |n: u64| (n.max(1) as f64 / target).ln().abs();
            off(a.1).total_cmp(&off(b.1))
        })
        .expect("counts")
        .clone()
}

/// One query in each engine's SQL: `elt` and DuckDB see the table as `ghactivity`, ClickHouse
/// as `github_events`.
struct Query {
    name: &'static str,
    /// Whether it needs every row of the table (a full scan): the byte targets leave it out.
    full_scan: bool,
    elt: String,
    duckdb: String,
    clickhouse: String,
}

impl Query {
    /// The same SQL in the three engines, `{t}` standing for the table.
    fn same(name: &'static str, full_scan: bool, sql: &str) -> Query {
        Query::each(name, full_scan, sql, sql, sql)
    }

    fn each(name: &'static str, full_scan: bool, elt: &str, duckdb: &str, ch: &str) -> Query {
        Query {
            name,
            full_scan,
            elt: elt.replace("{t}", "ghactivity"),
            duckdb: duckdb.replace("{t}", "ghactivity"),
            clickhouse: ch.replace("{t}", "github_events"),
        }
    }

    fn label(&self) -> String {
        if self.full_scan {
            format!("{} (full scan)", self.name)
        } else {
            self.name.to_string()
        }
    }
}

/// An SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The queries: the four of the brief, then some of ClickHouse's GitHub examples
/// (ghe.clickhouse.tech), in SQL all three engines take (the weekday apart).
fn queries(picks: &Picks) -> Vec<Query> {
    let rare = literal(&picks.rare_repo.0);
    let repo = literal(&picks.mid_repo.0);
    let actor = literal(&picks.actor.0);
    let weekday = "SELECT {dow} AS weekday, count(*) AS pushes FROM {t} \
                   WHERE event_type = 'PushEvent' GROUP BY weekday ORDER BY weekday";
    let mut queries = vec![
        Query::same(
            "rare repository, its events with payload",
            false,
            &format!(
                "SELECT created_at, event_type, actor_login, payload FROM {{t}} \
                 WHERE repo_name = {rare} ORDER BY created_at, event_type, actor_login"
            ),
        ),
        Query::same(
            "mid-size repository, events by type",
            false,
            &format!(
                "SELECT event_type, count(*) AS events FROM {{t}} WHERE repo_name = {repo} \
                 GROUP BY event_type ORDER BY events DESC, event_type"
            ),
        ),
        Query::same(
            "an actor's events by type",
            false,
            &format!(
                "SELECT event_type, count(*) AS events FROM {{t}} WHERE actor_login = {actor} \
                 GROUP BY event_type ORDER BY events DESC, event_type"
            ),
        ),
        Query::same(
            "top 10 starred repositories",
            false,
            "SELECT repo_name, count(*) AS stars FROM {t} WHERE event_type = 'WatchEvent' \
             GROUP BY repo_name ORDER BY stars DESC, repo_name LIMIT 10",
        ),
        Query::same(
            "stars of the mid-size repository per day",
            false,
            &format!(
                "SELECT date_trunc('day', created_at) AS day, count(*) AS stars FROM {{t}} \
                 WHERE event_type = 'WatchEvent' AND repo_name = {repo} \
                 GROUP BY date_trunc('day', created_at) ORDER BY day"
            ),
        ),
        Query::same(
            "top 10 repositories by distinct stargazers",
            false,
            "SELECT repo_name, count(DISTINCT actor_login) AS stargazers FROM {t} \
             WHERE event_type = 'WatchEvent' GROUP BY repo_name \
             ORDER BY stargazers DESC, repo_name LIMIT 10",
        ),
        Query::same(
            "top issue commenters of the mid-size repository",
            false,
            &format!(
                "SELECT actor_login, count(*) AS comments FROM {{t}} \
                 WHERE event_type = 'IssueCommentEvent' AND repo_name = {repo} \
                 GROUP BY actor_login ORDER BY comments DESC, actor_login LIMIT 10"
            ),
        ),
        // Sunday 0 to Saturday 6 in each.
        Query::each(
            "pushes per weekday",
            false,
            &weekday.replace("{dow}", "date_part('dow', created_at)"),
            &weekday.replace("{dow}", "date_part('dow', created_at)"),
            &weekday.replace("{dow}", "toDayOfWeek(created_at, 2)"),
        ),
        Query::same(
            "events by type",
            true,
            "SELECT event_type, count(*) AS events FROM {t} GROUP BY event_type \
             ORDER BY events DESC, event_type",
        ),
        Query::same(
            "events, distinct actors and repositories",
            true,
            "SELECT count(*) AS events, count(DISTINCT actor_login) AS actors, \
             count(DISTINCT repo_name) AS repos FROM {t}",
        ),
    ];
    // The four questions asked of the generated day alone (its rows only, by
    // `created_at`, which every engine prunes by): the day's layout without the 2013 month's
    // 31 small day files, each of which costs a reader its footer, bloom filter and dictionary.
    let on_day: Vec<Query> = queries
        .iter()
        .take(4)
        .map(|q| Query {
            name: match q.name {
                "rare repository, its events with payload" => {
                    "the day: rare repository with payload"
                }
                "mid-size repository, events by type" => "the day: mid-size repository by type",
                "an actor's events by type" => "the day: an actor's events by type",
                _ => "the day: top 10 starred repositories",
            },
            full_scan: false,
            elt: within_day(&q.elt),
            duckdb: within_day(&q.duckdb),
            clickhouse: within_day(&q.clickhouse),
        })
        .collect();
    queries.extend(on_day);
    queries
}

/// `sql` with its WHERE clause held to the generated day.
fn within_day(sql: &str) -> String {
    sql.replacen(
        "WHERE ",
        &format!(
            "WHERE created_at >= '{DAY} 00:00:00' AND created_at < '2024-03-06 00:00:00' AND "
        ),
        1,
    )
}

/// The error of an engine left out by QUERY_BENCH_PEERS.
const SKIPPED: &str = "skipped (QUERY_BENCH_PEERS)";

/// One engine's figures for one query: those of its fastest run.
#[derive(Clone, Default)]
struct Figure {
    seconds: Option<f64>,
    /// The bytes the process read during the query (`rchar`).
    bytes: Option<f64>,
    rows: Option<u64>,
    /// The sum of the integers in the result (counts, weekdays): the engines should agree.
    int_sum: Option<i64>,
    error: Option<String>,
    /// elt only: DataFusion's `bytes_scanned`, the files the scan opened, and the wall time of
    /// the whole process (opening the table included).
    bytes_scanned: Option<f64>,
    files: Option<u64>,
    process_seconds: Option<f64>,
    /// elt only: the other scan metrics `--stats` gives, if any.
    metrics: Option<Value>,
    all_seconds: Vec<f64>,
}

impl Figure {
    fn failed(error: impl Into<String>) -> Figure {
        Figure {
            error: Some(error.into()),
            ..Figure::default()
        }
    }

    fn json(&self) -> Value {
        json!({
            "seconds": self.seconds, "bytes": self.bytes, "rows": self.rows,
            "int_sum": self.int_sum, "error": self.error,
            "bytes_scanned": self.bytes_scanned, "files": self.files,
            "process_seconds": self.process_seconds, "metrics": self.metrics,
            "all_seconds": self.all_seconds,
        })
    }

    /// A peer's figure from query_peers.py's answer.
    fn from_peer(value: &Value) -> Figure {
        if let Some(error) = value["error"].as_str() {
            return Figure::failed(error);
        }
        Figure {
            seconds: value["seconds"].as_f64(),
            bytes: value["bytes"].as_f64(),
            rows: value["rows"].as_u64(),
            int_sum: value["int_sum"].as_i64(),
            all_seconds: value["all_seconds"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default(),
            ..Figure::default()
        }
    }
}

/// One live file of the table.
struct TableFile {
    path: String,
    bytes: u64,
}

impl TableFile {
    /// `YYYY-MM-DD` of its partition folder (`year=…/month=…/dayofmonth=…`).
    fn day(&self) -> String {
        let part = |key: &str| {
            self.path
                .split('/')
                .find_map(|s| s.strip_prefix(key))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        format!(
            "{:04}-{:02}-{:02}",
            part("year="),
            part("month="),
            part("dayofmonth=")
        )
    }
}

/// The queries on one layout of the table, in every engine.
struct Layout {
    name: &'static str,
    /// The table's live files (from the Delta log, through Python `deltalake`).
    files: Vec<TableFile>,
    rows: Option<u64>,
    elt: Vec<Figure>,
    duckdb: Vec<Figure>,
    clickhouse: Vec<Figure>,
    /// Whether `elt query --stats` was there (else elt's seconds are its process's wall).
    stats: bool,
    peers: Value,
}

impl Layout {
    fn run(
        name: &'static str,
        elt: &str,
        lake: &Path,
        root: &Path,
        queries: &[Query],
        config: &Config,
    ) -> Layout {
        eprintln!("{name} layout: elt query…");
        let mut stats = true;
        let elt_figures: Vec<Figure> = queries
            .iter()
            .map(|q| elt_query(elt, lake, &q.elt, config.runs, &mut stats))
            .collect();
        if !stats {
            println!(
                "NOTE: `elt query --stats` is not there yet: elt's seconds below are the wall \
                 time of the whole process (opening the table included) and its bytes unknown"
            );
        }
        eprintln!("{name} layout: {}…", config.peers.join(", "));
        let peers = run_peers(&lake.join("ghactivity"), root, queries, config);
        let figures = |engine: &str| -> Vec<Figure> {
            let answer = &peers[engine];
            queries
                .iter()
                .map(|q| {
                    if !config.peers.iter().any(|p| p == engine) {
                        Figure::failed(SKIPPED)
                    } else if let Some(error) = answer["error"].as_str().or(peers["error"].as_str())
                    {
                        Figure::failed(error)
                    } else {
                        Figure::from_peer(&answer["queries"][q.name])
                    }
                })
                .collect()
        };
        let files = peers["files"]
            .as_array()
            .map(|files| {
                files
                    .iter()
                    .map(|f| TableFile {
                        path: f["path"].as_str().unwrap_or_default().to_string(),
                        bytes: f["bytes"].as_u64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Layout {
            name,
            files,
            rows: peers["rows"].as_u64(),
            elt: elt_figures,
            duckdb: figures("duckdb"),
            clickhouse: figures("clickhouse"),
            stats,
            peers,
        }
    }

    fn table_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The live files of each day partition.
    fn files_per_day(&self) -> std::collections::BTreeMap<String, (usize, u64)> {
        let mut days = std::collections::BTreeMap::new();
        for f in &self.files {
            let entry = days.entry(f.day()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += f.bytes;
        }
        days
    }

    fn summary(&self) -> String {
        if self.files.is_empty() {
            return "files unknown (query_peers.py gave none)".into();
        }
        let days = self.files_per_day();
        let most = days.values().map(|d| d.0).max().unwrap_or(0);
        let day = days.get(DAY).map_or(0, |d| d.0);
        format!(
            "{} files, {:.1} MB, {} rows, {} day partitions (at most {most} files in a day; \
             {day} in {DAY})",
            self.files.len(),
            self.table_bytes() as f64 / 1e6,
            self.rows.map_or("?".into(), |r| r.to_string()),
            days.len(),
        )
    }

    fn print(&self, queries: &[Query]) {
        println!("\n### {} table: {}\n", self.name, self.summary());
        println!(
            "| query | elt s | elt MB | DuckDB s | DuckDB MB | ClickHouse s | ClickHouse MB |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (i, q) in queries.iter().enumerate() {
            let cells: Vec<String> = [&self.elt[i], &self.duckdb[i], &self.clickhouse[i]]
                .iter()
                .flat_map(|f| {
                    if f.error.as_deref() == Some(SKIPPED) {
                        vec!["–".to_string(), "–".to_string()]
                    } else if f.error.is_some() {
                        vec!["error".to_string(), "".to_string()]
                    } else {
                        vec![
                            f.seconds.map_or("–".into(), |s| format!("{s:.3}")),
                            f.bytes.map_or("–".into(), |b| format!("{:.2}", b / 1e6)),
                        ]
                    }
                })
                .collect();
            println!("| {} | {} |", q.label(), cells.join(" | "));
        }
        println!(
            "\nelt: `--stats` seconds (plan and execution, the table open{}) and read_bytes \
             (rchar during the query); DuckDB and ClickHouse: in-process time and rchar. \
             Fastest of {} runs after a warm-up; MB = 10^6 bytes.",
            if self.stats {
                ""
            } else {
                "; here the process's wall, --stats missing"
            },
            self.elt.first().map_or(0, |f| f.all_seconds.len().max(1))
        );
        if let Some(ch) = self.peers["clickhouse"].as_object() {
            if let Some(load) = ch.get("load_seconds").and_then(Value::as_f64) {
                println!(
                    "ClickHouse {} (chdb {}): loaded in {load:.1} s, {:.1} MB on disk, {} part(s).",
                    ch.get("version").and_then(Value::as_str).unwrap_or("?"),
                    ch.get("chdb").and_then(Value::as_str).unwrap_or("?"),
                    ch.get("bytes_on_disk")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                        / 1e6,
                    ch.get("parts").and_then(Value::as_u64).unwrap_or(0),
                );
            }
        }
        for (engine, figures) in [
            ("elt", &self.elt),
            ("DuckDB", &self.duckdb),
            ("ClickHouse", &self.clickhouse),
        ] {
            let errors: Vec<_> = figures.iter().map(|f| f.error.as_deref()).collect();
            if errors.iter().all(|e| e.is_some() && *e == errors[0]) {
                // Every query alike: the engine was skipped or could not run at all.
                println!("{engine}: {}", errors[0].unwrap_or_default());
                continue;
            }
            for (q, error) in queries.iter().zip(errors) {
                if let Some(error) = error {
                    println!("{engine} on \"{}\": {error}", q.name);
                }
            }
        }
        for (i, q) in queries.iter().enumerate() {
            let answers = [&self.elt[i], &self.duckdb[i], &self.clickhouse[i]]
                .map(|f| f.rows.zip(f.int_sum).filter(|_| f.error.is_none()));
            let known: Vec<_> = answers.iter().flatten().collect();
            if known.windows(2).any(|w| w[0] != w[1]) {
                println!(
                    "WARNING: \"{}\" answers differ (rows, sum of integers): elt {:?}, \
                     DuckDB {:?}, ClickHouse {:?}",
                    q.name, answers[0], answers[1], answers[2]
                );
            }
        }
    }

    fn json(&self, queries: &[Query]) -> Value {
        let per_query: serde_json::Map<String, Value> = queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                (
                    q.name.to_string(),
                    json!({
                        "full_scan": q.full_scan,
                        "sql": {"elt": q.elt, "duckdb": q.duckdb, "clickhouse": q.clickhouse},
                        "elt": self.elt[i].json(),
                        "duckdb": self.duckdb[i].json(),
                        "clickhouse": self.clickhouse[i].json(),
                    }),
                )
            })
            .collect();
        let days: serde_json::Map<String, Value> = self
            .files_per_day()
            .into_iter()
            .map(|(day, (files, bytes))| (day, json!({"files": files, "bytes": bytes})))
            .collect();
        let peer_meta = |engine: &str| {
            let mut meta = self.peers[engine].clone();
            if let Some(m) = meta.as_object_mut() {
                m.remove("queries");
            }
            meta
        };
        json!({
            "files": self.files.len(), "bytes": self.table_bytes(), "rows": self.rows,
            "delta_version": self.peers["version"], "days": days,
            "elt_stats": self.stats, "duckdb": peer_meta("duckdb"),
            "clickhouse": peer_meta("clickhouse"), "queries": per_query,
        })
    }
}

/// `elt query --stats` of `sql`: a warm-up, then `runs` runs; the fastest run's figures. Without
/// `--stats` (`stats` is then cleared) the seconds are the process's wall and the bytes unknown.
fn elt_query(elt: &str, lake: &Path, sql: &str, runs: usize, stats: &mut bool) -> Figure {
    let mut best: Option<Figure> = None;
    let mut every = Vec::new();
    for run in 0..=runs {
        let started = Instant::now();
        let mut command = Command::new(elt);
        command
            .args(["query", "--format", "json", "--lake"])
            .arg(lake);
        if *stats {
            command.arg("--stats");
        }
        let out = command.arg(sql).output().expect("elt query runs");
        let wall = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if *stats && stderr.contains("--stats") {
                *stats = false; // not implemented yet: measure the process instead, and say so
                return elt_query(elt, lake, sql, runs, stats);
            }
            return Figure::failed(stderr.trim().lines().next().unwrap_or("failed").to_string());
        }
        let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
        let int_sum = rows
            .iter()
            .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.values()))
            .filter_map(Value::as_i64)
            .sum();
        let mut figure = Figure {
            seconds: Some(wall),
            rows: Some(rows.len() as u64),
            int_sum: Some(int_sum),
            process_seconds: Some(wall),
            ..Figure::default()
        };
        if *stats {
            let Some(s) = json_lines(&stderr)
                .into_iter()
                .find(|v| v["stats"].is_object())
            else {
                return Figure::failed("no {\"stats\": …} line on stderr");
            };
            let s = &s["stats"];
            figure.seconds = s["seconds"].as_f64();
            figure.bytes = s["read_bytes"].as_f64();
            figure.bytes_scanned = s["bytes_scanned"].as_f64();
            figure.files = s["files"]
                .as_u64()
                .or_else(|| s["metrics"]["files_opened"].as_u64());
            figure.metrics = s.get("metrics").cloned();
        }
        if run == 0 {
            continue; // the warm-up
        }
        every.push(figure.seconds.unwrap_or(f64::NAN));
        let faster = match &best {
            None => true,
            Some(b) => figure.seconds.unwrap_or(f64::MAX) < b.seconds.unwrap_or(f64::MAX),
        };
        if faster {
            best = Some(figure);
        }
    }
    let mut best = best.unwrap_or_default();
    best.all_seconds = every;
    best
}

/// DuckDB and ClickHouse on the table's live files, and the files themselves
/// (`benches/query_peers.py`): its JSON answer, or `{"error": …}`.
fn run_peers(table: &Path, root: &Path, queries: &[Query], config: &Config) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/query_peers.py");
    let job = json!({
        "table": table, "workdir": root.join("chdb"), "runs": config.runs,
        "engines": config.peers,
        "queries": queries.iter().map(|q| json!({
            "name": q.name, "duckdb": q.duckdb, "clickhouse": q.clickhouse,
        })).collect::<Vec<_>>(),
    });
    let job_file = root.join("peers-job.json");
    std::fs::write(&job_file, job.to_string()).expect("the peers' job is written");
    let out = Command::new("python3")
        .arg(&script)
        .stdin(std::fs::File::open(&job_file).expect("the peers' job opens"))
        .stderr(Stdio::inherit())
        .output();
    let answer = match out {
        Err(e) => json!({"error": format!("python3 did not start: {e}")}),
        Ok(out) if !out.status.success() => json!({"error": format!(
            "query_peers.py failed ({}; `python3 -m pip install chdb duckdb deltalake pyarrow`)",
            out.status
        )}),
        Ok(out) => serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| json!({"error": format!("query_peers.py's answer: {e}")})),
    };
    if let Some(error) = answer["error"].as_str() {
        println!("peers: {error}");
    }
    answer
}

/// One `elt compact` run, measured, with the sums of its lines.
struct Compaction {
    label: &'static str,
    from: &'static str,
    to: &'static str,
    ran: bool,
    note: Option<String>,
    measured: Option<Measured>,
    lines: Vec<Value>,
}

impl Compaction {
    fn sum(&self, key: &str) -> u64 {
        self.lines.iter().filter_map(|l| l[key].as_u64()).sum()
    }

    fn outcomes(&self) -> String {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for line in &self.lines {
            *counts
                .entry(line["outcome"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        let mut outcomes: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
        if self.measured.is_some() && !self.ran {
            outcomes.push("**failed**".into());
        }
        outcomes.join(", ")
    }

    fn json(&self) -> Value {
        json!({
            "from": self.from, "to": self.to, "ran": self.ran, "note": self.note,
            "wall_seconds": self.measured.as_ref().map(|m| m.wall.as_secs_f64()),
            "cpu_seconds": self.measured.as_ref().map(|m| m.cpu_seconds),
            "peak_rss_mib": self.measured.as_ref().map(|m| m.peak_rss_mib),
            "inputs": self.sum("inputs"), "outputs": self.sum("outputs"),
            "rows": self.sum("rows"), "bytes_in": self.sum("bytes_in"),
            "bytes_out": self.sum("bytes_out"), "lines": self.lines,
        })
    }
}

/// `elt compact` of the day, then of the month (if generated), each measured.
fn compact(elt: &str, lake: &Path, config: &Config) -> Vec<Compaction> {
    let there = Command::new(elt)
        .args(["compact", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !there {
        println!("`elt compact` is not there yet: no compacted layout");
    }
    let mut ranges = vec![("the day", DAY, "2024-03-06")];
    if config.month_hours > 0 {
        ranges.push(("the 2013 month", "2013-03-01", "2013-04-01"));
    }
    ranges
        .into_iter()
        .map(|(label, from, to)| {
            let mut c = Compaction {
                label,
                from,
                to,
                ran: false,
                note: None,
                measured: None,
                lines: Vec::new(),
            };
            if !there {
                c.note = Some("`elt compact` is not there yet".into());
                return c;
            }
            eprintln!("elt compact --from {from} --to {to}…");
            let m = measure(
                Command::new(elt)
                    .args(["compact", "--lake"])
                    .arg(lake)
                    .args(["--from", from, "--to", to])
                    .stdout(Stdio::piped()),
            );
            c.lines = json_lines(&m.stdout);
            c.ran = m.ok;
            if !m.ok {
                c.note = Some("elt compact failed (exit status non-zero)".into());
                println!("{label}: {}", c.note.as_deref().unwrap_or_default());
            }
            c.measured = Some(m);
            c
        })
        .collect()
}

fn print_compaction(compactions: &[Compaction], layouts: &[Layout]) {
    println!("\n### Compaction\n");
    println!(
        "| `elt compact` | days' outcomes | wall s | CPU s | peak MiB | files in → out | MB in → out | rows |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in compactions {
        let Some(m) = &c.measured else {
            println!(
                "| {} ({} .. {}) | {} | | | | | | |",
                c.label,
                c.from,
                c.to,
                c.note.as_deref().unwrap_or("not run")
            );
            continue;
        };
        println!(
            "| {} ({} .. {}) | {} | {:.2} | {:.2} | {:.0} | {} → {} | {:.1} → {:.1} | {} |",
            c.label,
            c.from,
            c.to,
            c.outcomes(),
            m.wall.as_secs_f64(),
            m.cpu_seconds,
            m.peak_rss_mib,
            c.sum("inputs"),
            c.sum("outputs"),
            c.sum("bytes_in") as f64 / 1e6,
            c.sum("bytes_out") as f64 / 1e6,
            c.sum("rows"),
        );
    }
    println!();
    for layout in layouts {
        println!("{}: {}", layout.name, layout.summary());
    }
    let rows: Vec<_> = layouts.iter().filter_map(|l| l.rows).collect();
    if rows.windows(2).any(|w| w[0] != w[1]) {
        println!("WARNING: the table's rows differ between the layouts: {rows:?}");
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Pass,
    Fail,
    /// A figure it needs is missing.
    Unknown,
}

struct Target {
    target: String,
    verdict: Verdict,
    figure: String,
}

/// The targets, checked on the compacted layout; printed PASS/FAIL (n/a when a figure is
/// missing).
fn targets(queries: &[Query], layouts: &[Layout], compactions: &[Compaction]) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut check = |target: String, verdict: Verdict, figure: String| {
        targets.push(Target {
            target,
            verdict,
            figure,
        })
    };
    let judge = |ok: bool| if ok { Verdict::Pass } else { Verdict::Fail };
    let compacted = layouts.iter().find(|l| l.name == "compacted");
    match compacted {
        None => check(
            "the query targets (on the compacted table)".into(),
            Verdict::Unknown,
            "no compacted layout".into(),
        ),
        Some(layout) => {
            let table = layout.table_bytes() as f64;
            for (i, q) in queries.iter().enumerate() {
                let (e, d, c) = (&layout.elt[i], &layout.duckdb[i], &layout.clickhouse[i]);
                if !q.full_scan {
                    check(
                        format!(
                            "\"{}\": elt bytes ≤ {CLICKHOUSE_BYTES_RATIO}× ClickHouse's",
                            q.name
                        ),
                        match (e.bytes, c.bytes) {
                            (Some(e), Some(c)) => judge(e <= CLICKHOUSE_BYTES_RATIO * c),
                            _ => Verdict::Unknown,
                        },
                        format!("{} against {}", mb(e.bytes), mb(c.bytes)),
                    );
                    check(
                        format!(
                            "\"{}\": elt bytes ≤ {}% of the table's",
                            q.name,
                            TABLE_BYTES_SHARE * 100.0
                        ),
                        match e.bytes {
                            Some(e) if table > 0.0 => judge(e <= TABLE_BYTES_SHARE * table),
                            _ => Verdict::Unknown,
                        },
                        format!(
                            "{} of {:.1} MB ({})",
                            mb(e.bytes),
                            table / 1e6,
                            e.bytes
                                .filter(|_| table > 0.0)
                                .map_or("?".into(), |b| format!("{:.3}%", b / table * 100.0))
                        ),
                    );
                }
                let seconds = |f: &Figure| f.seconds.filter(|_| f.error.is_none());
                check(
                    format!("\"{}\": elt seconds ≤ DuckDB's", q.name),
                    match (seconds(e), seconds(d)) {
                        (Some(e), Some(d)) if layout.stats => judge(e <= d),
                        _ => Verdict::Unknown,
                    },
                    format!(
                        "{} s against {} s{}",
                        seconds(e).map_or("?".into(), |s| format!("{s:.3}")),
                        seconds(d).map_or("?".into(), |s| format!("{s:.3}")),
                        if layout.stats { "" } else { " (no --stats)" }
                    ),
                );
            }
        }
    }
    // The day's compaction: not run (no `elt compact`) is n/a, failed is a FAIL of both.
    let day = compactions
        .iter()
        .find(|c| c.from == DAY && c.measured.is_some());
    let failed = day.is_some_and(|c| !c.ran);
    let day_files = compacted.and_then(|l| l.files_per_day().get(DAY).map(|d| d.0));
    check(
        format!("the day's compaction: ≤ {DAY_FILES_TARGET} files in the day's partition"),
        match day_files {
            _ if failed => Verdict::Fail,
            Some(n) if day.is_some() => judge(n <= DAY_FILES_TARGET),
            _ => Verdict::Unknown,
        },
        format!(
            "{}{}",
            day_files.map_or("?".into(), |n| format!("{n} files")),
            if failed { " (elt compact failed)" } else { "" }
        ),
    );
    let peak = day.and_then(|c| c.measured.as_ref().map(|m| m.peak_rss_mib));
    check(
        format!("the day's compaction: peak RSS ≤ {COMPACT_PEAK_TARGET_MIB:.0} MiB"),
        match peak {
            _ if failed => Verdict::Fail,
            Some(p) => judge(p <= COMPACT_PEAK_TARGET_MIB),
            None => Verdict::Unknown,
        },
        format!(
            "{}{}",
            peak.map_or("?".into(), |p| format!("{p:.0} MiB")),
            if failed { " (elt compact failed)" } else { "" }
        ),
    );
    println!("\n### Targets (after compaction)\n");
    for t in &targets {
        let verdict = match t.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "n/a ",
        };
        println!("{verdict} {}: {}", t.target, t.figure);
    }
    let count = |v: Verdict| targets.iter().filter(|t| t.verdict == v).count();
    println!(
        "\n{} PASS, {} FAIL, {} n/a",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Unknown)
    );
    targets
}

fn mb(bytes: Option<f64>) -> String {
    bytes.map_or("? MB".into(), |b| format!("{:.2} MB", b / 1e6))
}

#[allow(clippy::too_many_arguments)]
fn save(
    config: &Config,
    transform: &Transformed,
    picks: &Picks,
    queries: &[Query],
    layouts: &[Layout],
    compactions: &[Compaction],
    targets: &[Target],
) {
    let figures = json!({
        "measured": chrono::Utc::now().to_rfc3339(),
        "config": config.json(),
        "transform": {
            "hour_files": transform.files, "rows": transform.rows,
            "wall_seconds": transform.measured.wall.as_secs_f64(),
            "cpu_seconds": transform.measured.cpu_seconds,
            "peak_rss_mib": transform.measured.peak_rss_mib,
        },
        "picks": picks.json(),
        "layouts": layouts.iter().map(|l| (l.name.to_string(), l.json(queries)))
            .collect::<serde_json::Map<_, _>>(),
        "compaction": compactions.iter().map(|c| (c.label.to_string(), c.json()))
            .collect::<serde_json::Map<_, _>>(),
        "targets": targets.iter().map(|t| json!({
            "target": t.target,
            "verdict": match t.verdict { Verdict::Pass => "pass", Verdict::Fail => "fail",
                                         Verdict::Unknown => "n/a" },
            "figure": t.figure,
        })).collect::<Vec<_>>(),
    });
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("query-bench.json");
    let text = serde_json::to_string_pretty(&figures).expect("figures as JSON");
    std::fs::write(&path, text + "\n").expect("the figures are written");
    println!("\nfigures: {}", path.display());
}
