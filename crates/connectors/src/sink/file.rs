//! The file sink: appends NDJSON lines; a flush makes them safe (written to the file).

use std::path::Path;

use tokio::io::AsyncWriteExt;
use watchfloor_model::AlertTransition;

use super::{AlertSink, OutputError, SinkFuture};

/// Appends one JSON document per line.
pub struct FileSink {
    writer: tokio::io::BufWriter<tokio::fs::File>,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its folder.
    pub async fn open(path: &Path) -> Result<FileSink, OutputError> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(FileSink {
            writer: tokio::io::BufWriter::new(file),
        })
    }

    async fn line(&mut self, line: Vec<u8>) -> Result<(), OutputError> {
        self.writer.write_all(&line).await?;
        self.writer.write_all(b"\n").await?;
        Ok(())
    }
}

impl AlertSink for FileSink {
    fn send_alert<'a>(&'a mut self, transition: &'a AlertTransition) -> SinkFuture<'a> {
        let line = serde_json::to_vec(transition).expect("transitions serialise");
        Box::pin(self.line(line))
    }

    fn send_record<'a>(&'a mut self, record: &'a serde_json::Value) -> SinkFuture<'a> {
        let line = serde_json::to_vec(record).expect("records serialise");
        Box::pin(self.line(line))
    }

    fn flush(&mut self) -> SinkFuture<'_> {
        Box::pin(async move { Ok(self.writer.flush().await?) })
    }
}
