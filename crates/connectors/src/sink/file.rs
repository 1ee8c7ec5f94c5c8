//! The file sink: appends NDJSON lines. A line is confirmed once a flush has written it
//! and synced the file (`sync_data`), on a blocking thread so the runtime never waits on
//! the disk.
//!
//! Invariant: bytes leave the buffer only once written; a write that fails midway (a full
//! disk) keeps the rest, and the next flush continues exactly where it stopped, so a line
//! is never lost nor written twice. A flush cancelled while its thread runs loses nothing
//! either: the thread drains only what it wrote.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use watchfloor_model::AlertTransition;

use super::{AlertSink, OutputError, SinkFuture};

/// Appends one JSON document per line.
pub struct FileSink {
    file: Arc<std::fs::File>,
    /// Lines not yet written.
    buffer: Arc<Mutex<Vec<u8>>>,
    /// Held by the thread writing (one at a time, even after a cancelled flush).
    writing: Arc<Mutex<()>>,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its folder.
    pub async fn open(path: &Path) -> Result<FileSink, OutputError> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(FileSink {
            file: Arc::new(file),
            buffer: Arc::new(Mutex::new(Vec::new())),
            writing: Arc::new(Mutex::new(())),
        })
    }

    fn line(&mut self, mut line: Vec<u8>) -> SinkFuture<'_> {
        line.push(b'\n');
        self.buffer
            .lock()
            .expect("file sink buffer")
            .extend_from_slice(&line);
        Box::pin(async { Ok(()) })
    }
}

/// Writes what `buffer` holds to `file` and syncs it; drains only what was written.
fn write_out(
    file: &std::fs::File,
    buffer: &Mutex<Vec<u8>>,
    writing: &Mutex<()>,
) -> std::io::Result<()> {
    let _one_at_a_time = writing.lock().unwrap_or_else(|e| e.into_inner());
    let data = buffer.lock().expect("file sink buffer").clone();
    if data.is_empty() {
        return Ok(());
    }
    let mut written = 0;
    let mut out = file;
    let result = loop {
        if written == data.len() {
            break out.sync_data();
        }
        match out.write(&data[written..]) {
            Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buffer.lock().expect("file sink buffer").drain(..written);
    result
}

impl AlertSink for FileSink {
    fn send_alert<'a>(&'a mut self, transition: &'a AlertTransition) -> SinkFuture<'a> {
        let line = serde_json::to_vec(transition).expect("transitions serialise");
        self.line(line)
    }

    fn send_record<'a>(&'a mut self, record: &'a serde_json::Value) -> SinkFuture<'a> {
        let line = serde_json::to_vec(record).expect("records serialise");
        self.line(line)
    }

    fn send_payload<'a>(
        &'a mut self,
        _key: &'a str,
        _vars: &'a [(&'a str, &'a str)],
        payload: Vec<u8>,
    ) -> SinkFuture<'a> {
        if payload.contains(&b'\n') {
            return Box::pin(async {
                Err(OutputError::Unsupported(
                    "a payload for a file output must be one line".into(),
                ))
            });
        }
        self.line(payload)
    }

    fn flush(&mut self) -> SinkFuture<'_> {
        let (file, buffer, writing) =
            (self.file.clone(), self.buffer.clone(), self.writing.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || write_out(&file, &buffer, &writing))
                .await
                .map_err(|e| OutputError::Io(std::io::Error::other(e.to_string())))??;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_written_once_and_in_order() {
        let dir = std::env::temp_dir().join(format!("watchfloor-file-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("out.ndjson");
        let mut sink = FileSink::open(&path).await.unwrap();
        for i in 0..3 {
            sink.send_record(&serde_json::json!({ "n": i }))
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
        sink.flush().await.unwrap();
        sink.send_record(&serde_json::json!({ "n": 3 }))
            .await
            .unwrap();
        sink.flush().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
        );
    }
}
