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
    /// Bytes written (whole lines only).
    written: u64,
    /// Bytes since the last newline: not written until their line is whole.
    partial: Vec<u8>,
    last_line: Vec<u8>,
}

impl Default for PartWriter {
    fn default() -> Self {
        // Fast: a part is compressed inside one queue step's CPU time; the levels above cost far
        // more CPU for a few percent of size on NDJSON.
        PartWriter { gz: GzEncoder::new(Vec::new(), Compression::fast()), lines: 0, written: 0, partial: Vec::new(), last_line: Vec::new() }
    }
}

/// A finished part: the gzipped bytes, its lines, and its last line's row (when that line is
/// JSON with an `event_id` and an `anonymous_id`).
pub struct Finished {
    pub gzipped: Vec<u8>,
    pub lines: u64,
    pub last_row: Option<RowKey>,
}

/// A row of `events` as a day's rows sort: its event id, then its visitor id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub event_id: String,
    pub anonymous_id: String,
}

impl PartWriter {
    /// Takes the next chunk of the answer; whole lines are compressed, the rest waits.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), String> {
        let Some(last) = chunk.iter().rposition(|&b| b == b'\n') else {
            self.partial.extend_from_slice(chunk);
            return Ok(());
        };
        let whole = &chunk[..=last];
        self.lines += whole.iter().filter(|&&b| b == b'\n').count() as u64;
        let before = &chunk[..last];
        let last_line = match before.iter().rposition(|&b| b == b'\n') {
            Some(prev) => before[prev + 1..].to_vec(),
            None => [self.partial.as_slice(), before].concat(),
        };
        let waiting = std::mem::take(&mut self.partial);
        self.write(&waiting)?;
        self.write(whole)?;
        self.last_line = last_line;
        self.partial.extend_from_slice(&chunk[last + 1..]);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.written += bytes.len() as u64;
        self.gz.write_all(bytes).map_err(|e| format!("gzip: {e}"))
    }

    /// Bytes of whole lines written so far (a part is cut once this passes its limit).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The part as the answer ended: a last line without its newline still counts.
    pub fn finish(mut self) -> Result<Finished, String> {
        if !self.partial.is_empty() {
            self.lines += 1;
            let line = std::mem::take(&mut self.partial);
            self.write(&line)?;
            self.last_line = line;
        }
        self.cut()
    }

    /// The part cut short at its last whole line (the rest of the answer is not read).
    pub fn cut(self) -> Result<Finished, String> {
        let last_row = serde_json::from_slice::<serde_json::Value>(&self.last_line).ok().and_then(|v| {
            Some(RowKey { event_id: v["event_id"].as_str()?.to_string(), anonymous_id: v["anonymous_id"].as_str()?.to_string() })
        });
        let gzipped = self.gz.finish().map_err(|e| format!("gzip: {e}"))?;
        Ok(Finished { gzipped, lines: self.lines, last_row })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn key(event_id: &str, anonymous_id: &str) -> RowKey {
        RowKey { event_id: event_id.into(), anonymous_id: anonymous_id.into() }
    }

    fn rows(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{{\"event_id\":\"e{i:05}\",\"anonymous_id\":\"v{}\",\"title\":\"{}\"}}\n", i % 3, "t".repeat(i % 7)))
            .collect::<String>()
            .into_bytes()
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
            assert_eq!((f.lines, f.last_row), (500, Some(key("e00499", "v1"))), "chunks of {step}");
        }
    }

    #[test]
    fn a_part_cut_short_holds_whole_lines_only() {
        let body = rows(100);
        let mut w = PartWriter::default();
        w.push(&body[..1000]).unwrap();
        let written = w.written();
        assert!(written > 0 && written < 1000, "a partial line waits: {written}");
        let f = w.cut().unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&f.gzipped[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.len() as u64, written);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len() as u64, f.lines);
        let last: serde_json::Value = serde_json::from_slice(lines.last().unwrap()).unwrap();
        assert_eq!(f.last_row, Some(key(last["event_id"].as_str().unwrap(), last["anonymous_id"].as_str().unwrap())));
    }

    #[test]
    fn an_empty_answer_and_a_missing_last_newline() {
        let f = PartWriter::default().finish().unwrap();
        assert_eq!((f.lines, f.last_row), (0, None));
        let mut w = PartWriter::default();
        w.push(b"{\"event_id\":\"a\",\"anonymous_id\":\"x\"}\n{\"event_id\":\"b\",\"anonymous_id\":\"y\"}").unwrap();
        let f = w.finish().unwrap();
        assert_eq!((f.lines, f.last_row), (2, Some(key("b", "y"))));
    }
}
