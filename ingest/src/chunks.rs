//! Fixed-size chunks in reused buffers: how the fetch's stages hand bytes to each other.

use std::sync::Arc;

use bytes::Bytes;

/// Cuts a byte stream into chunks of a fixed size, held in buffers that are reused: a chunk's
/// buffer returns to the pool when the last `Bytes` of it is dropped, on whichever thread.
///
/// Every stage hands the next one such chunks, never slices of another's buffers: received
/// chunks are slices of the HTTP client's read buffer (holding them pins it), and buffers
/// allocated on one thread and freed on another would leave the allocator holding many.
/// With the pool, memory stays at what the bounded channels and the upload hold.
pub(crate) struct Chunker {
    size: usize,
    free: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
}

/// A full chunk on its way; its buffer goes back to the pool when dropped.
struct LentBuffer {
    buffer: Vec<u8>,
    free: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Chunker {
    pub(crate) fn new(size: usize) -> Chunker {
        Chunker {
            size,
            free: Arc::default(),
            current: Vec::new(),
        }
    }

    /// Copies all of `bytes` in; returns the chunks that became full.
    pub(crate) fn split(&mut self, mut bytes: &[u8]) -> Vec<Bytes> {
        let mut full = Vec::new();
        while !bytes.is_empty() {
            let (taken, chunk) = self.fill(bytes);
            bytes = &bytes[taken..];
            full.extend(chunk);
        }
        full
    }

    /// Copies from `bytes` until the current chunk is full. Returns how many bytes it took, and
    /// the chunk if it is now full.
    pub(crate) fn fill(&mut self, bytes: &[u8]) -> (usize, Option<Bytes>) {
        if self.current.capacity() == 0 {
            let reused = self.free.lock().ok().and_then(|mut free| free.pop());
            self.current = reused.unwrap_or_else(|| Vec::with_capacity(self.size));
        }
        let taken = bytes.len().min(self.size - self.current.len());
        self.current.extend_from_slice(&bytes[..taken]);
        let full = (self.current.len() == self.size).then(|| self.lend());
        (taken, full)
    }

    /// The last, partly filled chunk, if any.
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        (!self.current.is_empty()).then(|| self.lend())
    }

    fn lend(&mut self) -> Bytes {
        Bytes::from_owner(LentBuffer {
            buffer: std::mem::take(&mut self.current),
            free: self.free.clone(),
        })
    }
}

impl AsRef<[u8]> for LentBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for LentBuffer {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        if let Ok(mut free) = self.free.lock() {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_full_but_the_last_and_their_buffers_are_reused() {
        let mut chunker = Chunker::new(4);
        let full = chunker.split(b"abcdefghij");
        assert_eq!(full, [&b"abcd"[..], &b"efgh"[..]]);
        let last = chunker.finish();
        assert_eq!(last.as_deref(), Some(&b"ij"[..]));
        assert!(chunker.finish().is_none(), "nothing left");
        drop((full, last));
        let pooled = chunker.free.lock().map(|free| free.len()).unwrap_or(0);
        assert_eq!(pooled, 3, "every buffer back in the pool");
        let again = chunker.split(b"klmn");
        assert_eq!(again, [&b"klmn"[..]]);
        assert_eq!(chunker.free.lock().map(|free| free.len()).unwrap_or(0), 2);
    }
}
