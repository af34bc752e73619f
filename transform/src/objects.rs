//! Writing objects through `object_store` from plain threads.
//!
//! The encoder and the quarantine run on their own threads and write through `std::io::Write`;
//! [`ObjectWriter`] turns that into a multipart upload (a staging file renamed into place on the
//! local file system, a real multipart upload on S3), so an object either appears whole or not at
//! all, and nothing larger than one upload part is buffered.

use std::io::{self, Write};
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::runtime::Handle;

/// Size of each uploaded part; S3 needs at least 5 MiB for all but the last.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts in flight at once per object.
const MAX_IN_FLIGHT: usize = 2;

pub(crate) struct ObjectWriter {
    upload: Option<WriteMultipart>,
    handle: Handle,
    path: Path,
}

impl ObjectWriter {
    pub fn create(
        store: &Arc<dyn ObjectStore>,
        path: Path,
        handle: Handle,
    ) -> io::Result<ObjectWriter> {
        let upload = handle
            .block_on(store.put_multipart(&path))
            .map_err(io::Error::other)?;
        Ok(ObjectWriter {
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES)),
            handle,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes the upload: only now does the object exist.
    pub fn finish(&mut self) -> io::Result<()> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| io::Error::other("object already finished"))?;
        let _entered = self.handle.enter();
        self.handle
            .block_on(upload.finish())
            .map_err(io::Error::other)?;
        Ok(())
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| io::Error::other("object already finished"))?;
        // WriteMultipart spawns the part uploads onto the runtime, so enter it first.
        let _entered = self.handle.enter();
        self.handle
            .block_on(upload.wait_for_capacity(MAX_IN_FLIGHT))
            .map_err(io::Error::other)?;
        upload.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    /// An unfinished upload is aborted, so no staging file or orphan part is left behind.
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            let path = self.path.clone();
            let abort = async move {
                if let Err(error) = upload.abort().await {
                    tracing::warn!(%path, %error, "could not abort an unfinished upload");
                }
            };
            // Blocking is not allowed inside a task: there, abort in the background.
            if tokio::task::try_id().is_some() {
                self.handle.spawn(abort);
            } else {
                let _entered = self.handle.enter();
                self.handle.block_on(abort);
            }
        }
    }
}
