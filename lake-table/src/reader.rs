//! A Parquet part read through the object store by ranges (its footer, then the columns asked
//! for), for the checks and the migration that read parts without the query engine.

use std::sync::Arc;

use deltalake_core::parquet::arrow::arrow_reader::ArrowReaderOptions;
use deltalake_core::parquet::arrow::async_reader::AsyncFileReader;
use deltalake_core::parquet::errors::ParquetError;
use deltalake_core::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// A Parquet part read through the object store by ranges: the footer, then one column.
pub struct PartReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

impl PartReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> PartReader {
        PartReader { store, path, size }
    }
}

impl AsyncFileReader for PartReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, deltalake_core::parquet::errors::Result<bytes::Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, deltalake_core::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
