"""The peers of `cargo bench --bench query`: DuckDB and ClickHouse (chdb, in process) over the
same rows as `elt query`, one Python process, JSON in (stdin) and out (stdout).

In: {"table": DIR, "workdir": DIR, "runs": N, "engines": ["duckdb", "clickhouse"],
     "queries": [{"name": …, "duckdb": SQL, "clickhouse": SQL}, …]}
Out: {"version": V, "files": [{"path": …, "bytes": …, "rows": …}], "rows": N,
      "duckdb": {"version": …, "queries": {name: {"seconds": …, "bytes": …, "rows": …}}},
      "clickhouse": {"version": …, "load_seconds": …, "rows": …, "bytes_on_disk": …, "queries": …}}

The table's live files come from the Delta log (`deltalake`). DuckDB reads them with
`read_parquet([...], hive_partitioning = true)` (its delta extension cannot be downloaded here);
ClickHouse loads them into a MergeTree table `github_events` ORDER BY (event_type, repo_name,
created_at), merged into one part, and queries that with the query condition cache off. Each
query runs once to warm up, then `runs` times: its figures are those of the fastest run, its
time the query's in this process (result fetched), its bytes what the process read meanwhile
(`rchar` of /proc/self/io: every read of a file or pipe, the page cache's hits included).
An engine that fails to import or load says so under "error"; a query that fails, under its name.
"""
import json
import os
import shutil
import sys
import time

import pyarrow.parquet as pq
from deltalake import DeltaTable


def rchar():
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def int_sum(value):
    """The sum of the integers in a result (counts, weekdays), to compare engines by."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return sum(int_sum(v) for v in value)
    return 0


def timed(run, runs):
    """One warm-up, then the fastest of `runs`: seconds, bytes read meanwhile, result rows and
    the sum of its integers. `run` returns the result's rows."""
    run()
    best = None
    every = []
    for _ in range(max(runs, 1)):
        before = rchar()
        started = time.perf_counter()
        rows = run()
        seconds = time.perf_counter() - started
        read = rchar() - before
        every.append(round(seconds, 6))
        if best is None or seconds < best["seconds"]:
            best = {"seconds": seconds, "bytes": read, "rows": len(rows), "int_sum": int_sum(rows)}
    best["all_seconds"] = every
    return best


def first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def each_query(queries, engine, run, runs):
    results = {}
    for query in queries:
        try:
            results[query["name"]] = timed(lambda: run(query[engine]), runs)
        except Exception as error:  # one query failing leaves the others measured
            results[query["name"]] = {"error": first_line(error)}
    return results


def duckdb_peer(files, queries, runs):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Read the files every time, as the other engines do (no cache of remote or local files).
    for setting in ["SET enable_external_file_cache = false", "SET parquet_metadata_cache = false"]:
        try:
            con.execute(setting)
        except duckdb.Error:
            pass
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(
        f"CREATE VIEW ghactivity AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true)"
    )
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    return {
        "version": duckdb.__version__,
        "threads": threads,
        "queries": each_query(queries, "duckdb", lambda sql: con.execute(sql).fetchall(), runs),
    }


CLICKHOUSE_SETTINGS = (
    "use_query_condition_cache = 0, session_timezone = 'UTC',"
    " output_format_json_quote_64bit_integers = 0"
)


def clickhouse_peer(files, rows, workdir, queries, runs):
    import chdb
    from chdb import session

    shutil.rmtree(workdir, ignore_errors=True)
    sess = session.Session(workdir)
    try:
        # The live files, a folder (a day's partition) at a time: `DIR/{name,name,…}`, so that
        # ClickHouse reads exactly these; the partition columns from the paths.
        folders = {}
        for f in files:
            folders.setdefault(os.path.dirname(f), []).append(os.path.basename(f))
        settings = "SETTINGS use_hive_partitioning = 1"
        started = time.perf_counter()
        sess.query(
            "CREATE TABLE github_events ENGINE = MergeTree"
            " ORDER BY (event_type, repo_name, created_at) SETTINGS allow_nullable_key = 1"
            f" EMPTY AS SELECT * FROM file('{files[0]}', Parquet) {settings}"
        )
        for folder, names in sorted(folders.items()):
            glob = f"{folder}/{{{','.join(sorted(names))}}}"
            sess.query(f"INSERT INTO github_events SELECT * FROM file('{glob}', Parquet) {settings}")
        sess.query("OPTIMIZE TABLE github_events FINAL")
        load_seconds = time.perf_counter() - started
        loaded = int(str(sess.query("SELECT count() FROM github_events", "CSV")).strip())
        if loaded != rows:
            raise RuntimeError(f"loaded {loaded} rows of the table's {rows}")
        on_disk = str(
            sess.query(
                "SELECT sum(bytes_on_disk), count() FROM system.parts"
                " WHERE table = 'github_events' AND active",
                "CSV",
            )
        ).strip().split(",")
        version = str(sess.query("SELECT version()", "CSV")).strip().strip('"')

        def run(sql):
            result = sess.query(f"{sql} SETTINGS {CLICKHOUSE_SETTINGS}", "JSONCompactEachRow")
            return [json.loads(line) for line in result.bytes().splitlines() if line.strip()]

        return {
            "version": version,
            "chdb": chdb.__version__,
            "load_seconds": load_seconds,
            "rows": loaded,
            "bytes_on_disk": int(on_disk[0]),
            "parts": int(on_disk[1]),
            "queries": each_query(queries, "clickhouse", run, runs),
        }
    finally:
        sess.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    job = json.load(sys.stdin)
    table = os.path.abspath(job["table"])
    delta = DeltaTable(table)
    files = [u.removeprefix("file://") for u in delta.file_uris()]
    described = []
    for f in files:
        described.append(
            {"path": f, "bytes": os.path.getsize(f), "rows": pq.ParquetFile(f).metadata.num_rows}
        )
    out = {
        "version": delta.version(),
        "files": described,
        "rows": sum(f["rows"] for f in described),
    }
    engines = job.get("engines", [])
    queries = job.get("queries", [])
    runs = int(job.get("runs", 3))
    for engine in engines:
        try:
            if engine == "duckdb":
                out[engine] = duckdb_peer(files, queries, runs)
            elif engine == "clickhouse":
                workdir = job.get("workdir") or os.path.join(table, "..", "chdb")
                out[engine] = clickhouse_peer(files, out["rows"], workdir, queries, runs)
        except Exception as error:
            out[engine] = {"error": first_line(error)}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
