//! The operator's own AWS set-up: a named profile (region, endpoint and keys in the AWS config
//! files) and no AWS variables at all. Every client, S3 included, takes the SDK's chain.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::AwsWorld;

/// `elt` with only an AWS profile: the environment cleared but for the profile's name and files.
fn elt_with_profile(home: &Path, world: &AwsWorld, curated: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_elt"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_PROFILE", "operator")
        .env("AWS_CONFIG_FILE", home.join(".aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
        .env("RAW_BUCKET", &world.bucket)
        .env("CURATED_BUCKET", curated)
        .env("JOBS_TABLE", &world.jobs_table)
        .env("JOB_RUNS_TABLE", &world.runs_table)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("elt runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn with_only_an_aws_profile_every_command_reaches_s3_and_dynamodb() {
    let world = AwsWorld::new(false).await;
    let curated = support::unique("curated");
    world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile operator]\nregion = us-east-1\nendpoint_url = {}\n",
            support::moto().endpoint
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[operator]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let mirror = home.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let hour = "2024-03-05-14";
    std::fs::write(
        mirror.join(format!("{hour}.json.gz")),
        support::gzip_lines(hour, 50),
    )
    .unwrap();
    let source = format!("file://{}/", mirror.display());

    let ingested = ok(&elt_with_profile(
        home.path(),
        &world,
        &curated,
        &[
            "ingest", "--aws", "--source", &source, "--from", hour, "--until", hour,
        ],
    ));
    assert!(ingested.contains("\"hours_ingested\":1"), "{ingested}");

    let url = format!("s3://{}/landing/ghactivity/{hour}.json.gz", world.bucket);
    let transformed =
        elt_with_profile(home.path(), &world, &curated, &["transform", "--aws", &url]);
    let summary: events::TransformSummary = serde_json::from_str(&ok(&transformed)).unwrap();
    assert_eq!(summary.rows, 50);

    let status = ok(&elt_with_profile(
        home.path(),
        &world,
        &curated,
        &["status", "--aws"],
    ));
    assert!(status.contains(&format!("bookmark: {hour}")), "{status}");

    let verified = elt_with_profile(
        home.path(),
        &world,
        &curated,
        &["verify", "--aws", "--from", hour, "--to", hour],
    );
    let report = ok(&verified);
    assert!(report.contains("clean"), "{report}");
}
