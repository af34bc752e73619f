//! gh-elt's ports and adapters. Each stage is plain async code over small interfaces:
//!
//! - object storage: `object_store::ObjectStore`, on S3 ([`objects::s3`]) or a folder
//!   ([`objects::folder`]);
//! - job state: [`JobStore`], on DynamoDB ([`DynamoJobStore`]) or SQLite ([`SqliteJobStore`]);
//! - run records: [`RunLog`], on the same two stores;
//! - hour commits: [`CommitStore`], on the same two stores.
//!
//! Each stage asks only for the ports it uses: the ingest for job state and the run log, the
//! transform for the run log and hour commits.
//!
//! The Lambda entry points and `elt` build the adapters and hand them to the stages.

pub mod aws;
pub mod batch;
pub mod commits;
pub mod dynamo;
pub mod jobs;
pub mod objects;
pub mod queue;
pub mod runs;
pub mod sqlite;
pub mod telemetry;

pub use commits::CommitStore;
pub use dynamo::DynamoJobStore;
pub use jobs::{update_job, Decision, JobStore, WriteRetry};
pub use runs::{RunLog, StoredRun};
pub use sqlite::SqliteJobStore;

/// Job state, run records and hour commits together, for what shows them all (`elt status`).
pub trait JobTables: JobStore + RunLog + CommitStore {}

impl<T: JobStore + RunLog + CommitStore + ?Sized> JobTables for T {}
