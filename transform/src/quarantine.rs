//! The quarantine: every rejected line, with its source file, line number, reason and exact
//! bytes, in one gzipped JSON-lines object per hour. It is created on the first reject only.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use events::RejectRecord;
use flate2::write::GzEncoder;

use crate::objects::ObjectWriter;

pub(crate) struct Quarantine {
    open: Box<dyn FnMut() -> io::Result<ObjectWriter> + Send>,
    sink: Option<GzEncoder<ObjectWriter>>,
    rejected: u64,
}

impl Quarantine {
    pub fn new(open: Box<dyn FnMut() -> io::Result<ObjectWriter> + Send>) -> Quarantine {
        Quarantine {
            open,
            sink: None,
            rejected: 0,
        }
    }

    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn sink(&mut self) -> io::Result<&mut GzEncoder<ObjectWriter>> {
        if self.sink.is_none() {
            self.sink = Some(GzEncoder::new(
                (self.open)()?,
                flate2::Compression::default(),
            ));
        }
        Ok(self.sink.as_mut().expect("just opened"))
    }

    /// Quarantines one whole line of `source`: kept as text when it is UTF-8, else as base64.
    pub fn reject(&mut self, source: &str, line: u64, error: &str, raw: &[u8]) -> io::Result<()> {
        let (raw, raw_base64) = match std::str::from_utf8(raw) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(BASE64.encode(raw))),
        };
        let record = RejectRecord {
            source: source.to_string(),
            line,
            error: error.to_string(),
            raw: raw.map(str::to_string),
            raw_base64,
            bytes: None,
        };
        let sink = self.sink()?;
        serde_json::to_writer(&mut *sink, &record).map_err(io::Error::other)?;
        sink.write_all(b"\n")?;
        self.rejected += 1;
        Ok(())
    }

    /// Starts quarantining a line too long to hold in memory: its bytes are streamed, as base64,
    /// through the returned writer, and `finish` closes the record with the line's length.
    pub fn begin_streamed(
        &mut self,
        source: &str,
        line: u64,
        error: &str,
    ) -> io::Result<StreamedReject<'_>> {
        let head = format!(
            r#"{{"source":{},"line":{line},"error":{},"raw_base64":""#,
            serde_json::to_string(source).map_err(io::Error::other)?,
            serde_json::to_string(error).map_err(io::Error::other)?,
        );
        let sink = self.sink()?;
        sink.write_all(head.as_bytes())?;
        self.rejected += 1;
        let sink = self.sink.as_mut().expect("opened above");
        Ok(StreamedReject {
            encoder: base64::write::EncoderWriter::new(sink, &BASE64),
            bytes: 0,
        })
    }

    /// Completes the quarantine object, if any line was rejected; returns its staging path.
    pub fn finish(self) -> io::Result<Option<ObjectWriter>> {
        match self.sink {
            None => Ok(None),
            Some(sink) => Ok(Some(sink.finish()?)),
        }
    }
}

pub(crate) struct StreamedReject<'a> {
    encoder: base64::write::EncoderWriter<
        'static,
        base64::engine::GeneralPurpose,
        &'a mut GzEncoder<ObjectWriter>,
    >,
    bytes: u64,
}

impl StreamedReject<'_> {
    pub fn write(&mut self, raw: &[u8]) -> io::Result<()> {
        self.bytes += raw.len() as u64;
        self.encoder.write_all(raw)
    }

    pub fn finish(mut self) -> io::Result<()> {
        let sink = self.encoder.finish()?;
        write!(sink, r#"","bytes":{}}}"#, self.bytes)?;
        sink.write_all(b"\n")
    }
}
