//! gh-elt's ports and adapters. Each stage is plain async code over two small interfaces:
//!
//! - object storage: `object_store::ObjectStore`, on S3 ([`objects::s3`]) or a folder
//!   ([`objects::folder`]);
//! - job state: [`JobStore`], on DynamoDB ([`DynamoJobStore`]) or SQLite ([`SqliteJobStore`]);
//! - hour commits: [`CommitStore`], on the same two stores.
//!
//! The Lambda entry points and `elt` build the adapters and hand them to the stages.

pub mod aws;
pub mod commits;
pub mod dynamo;
pub mod jobs;
pub mod objects;
pub mod queue;
pub mod sqlite;
pub mod telemetry;

pub use commits::CommitStore;
pub use dynamo::DynamoJobStore;
pub use jobs::{update_job, Decision, JobStore, Updated, WriteRetry};
pub use sqlite::SqliteJobStore;
