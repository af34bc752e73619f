//! The deployment against the code: the CloudFormation template's Glue table, named queries,
//! queue timeouts, environment, the compaction's role and alarm, and the image's entry points
//! against what the binaries write and read; `infra/init.sh` against a moto server;
//! `docker_build.sh --dry-run`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use adapters::JobStore;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use events::jobs::IngestRun;
use serde_yaml_ng::Value;
use support::{AwsWorld, Mirror};

const TEMPLATE: &str = include_str!("../infra/template.yaml");

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn template() -> Value {
    serde_yaml_ng::from_str(TEMPLATE).expect("infra/template.yaml is YAML")
}

/// The template's resources of one type, by logical id.
fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("a logical id"), &r["Properties"]))
        .collect()
}

/// The properties of the resource `id`.
fn properties<'a>(template: &'a Value, id: &str) -> &'a Value {
    let resource = &template["Resources"][id];
    assert!(!resource.is_null(), "no resource {id}");
    &resource["Properties"]
}

fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a plain string: {value:?}"))
}

/// `(name, type)` of a Glue column list.
fn glue_columns(columns: &Value) -> Vec<(String, String)> {
    columns
        .as_sequence()
        .expect("a column list")
        .iter()
        .map(|c| {
            (
                str_of(&c["Name"]).to_string(),
                str_of(&c["Type"]).to_string(),
            )
        })
        .collect()
}

/// The Athena (Hive DDL) type that reads an Arrow type from Parquet.
fn athena_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond, _) => "timestamp".into(),
        DataType::List(item) | DataType::LargeList(item) => {
            format!("array<{}>", athena_type(item.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), athena_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => panic!("{other} has no Athena type that reads it right"),
    }
}

/// A lake made by `elt transform` from two hours of real events on two days, made once for the
/// tests that read it.
fn local_lake() -> &'static Path {
    static LAKE: OnceLock<tempfile::TempDir> = OnceLock::new();
    LAKE.get_or_init(make_lake).path()
}

fn make_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for hour in ["2024-03-05-14", "2024-03-06-0"] {
        let path = dir.path().join(format!("{hour}.json.gz"));
        std::fs::write(&path, support::gzip_lines(hour, 3000)).unwrap();
        files.push(path);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_elt"))
        .arg("transform")
        .arg("--lake")
        .arg(dir.path().join("lake"))
        .args(&files)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    dir
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The command succeeded and printed `text`.
fn assert_says(output: &Output, text: &str) {
    assert!(output.status.success(), "{}", stderr(output));
    assert!(
        stdout(output).contains(text),
        "no `{text}` in: {}",
        stdout(output)
    );
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn glue_table_columns_are_the_parquet_schema_the_transform_writes() {
    let template = template();
    let tables = resources(&template, "AWS::Glue::Table");
    let [(_, table)] = tables.as_slice() else {
        panic!("one Glue table, found {}", tables.len())
    };
    let input = &table["TableInput"];
    assert_eq!(str_of(&input["Name"]), "ghactivity");
    let declared = glue_columns(&input["StorageDescriptor"]["Columns"]);

    let lake = local_lake();
    let files = parquet_files(&lake.join("lake/ghactivity"));
    assert_eq!(files.len(), 2, "one part per hour: {files:?}");
    for file in &files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .expect("a Parquet file");
        let written: Vec<(String, String)> = reader
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), athena_type(f.data_type())))
            .collect();
        let differences: Vec<String> = (0..declared.len().max(written.len()))
            .filter(|&i| declared.get(i) != written.get(i))
            .map(|i| {
                format!(
                    "#{i}: Glue {:?}, Parquet {:?}",
                    declared.get(i),
                    written.get(i)
                )
            })
            .collect();
        assert!(
            differences.is_empty(),
            "the Glue columns (infra/template.yaml) differ from {}:\n{}",
            file.display(),
            differences.join("\n")
        );
    }
    // The partition folders are what the projection builds: two-digit month and day.
    let folders: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            f.parent()
                .unwrap()
                .strip_prefix(lake.join("lake"))
                .unwrap()
                .to_path_buf()
        })
        .collect();
    assert_eq!(
        folders,
        [
            "ghactivity/year=2024/month=03/dayofmonth=05",
            "ghactivity/year=2024/month=03/dayofmonth=06"
        ]
        .map(PathBuf::from)
    );

    let partitions = glue_columns(&input["PartitionKeys"]);
    let expected: Vec<(String, String)> = ["year", "month", "dayofmonth"]
        .iter()
        .map(|n| (n.to_string(), "int".to_string()))
        .collect();
    assert_eq!(partitions, expected);
    // A Delta table at the table's folder, whose log declares the same columns and partitions.
    let parameters = &input["Parameters"];
    assert_eq!(str_of(&parameters["table_type"]), "DELTA");
    let location = format!("{:?}", input["StorageDescriptor"]["Location"]);
    assert!(location.contains("${CuratedPrefix}"), "{location}");
    let logged = delta_log_columns(&lake.join("lake/ghactivity"));
    let (logged_partitions, logged_columns): (Vec<_>, Vec<_>) = logged
        .into_iter()
        .partition(|(name, _)| ["year", "month", "dayofmonth"].contains(&name.as_str()));
    assert_eq!(
        logged_columns, declared,
        "the log's columns are the Glue table's"
    );
    assert_eq!(
        logged_partitions, partitions,
        "the log's partitions are the Glue table's"
    );
}

/// The columns of the Delta table's schema (its first commit's `metaData`), in Athena's types.
fn delta_log_columns(table: &Path) -> Vec<(String, String)> {
    let first = std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json"))
        .expect("the table's first commit");
    let metadata: serde_json::Value = first
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find_map(|a| a.get("metaData").cloned())
        .expect("a metaData action");
    let schema: serde_json::Value =
        serde_json::from_str(metadata["schemaString"].as_str().unwrap()).unwrap();
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let kind = match &f["type"] {
                serde_json::Value::String(t) => match t.as_str() {
                    "long" => "bigint".to_string(),
                    "integer" => "int".to_string(),
                    other => other.to_string(),
                },
                t => format!("array<{}>", t["elementType"].as_str().unwrap()),
            };
            (f["name"].as_str().unwrap().to_string(), kind)
        })
        .collect()
}

#[test]
fn every_named_query_runs_on_a_local_lake() {
    let template = template();
    let queries: Vec<(&str, &str)> = resources(&template, "AWS::Athena::NamedQuery")
        .into_iter()
        .map(|(_, q)| (str_of(&q["Name"]), str_of(&q["QueryString"])))
        .collect();
    let names: Vec<&str> = queries.iter().map(|(n, _)| *n).collect();
    for wanted in [
        "events-per-type-per-day",
        "top-repositories",
        "most-active-actors",
        "pull-requests-merged-per-day",
    ] {
        assert!(
            names.contains(&wanted),
            "no named query {wanted}: {names:?}"
        );
    }

    let lake = local_lake();
    for (name, sql) in queries {
        let output = Command::new(env!("CARGO_BIN_EXE_elt"))
            .arg("query")
            .arg("--lake")
            .arg(lake.join("lake"))
            .args(["--format", "json", sql])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "named query {name} fails on DataFusion: {}",
            stderr(&output)
        );
        let rows: Vec<serde_json::Value> = stdout(&output)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!rows.is_empty(), "named query {name} returned no rows");
        if name == "events-per-type-per-day" {
            let days: std::collections::BTreeSet<String> = rows
                .iter()
                .map(|r| format!("{}-{}-{}", r["year"], r["month"], r["dayofmonth"]))
                .collect();
            assert_eq!(
                days.into_iter().collect::<Vec<_>>(),
                ["2024-3-5", "2024-3-6"]
            );
            let events: u64 = rows.iter().map(|r| r["events"].as_u64().unwrap()).sum();
            assert_eq!(events, 6000, "every event counted once");
        }
    }
}

#[test]
fn the_queue_hides_a_message_six_times_as_long_as_the_transform_may_run() {
    let template = template();
    let allowed = template["Parameters"]["TransformTimeoutSeconds"]["AllowedValues"]
        .as_sequence()
        .expect("the transform timeout is one of a list");
    assert!(!allowed.is_empty());
    for timeout in allowed {
        let seconds: u64 = str_of(timeout).parse().unwrap();
        let visibility = template["Mappings"]["TransformTimeouts"][str_of(timeout)]
            ["VisibilityTimeout"]
            .as_u64()
            .unwrap_or_else(|| panic!("no visibility timeout for {seconds} s"));
        assert!(
            visibility >= 6 * seconds,
            "{seconds} s: visibility {visibility}"
        );
    }
    let queue = properties(&template, "RawEventsQueue");
    let visibility = format!("{:?}", queue["VisibilityTimeout"]);
    assert!(
        visibility.contains("FindInMap")
            && visibility.contains("TransformTimeouts")
            && visibility.contains("TransformTimeoutSeconds"),
        "{visibility}"
    );
    let transform = properties(&template, "TransformFunction");
    assert_eq!(
        format!("{:?}", transform["Timeout"]),
        format!("{:?}", ref_to("TransformTimeoutSeconds"))
    );
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        format!("{:?}", redrive["maxReceiveCount"]),
        format!("{:?}", ref_to("MaxReceiveCount"))
    );
}

fn ref_to(name: &str) -> Value {
    yaml(&format!("!Ref {name}"))
}

/// A value as the template writes it (`!Sub ${CuratedBucket.Arn}/*`, `[a, b]`).
fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

/// A source file of the repository, read when a test needs it (so that a missing one fails that
/// test alone).
fn source(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The settings the compaction binary takes from the environment: its clap `Parser` struct in
/// `transform/src/bin/compact.rs` and the structs it flattens (`AwsTarget`, `CompactSettings`).
fn read_by_compact() -> Vec<String> {
    let sources = [
        source("transform/src/bin/compact.rs"),
        source("transform/src/handler.rs"),
        source("transform/src/compaction.rs"),
    ];
    let main = &sources[0];
    let derive = main
        .find("Parser")
        .expect("compact.rs derives a clap Parser");
    let name = main[derive..]
        .split("struct ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
        })
        .expect("the Parser struct's name");
    env_of(name, &sources)
}

/// The settings the clap struct `name` takes from the environment, its `#[command(flatten)]`
/// fields' structs included, found in `sources`.
fn env_of(name: &str, sources: &[String]) -> Vec<String> {
    let body = sources
        .iter()
        .find_map(|source| {
            let rest = &source[source.find(&format!("struct {name} {{"))?..];
            Some(&rest[..rest.find("\n}").unwrap_or(rest.len())])
        })
        .unwrap_or_else(|| panic!("no struct {name} in the compaction's sources"));
    let mut read = read_by(body);
    for flattened in body.split("#[command(flatten)]").skip(1) {
        let field = flattened
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("#["))
            .expect("a flattened field");
        let kind = field
            .split(':')
            .next_back()
            .map(|t| t.trim().trim_end_matches(','))
            .expect("the field's type");
        read.extend(env_of(kind, sources));
    }
    read
}

/// The settings a binary takes from the environment (clap `env = "…"`).
fn read_by(source: &str) -> Vec<String> {
    source
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_functions_environment_is_what_the_binaries_read() {
    let template = template();
    let functions = resources(&template, "AWS::Serverless::Function");
    let ids: Vec<&str> = functions.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        ["IngestFunction", "TransformFunction", "CompactFunction"]
    );
    for (id, function) in functions {
        let (read, needed): (_, &[&str]) = match id {
            "IngestFunction" => (
                read_by(include_str!("../ingest/src/config.rs")),
                &["RAW_BUCKET", "JOBS_TABLE", "JOB_RUNS_TABLE"],
            ),
            "TransformFunction" => (
                read_by(include_str!("../transform/src/handler.rs")),
                &["CURATED_BUCKET", "RAW_PREFIX", "JOB_RUNS_TABLE"],
            ),
            // The compaction's settings are all the stack's: where the table is, where its
            // commit records are, and the sort's memory, spill folder, file size and look-back.
            _ => (
                read_by_compact(),
                &[
                    "CURATED_BUCKET",
                    "CURATED_PREFIX",
                    "JOBS_TABLE",
                    "COMPACT_MEMORY_MIB",
                    "COMPACT_SPILL_DIR",
                    "COMPACT_TARGET_FILE_MIB",
                    "COMPACT_LOOKBACK_DAYS",
                ],
            ),
        };
        let variables = function["Environment"]["Variables"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{id} has no environment"));
        for name in variables.keys() {
            let name = str_of(name);
            assert!(
                read.iter().any(|r| r == name),
                "{id} sets {name}, which it does not read"
            );
        }
        for name in needed {
            assert!(
                variables.contains_key(*name),
                "{id} does not set {name}, which the stack decides"
            );
        }
    }
}

#[test]
fn the_compaction_runs_hourly_on_the_table_the_transform_writes() {
    let template = template();
    let compact = properties(&template, "CompactFunction");
    let transform = properties(&template, "TransformFunction");
    let variables = &compact["Environment"]["Variables"];
    // The same table, and the same commit records, as the transform's.
    for name in ["CURATED_BUCKET", "CURATED_PREFIX", "JOBS_TABLE"] {
        assert_eq!(
            variables[name], transform["Environment"]["Variables"][name],
            "CompactFunction's {name} is not the transform's"
        );
    }
    assert_eq!(
        variables["COMPACT_MEMORY_MIB"],
        ref_to("CompactSortMemoryMiB")
    );
    assert_eq!(
        variables["COMPACT_LOOKBACK_DAYS"],
        ref_to("CompactLookbackDays")
    );
    assert_eq!(variables["COMPACT_TARGET_FILE_MIB"], yaml("\"1024\""));
    // The sort spills where Lambda lets it write, and Lambda gives it the most room there.
    assert_eq!(str_of(&variables["COMPACT_SPILL_DIR"]), "/tmp");
    assert_eq!(compact["EphemeralStorage"]["Size"].as_u64(), Some(10240));
    assert_eq!(compact["MemorySize"], ref_to("CompactMemorySize"));
    assert_eq!(compact["Timeout"].as_u64(), Some(900));
    // The sort's memory is a part of the function's, at the defaults and at the limits.
    let parameters = &template["Parameters"];
    for bound in ["Default", "MaxValue"] {
        let sort = parameters["CompactSortMemoryMiB"][bound].as_u64().unwrap();
        let function = parameters["CompactMemorySize"][bound].as_u64().unwrap();
        assert!(sort < function, "{bound}: sort {sort} MiB of {function} MB");
    }
    assert_eq!(
        parameters["CompactMemorySize"]["Default"].as_u64(),
        Some(4096)
    );
    assert_eq!(
        parameters["CompactSortMemoryMiB"]["Default"].as_u64(),
        Some(2048)
    );
    assert_eq!(
        parameters["CompactLookbackDays"]["Default"].as_u64(),
        Some(30)
    );
    // No reservation by default (a new account's whole limit is 10); 1 reserves one execution.
    assert_eq!(
        compact["ReservedConcurrentExecutions"],
        yaml("!If [ReservesCompactConcurrency, 1, !Ref AWS::NoValue]")
    );
    assert_eq!(
        parameters["CompactReservedConcurrency"]["Default"].as_u64(),
        Some(0)
    );
    // On the schedule, with an empty event; the schedule is the retry.
    let events = compact["Events"]
        .as_mapping()
        .expect("CompactFunction's events");
    let [(_, event)] = events.iter().collect::<Vec<_>>()[..] else {
        panic!("one event: {events:?}")
    };
    assert_eq!(str_of(&event["Type"]), "Schedule");
    assert_eq!(event["Properties"]["Schedule"], ref_to("CompactSchedule"));
    assert_eq!(str_of(&event["Properties"]["Input"]), "{}");
    assert_eq!(
        str_of(&parameters["CompactSchedule"]["Default"]),
        "rate(1 hour)"
    );
    assert_eq!(
        compact["EventInvokeConfig"]["MaximumRetryAttempts"].as_u64(),
        Some(0)
    );
    assert_eq!(
        compact["ImageConfig"]["EntryPoint"],
        yaml("[/var/task/compact]")
    );
    assert_eq!(compact["ImageUri"], transform["ImageUri"], "one image");
}

/// `(actions, resources, condition)` of each statement of a role's policies.
fn statements(role: &Value) -> Vec<(Vec<String>, Vec<Value>, Value)> {
    let list = |value: &Value| -> Vec<Value> {
        match value {
            Value::Sequence(items) => items.clone(),
            one => vec![one.clone()],
        }
    };
    role["Policies"]
        .as_sequence()
        .expect("the role's policies")
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
        .map(|s| {
            assert_eq!(str_of(&s["Effect"]), "Allow", "{s:?}");
            let actions = list(&s["Action"])
                .iter()
                .map(|a| str_of(a).to_string())
                .collect();
            (actions, list(&s["Resource"]), s["Condition"].clone())
        })
        .collect()
}

#[test]
fn the_compaction_may_rewrite_the_table_and_only_read_commit_records() {
    let template = template();
    let compact = properties(&template, "CompactFunction");
    assert_eq!(compact["Role"], yaml("!GetAtt CompactRole.Arn"));
    assert_eq!(
        compact["LoggingConfig"]["LogGroup"],
        ref_to("CompactLogGroup")
    );
    let statements = statements(properties(&template, "CompactRole"));
    let mut granted: Vec<&str> = statements
        .iter()
        .flat_map(|(actions, _, _)| actions.iter().map(String::as_str))
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:Query",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
        ],
        "the compaction role grants exactly these (no DynamoDB write)"
    );
    for (actions, resources, condition) in &statements {
        let service = actions[0].split(':').next().unwrap();
        assert!(
            actions
                .iter()
                .all(|a| a.starts_with(&format!("{service}:"))),
            "one service a statement: {actions:?}"
        );
        match (service, actions.contains(&"s3:ListBucket".to_string())) {
            // Objects of the table only: its parts and its log (CuratedPrefix*, _delta_log/
            // included), not the quarantine, the transform's staging or its event ids.
            ("s3", false) => {
                assert_eq!(
                    resources,
                    &[yaml("!Sub ${CuratedBucket.Arn}/${CuratedPrefix}*")]
                );
                assert!(condition.is_null(), "{condition:?}");
            }
            ("s3", true) => {
                assert_eq!(actions, &["s3:ListBucket"]);
                assert_eq!(resources, &[yaml("!GetAtt CuratedBucket.Arn")]);
                assert_eq!(
                    condition["StringLike"]["s3:prefix"],
                    yaml("[!Sub '${CuratedPrefix}*']"),
                    "listing is held to the table's prefix"
                );
            }
            // The jobs table's commit records only (not the ingest's job item), read only.
            ("dynamodb", _) => {
                assert_eq!(resources, &[yaml("!GetAtt JobsTable.Arn")]);
                assert_eq!(
                    condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
                    yaml("[commit#*]"),
                    "the compaction reads the jobs table's commit records only"
                );
            }
            ("logs", _) => assert_eq!(resources, &[yaml("!GetAtt CompactLogGroup.Arn")]),
            _ => panic!("unexpected statement {actions:?}"),
        }
    }
    // The records it reads are the ones the condition lets through.
    let hour: events::Hour = "2024-03-05-14".parse().unwrap();
    let key = events::commits::commit_key(events::DEFAULT_CURATED_PREFIX, hour);
    assert!(key.starts_with("commit#"), "{key}");
    assert_eq!(
        str_of(&template["Parameters"]["CuratedPrefix"]["Default"]),
        events::DEFAULT_CURATED_PREFIX
    );
}

#[test]
fn a_failed_compaction_alarms_and_every_alarm_is_on_the_dashboard() {
    let template = template();
    let alarm = properties(&template, "CompactErrorsAlarm");
    assert_eq!(str_of(&alarm["Namespace"]), "AWS/Lambda");
    assert_eq!(str_of(&alarm["MetricName"]), "Errors");
    assert_eq!(
        alarm["Dimensions"],
        yaml("[{Name: FunctionName, Value: !Ref CompactFunction}]")
    );
    assert_eq!(str_of(&alarm["Statistic"]), "Sum");
    assert_eq!(alarm["Threshold"].as_u64(), Some(1));
    assert_eq!(
        str_of(&alarm["ComparisonOperator"]),
        "GreaterThanOrEqualToThreshold"
    );
    // A period of the hourly schedule: one run in each.
    assert_eq!(alarm["Period"].as_u64(), Some(3600));
    assert_eq!(str_of(&alarm["TreatMissingData"]), "notBreaching");
    let description = str_of(&alarm["AlarmDescription"]);
    for advice in [
        "compaction logs",
        "`elt compact --aws --from DAY --to DAY`",
        "`elt verify --aws",
    ] {
        assert!(
            description.contains(advice),
            "no {advice} in: {description}"
        );
    }
    // Every alarm notifies as the others do, and shows on the dashboard's alarm widget.
    let body = match &properties(&template, "Dashboard")["DashboardBody"] {
        Value::Tagged(sub) => str_of(&sub.value).to_string(),
        other => panic!("the dashboard body is a !Sub string: {other:?}"),
    };
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.iter().any(|(id, _)| *id == "CompactErrorsAlarm"));
    for (id, other) in alarms {
        assert_eq!(
            other["AlarmActions"],
            yaml("!If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]"),
            "{id} does not notify AlarmTopicArn"
        );
        assert!(
            body.contains(&format!("\"${{{id}.Arn}}\"")),
            "{id} is not on the dashboard"
        );
    }
    // The compaction's row: its runs, errors and duration.
    for metric in ["Invocations", "Errors", "Duration"] {
        assert!(
            body.contains(&format!(
                "[\"AWS/Lambda\", \"{metric}\", \"FunctionName\", \"${{CompactFunction}}\""
            )),
            "the compaction's {metric} is not on the dashboard"
        );
    }
}

#[test]
fn the_compaction_alarm_names_commands_elt_has() {
    let template = template();
    let description = str_of(&properties(&template, "CompactErrorsAlarm")["AlarmDescription"]);
    // Each `elt …` it quotes: the subcommand exists and takes each option quoted.
    let commands: Vec<&str> = description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| quoted.starts_with("elt "))
        .collect();
    assert!(commands.len() >= 2, "{description}");
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let output = Command::new(env!("CARGO_BIN_EXE_elt"))
            .args([words[1], "--help"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`{command}`: elt has no {} command: {}",
            words[1],
            stderr(&output)
        );
        for option in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                stdout(&output).contains(option),
                "`{command}`: elt {} takes no {option}:\n{}",
                words[1],
                stdout(&output)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// infra/init.sh

fn init(world: &AwsWorld, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("bash");
    command.arg(repo_path("infra/init.sh")).args(args);
    support::aws_env(&mut command)
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("BASELINE_DAYS")
        .env_remove("INGEST_JOB_ID")
        .env("JOBS_TABLE", &world.jobs_table)
        .env("JOB_RUNS_TABLE", &world.runs_table);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command
        .output()
        .expect("bash runs infra/init.sh (it needs the AWS CLI: pip install awscli)");
    assert!(
        !stderr(&output).contains("the AWS CLI is needed"),
        "pip install awscli: {}",
        stderr(&output)
    );
    output
}

#[tokio::test]
async fn init_creates_the_tables_and_seeds_the_baseline_day_that_ingest_starts_at() {
    let world = AwsWorld::without_tables(false).await;
    let job_id = events::jobs::DEFAULT_INGEST_JOB_ID;

    let first = init(
        &world,
        &["--create-tables", "--baseline-day", "2024-03-05"],
        &[],
    );
    assert_says(&first, "created table");
    let seeded = world.job(job_id).await;
    assert_eq!(
        seeded.baseline_day.map(|d| d.to_string()).as_deref(),
        Some("2024-03-05")
    );
    assert_eq!(seeded.baseline_days, Some(3), "the default");
    assert!(seeded.job_run_bookmark_details.is_none());
    // `elt status --aws` reads the job state only: no bucket needs to be named.
    let status = world
        .command(env!("CARGO_BIN_EXE_elt"), &["status", "--aws"])
        .env_remove("RAW_BUCKET")
        .output()
        .unwrap();
    assert_says(
        &status,
        "bookmark: none yet (starts at 2024-03-05 00:00 UTC)",
    );

    // Again: the tables and the job are left as they are.
    let again = init(
        &world,
        &["--create-tables", "--baseline-day", "2024-01-01"],
        &[],
    );
    assert_says(&again, "already exists");
    assert_eq!(world.job(job_id).await, seeded);

    // The first ingest run starts at the seeded day, not BASELINE_DAYS before its own day.
    let mirror = Mirror::start();
    for hour in ["2024-03-05-0", "2024-03-05-1", "2024-03-05-2"] {
        mirror.put(&format!("{hour}.json.gz"), support::gzip_lines(hour, 20));
    }
    let output = world
        .command(env!("CARGO_BIN_EXE_elt"), &["ingest", "--aws"])
        .env("GHARCHIVE_BASE_URL", &mirror.url)
        .env("ELT_NOW", "2024-03-05T03:30:00Z")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let run: IngestRun = serde_json::from_str(stdout(&output).lines().next().unwrap()).unwrap();
    let hours: Vec<String> = run.hours.iter().map(|h| h.hour.to_string()).collect();
    assert_eq!(hours, ["2024-03-05-0", "2024-03-05-1", "2024-03-05-2"]);
    let ingested = world.job(job_id).await;
    assert_eq!(
        ingested.bookmark_hour().map(|h| h.to_string()).as_deref(),
        Some("2024-03-05-2")
    );

    // --reset starts the job again at the baseline day, and any run still at work loses it.
    let reset = init(&world, &["--reset", "--baseline-day", "2024-03-05"], &[]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    let after = world.job(job_id).await;
    assert!(after.job_run_bookmark_details.is_none());
    assert!(after.lease.is_none());
    assert!(after.version > ingested.version);

    // Without a day: BASELINE_DAYS (here --days) back from today, UTC.
    let before = chrono::Utc::now().date_naive();
    let other = init(
        &world,
        &["--days", "2"],
        &[("INGEST_JOB_ID", "another_job")],
    );
    let after_day = chrono::Utc::now().date_naive();
    assert!(other.status.success(), "{}", stderr(&other));
    let another = world.job("another_job").await;
    let day = another.baseline_day.expect("a baseline day");
    assert!(
        day == before - chrono::Duration::days(2) || day == after_day - chrono::Duration::days(2),
        "{day}"
    );
    assert_eq!(another.baseline_days, Some(2));
}

#[tokio::test]
async fn init_refuses_bad_arguments_clearly() {
    let world = AwsWorld::new(false).await;
    for (args, complaint) in [
        (&["--baseline-day", "2024-3-5"][..], "YYYY-MM-DD"),
        (&["--baseline-day", "2024-02-30"][..], "YYYY-MM-DD"),
        (&["--days", "1000000"][..], "whole number"),
        (&["--days", "three"][..], "whole number"),
        (&["--job-id", "a\"b"][..], "--job-id"),
        (&["--frobnicate"][..], "unknown argument"),
    ] {
        let output = init(&world, args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(complaint),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // And nothing was written.
    let job_id = events::jobs::DEFAULT_INGEST_JOB_ID;
    assert_eq!(world.jobs.get_job(job_id).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// docker_build.sh

/// A PATH whose `docker` and `aws` only record that they were called.
fn recording_path(dir: &Path) -> String {
    for tool in ["docker", "aws"] {
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 1\n",
                dir.join("called").display()
            ),
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).unwrap();
    }
    format!("{}:/usr/bin:/bin", dir.display())
}

fn docker_build(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(repo_path("docker_build.sh"))
        .args(args)
        .current_dir(repo_path(""))
        .env("PATH", recording_path(dir));
    for var in [
        "AWS_ACCOUNT_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "ECR_REPOSITORY",
        "PROJECT_NAME",
        "IMAGE_TAG",
        "LAMBDA_ARCH",
    ] {
        command.env_remove(var);
    }
    command.output().unwrap()
}

/// `docker_build.sh --dry-run` for account 123456789012 in `region`: the image URI (stdout) and
/// the commands it printed (stderr), having run nothing.
fn dry_run(region: &str, args: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--dry-run", "--account", "123456789012", "--region", region];
    all.extend_from_slice(args);
    let output = docker_build(dir.path(), &all);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !dir.path().join("called").exists(),
        "a dry run ran: {}",
        std::fs::read_to_string(dir.path().join("called")).unwrap_or_default()
    );
    (stdout(&output), stderr(&output))
}

#[test]
fn docker_build_dry_run_prints_every_step_and_runs_none() {
    let (uri, printed) = dry_run("eu-west-1", &["--tag", "v1", "--arch", "x86_64"]);
    let image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gh-elt:v1";
    assert_eq!(uri, format!("{image}\n"), "stdout is the image URI alone");
    for step in [
        format!("docker buildx build --platform linux/amd64 --provenance=false --tag {image} --load"),
        "aws ecr create-repository --region eu-west-1 --repository-name gh-elt".to_string(),
        "aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com".to_string(),
        format!("docker push {image}"),
        format!("aws lambda update-function-code --region eu-west-1 --function-name gh-elt-ingest --image-uri {image}"),
        format!("aws lambda update-function-code --region eu-west-1 --function-name gh-elt-transform --image-uri {image}"),
        "aws lambda wait function-updated-v2 --region eu-west-1 --function-name gh-elt-transform".to_string(),
        format!("aws lambda update-function-code --region eu-west-1 --function-name gh-elt-compact --image-uri {image}"),
        "aws lambda wait function-updated-v2 --region eu-west-1 --function-name gh-elt-compact".to_string(),
    ] {
        assert!(printed.contains(&step), "missing `{step}` in:\n{printed}");
    }

    // Names follow the stack's ProjectName; arm64 is the default architecture.
    let (uri, printed) = dry_run("us-east-2", &["--project", "demo", "--tag", "v2"]);
    assert!(
        printed.contains("--platform linux/arm64"),
        "default arm64:\n{printed}"
    );
    assert!(printed.contains("--function-name demo-ingest"), "{printed}");
    assert!(
        printed.contains("--function-name demo-compact"),
        "{printed}"
    );
    assert_eq!(
        uri,
        "123456789012.dkr.ecr.us-east-2.amazonaws.com/demo:v2\n"
    );
}

#[test]
fn docker_build_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    // No account given and `aws sts get-caller-identity` fails: a clear error before any build.
    let output = docker_build(dir.path(), &["--region", "eu-west-1", "--tag", "v1"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("account"), "{}", stderr(&output));
    let called = std::fs::read_to_string(dir.path().join("called")).unwrap_or_default();
    assert!(!called.contains("docker"), "{called}");

    let output = docker_build(dir.path(), &["--dry-run", "--arch", "sparc"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("arm64"), "{}", stderr(&output));
}

#[test]
fn every_queue_refuses_plain_http_and_the_dashboard_shows_the_metrics_the_code_emits() {
    let template = template();
    let policies = resources(&template, "AWS::SQS::QueuePolicy");
    let queues = resources(&template, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 4);
    for (queue, _) in queues {
        let (_, policy) = policies
            .iter()
            .find(|(_, p)| {
                let listed = p["Queues"].as_sequence().unwrap();
                listed.contains(&ref_to(queue))
            })
            .unwrap_or_else(|| panic!("no policy for {queue}"));
        let statements = policy["PolicyDocument"]["Statement"].as_sequence().unwrap();
        assert!(
            statements
                .iter()
                .any(|s| s["Effect"].as_str() == Some("Deny")
                    && s["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false")),
            "{queue} takes plain HTTP"
        );
    }
    let body = match &properties(&template, "Dashboard")["DashboardBody"] {
        Value::Tagged(sub) => str_of(&sub.value).to_string(),
        other => panic!("the dashboard body is a !Sub string: {other:?}"),
    };
    let emitters = [
        include_str!("../transform/src/handler/metrics.rs"),
        include_str!("../ingest/src/metrics.rs"),
    ];
    for metric in [
        "Rows",
        "Duplicates",
        "DuplicatesAcrossHours",
        "Rejected",
        "HoursIngested",
        "BookmarkLagHours",
        "ParkedHours",
        "QueuedHours",
        "RowsVsDayBefore",
        "RowsVsWeekBefore",
        "FellByHalf",
    ] {
        assert!(
            body.contains(&format!("\"gh-elt\", \"{metric}\"")),
            "{metric} is not on the dashboard"
        );
        assert!(
            emitters
                .iter()
                .any(|src| src.contains(&format!("\"{metric}\""))),
            "{metric} is on the dashboard but no code emits it"
        );
    }
    // The parked hours' widget reads the ingest's log lines about them, as the code writes them.
    assert!(body.contains("SOURCE '${IngestLogGroup}'"), "{body}");
    let pattern = body
        .split("fields.message like /")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the log widget filters the messages");
    let ingest_logs = [
        include_str!("../ingest/src/run.rs"),
        include_str!("../ingest/src/run/parked.rs"),
        include_str!("../ingest/src/run/queued.rs"),
    ];
    for word in pattern.split('|') {
        assert!(
            ingest_logs.iter().any(|src| src.contains(word)),
            "the dashboard looks for `{word}`, which no ingest log line says"
        );
    }
}

#[test]
fn the_image_builds_from_base_images_pinned_by_digest() {
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let args: std::collections::HashMap<&str, &str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("ARG ")?.split_once('='))
        .collect();
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM "))
        .map(|from| {
            from.split_whitespace()
                .find(|w| !w.starts_with("--"))
                .unwrap()
        })
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    for from in froms {
        let image = match from.strip_prefix("${").and_then(|a| a.strip_suffix('}')) {
            Some(arg) => args[arg],
            None => from,
        };
        let (_, digest) = image.split_once("@sha256:").expect("pinned by digest");
        assert_eq!(digest.len(), 64, "{image}");
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{image}");
    }
    // The build image's Rust is the toolchain the project pins.
    let toolchain = std::fs::read_to_string(repo_path("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(args["RUST_IMAGE"].contains(&format!("rust:{channel}-")));
}

#[test]
fn every_function_s_entry_point_is_a_binary_the_image_builds_and_carries() {
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    // The packages `cargo lambda build` builds, and the binaries cargo knows in them
    // (src/bin/*.rs included).
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo lambda build "))
        .expect("the Dockerfile runs cargo lambda build");
    let packages: Vec<&str> = build
        .split("--package ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(packages.contains(&"transform"), "{packages:?}");
    let metadata = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(repo_path(""))
        .output()
        .unwrap();
    assert!(metadata.status.success(), "{}", stderr(&metadata));
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let binaries: Vec<(String, String)> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| {
                    (
                        p["name"].as_str().unwrap().to_string(),
                        t["name"].as_str().unwrap().to_string(),
                    )
                })
        })
        .collect();
    // The final stage's copy into /var/task/.
    let copied = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY --from=build ") && l.ends_with(" /var/task/"))
        .expect("the binaries copied into /var/task/");

    let template = template();
    let functions = resources(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 3);
    for (id, function) in functions {
        let entry = match &function["ImageConfig"]["EntryPoint"] {
            Value::Sequence(words) if words.len() == 1 => str_of(&words[0]),
            other => panic!("{id}'s entry point is one path: {other:?}"),
        };
        let binary = entry
            .strip_prefix("/var/task/")
            .unwrap_or_else(|| panic!("{id}: {entry}"));
        assert!(
            binaries
                .iter()
                .any(|(p, b)| b == binary && packages.contains(&p.as_str())),
            "{id} runs {binary}, which no package the Dockerfile builds ({packages:?}) has: {binaries:?}"
        );
        assert!(
            dockerfile.contains(&format!(
                "cp target/lambda/{binary}/bootstrap /out/{binary}"
            )),
            "the Dockerfile does not take {binary} from cargo lambda's output"
        );
        assert!(
            copied
                .split_whitespace()
                .any(|w| w == format!("/out/{binary}")),
            "the image has no {entry}: {copied}"
        );
    }
}
