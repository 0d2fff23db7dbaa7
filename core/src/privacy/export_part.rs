//! One export part as it streams from ClickHouse to R2: each chunk of the answer is gzipped as
//! it arrives, and its lines counted; the last complete line is kept, so the next part knows
//! where to start (`exports::Job::wrote_events`). Memory: the gzipped part and one line, never
//! the answer whole.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

pub struct PartWriter {
    gz: GzEncoder<Vec<u8>>,
    lines: u64,
    /// Bytes since the last newline.
    partial: Vec<u8>,
    last_line: Vec<u8>,
}

impl Default for PartWriter {
    fn default() -> Self {
        // Fast: a part is compressed inside one queue step's CPU time; the levels above cost far
        // more CPU for a few percent of size on NDJSON.
        PartWriter { gz: GzEncoder::new(Vec::new(), Compression::fast()), lines: 0, partial: Vec::new(), last_line: Vec::new() }
    }
}

/// A finished part: the gzipped bytes, its lines, and the `event_id` of its last line (when
/// that line is JSON with one).
pub struct Finished {
    pub gzipped: Vec<u8>,
    pub lines: u64,
    pub last_event_id: Option<String>,
}

impl PartWriter {
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.gz.write_all(chunk).map_err(|e| format!("gzip: {e}"))?;
        let Some(last) = chunk.iter().rposition(|&b| b == b'\n') else {
            self.partial.extend_from_slice(chunk);
            return Ok(());
        };
        self.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let before = &chunk[..last];
        match before.iter().rposition(|&b| b == b'\n') {
            Some(prev) => self.last_line = before[prev + 1..].to_vec(),
            None => {
                self.partial.extend_from_slice(before);
                self.last_line = std::mem::take(&mut self.partial);
            }
        }
        self.partial.clear();
        self.partial.extend_from_slice(&chunk[last + 1..]);
        Ok(())
    }

    pub fn finish(mut self) -> Result<Finished, String> {
        if !self.partial.is_empty() {
            // A last line without its newline still counts.
            self.lines += 1;
            self.last_line = std::mem::take(&mut self.partial);
        }
        let last_event_id =
            serde_json::from_slice::<serde_json::Value>(&self.last_line).ok().and_then(|v| v["event_id"].as_str().map(str::to_string));
        let gzipped = self.gz.finish().map_err(|e| format!("gzip: {e}"))?;
        Ok(Finished { gzipped, lines: self.lines, last_event_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn rows(n: usize) -> Vec<u8> {
        (0..n).map(|i| format!("{{\"event_id\":\"e{i:05}\",\"title\":\"{}\"}}\n", "t".repeat(i % 7))).collect::<String>().into_bytes()
    }

    #[test]
    fn any_chunking_gives_the_same_bytes_lines_and_last_id() {
        let body = rows(500);
        for step in [1, 2, 3, 7, 64, 1000, body.len()] {
            let mut w = PartWriter::default();
            for chunk in body.chunks(step) {
                w.push(chunk).unwrap();
            }
            let f = w.finish().unwrap();
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&f.gzipped[..]).read_to_end(&mut out).unwrap();
            assert_eq!(out, body, "chunks of {step}");
            assert_eq!((f.lines, f.last_event_id.as_deref()), (500, Some("e00499")), "chunks of {step}");
        }
    }

    #[test]
    fn an_empty_answer_and_a_missing_last_newline() {
        let f = PartWriter::default().finish().unwrap();
        assert_eq!((f.lines, f.last_event_id), (0, None));
        let mut w = PartWriter::default();
        w.push(b"{\"event_id\":\"a\"}\n{\"event_id\":\"b\"}").unwrap();
        let f = w.finish().unwrap();
        assert_eq!((f.lines, f.last_event_id.as_deref()), (2, Some("b")));
    }
}
