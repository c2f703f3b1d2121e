//! One record in a log file, in docker's encodings.
//!
//! - json-file: one JSON object per line,
//!   `{"log":"hello\n","stream":"stdout","time":"2026-12-03T10:51:53.123456789Z"}`,
//!   escaped as docker's writer escapes (`<`, `>`, `&` as `\u003c`...,
//!   invalid UTF-8 as U+FFFD, so such bytes are lost as in docker).
//! - local: a 4-byte big-endian length N, N bytes of docker's protobuf
//!   `LogEntry` (`api/types/plugins/logdriver/entry.proto`), and N again,
//!   so the file can be walked backwards. The line is kept without its
//!   newline, a piece of a longer line marked `partial`; bytes are kept as
//!   they are.
//!
//! A record's data ends with a newline unless it is a partial piece, so the
//! two encodings carry the same records.

use std::io::{self, Read};

use shoal_proto::types::v1::{log_record::Stream, LogRecord};

use super::driver::Format;
use shoal_proto::rfc3339;

/// No frame is longer: a longer one means the file is damaged. (A json-file
/// line of a 16 KiB record escapes to at most 96 KiB.)
const MAX_FRAME_BYTES: usize = 1 << 20;

/// How much a [`RecordReader`] reads at a time.
const READ_CHUNK: usize = 64 * 1024;

/// docker's `LogEntry`.
#[derive(Clone, PartialEq, prost::Message)]
struct LocalEntry {
    #[prost(string, tag = "1")]
    source: String,
    #[prost(int64, tag = "2")]
    time_nano: i64,
    #[prost(bytes = "vec", tag = "3")]
    line: Vec<u8>,
    #[prost(bool, tag = "4")]
    partial: bool,
    /// Written by docker on each piece of a long line; shoal writes none.
    #[prost(message, optional, tag = "5")]
    partial_log_metadata: Option<PartialMetadata>,
}

/// docker's `PartialLogEntryMetadata`: `last` marks a long line's last piece.
#[derive(Clone, PartialEq, prost::Message)]
struct PartialMetadata {
    #[prost(bool, tag = "1")]
    last: bool,
}

/// docker's json-file entry (its `attrs` are ignored).
#[derive(serde::Deserialize)]
struct JsonEntry {
    log: String,
    stream: String,
    time: String,
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

fn stream_of(name: &str) -> Stream {
    if name == "stderr" {
        Stream::Stderr
    } else {
        Stream::Stdout
    }
}

/// Appends `record` to `out` as one frame of `format`.
pub fn encode(format: Format, record: &LogRecord, out: &mut Vec<u8>) {
    let stream = stream_name(record.stream());
    match format {
        Format::JsonFile => {
            out.extend_from_slice(br#"{"log":""#);
            escape_json(&record.data, out);
            out.extend_from_slice(br#"","stream":""#);
            out.extend_from_slice(stream.as_bytes());
            out.extend_from_slice(br#"","time":""#);
            out.extend_from_slice(rfc3339::format(record.time_ns).as_bytes());
            out.extend_from_slice(b"\"}\n");
        }
        Format::Local => {
            let (line, partial) = match record.data.strip_suffix(b"\n") {
                Some(line) => (line, false),
                None => (&record.data[..], true),
            };
            let entry = LocalEntry {
                source: stream.to_string(),
                time_nano: record.time_ns,
                line: line.to_vec(),
                partial,
                partial_log_metadata: None,
            };
            let body = prost::Message::encode_to_vec(&entry);
            // A record is at most 16 KiB, far below u32's range.
            let length = (body.len() as u32).to_be_bytes();
            out.extend_from_slice(&length);
            out.extend_from_slice(&body);
            out.extend_from_slice(&length);
        }
    }
}

/// `data` as the inside of a JSON string, as docker's json-file writes it.
fn escape_json(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        // Go's encoder: one U+FFFD per byte that is not UTF-8.
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// What the front of a buffer holds.
enum Frame {
    /// Not a whole frame yet.
    Incomplete,
    /// A frame of this many bytes: its record, or `None` when the frame is
    /// whole but unreadable (skipped).
    Whole(usize, Option<LogRecord>),
    /// Not a frame at all: the rest of the file cannot be read.
    Damaged,
}

fn frame(format: Format, buf: &[u8]) -> Frame {
    match format {
        Format::JsonFile => match buf.iter().position(|&b| b == b'\n') {
            Some(end) => Frame::Whole(end + 1, decode_json(&buf[..end])),
            None if buf.len() > MAX_FRAME_BYTES => Frame::Damaged,
            None => Frame::Incomplete,
        },
        Format::Local => {
            let Some(head) = buf.first_chunk::<4>() else {
                return Frame::Incomplete;
            };
            let length = u32::from_be_bytes(*head) as usize;
            if length > MAX_FRAME_BYTES {
                return Frame::Damaged;
            }
            let Some(whole) = buf.get(..length + 8) else {
                return Frame::Incomplete;
            };
            if whole[length + 4..] != head[..] {
                return Frame::Damaged;
            }
            Frame::Whole(length + 8, decode_local(&whole[4..length + 4]))
        }
    }
}

fn decode_json(line: &[u8]) -> Option<LogRecord> {
    let entry: JsonEntry = serde_json::from_slice(line).ok()?;
    Some(LogRecord {
        task_id: String::new(),
        time_ns: rfc3339::parse(&entry.time)?,
        stream: stream_of(&entry.stream) as i32,
        data: entry.log.into_bytes(),
    })
}

fn decode_local(bytes: &[u8]) -> Option<LogRecord> {
    let entry: LocalEntry = prost::Message::decode(bytes).ok()?;
    let last = entry.partial_log_metadata.is_some_and(|m| m.last);
    let mut data = entry.line;
    if !entry.partial || last {
        data.push(b'\n');
    }
    Some(LogRecord {
        task_id: String::new(),
        time_ns: entry.time_nano,
        stream: stream_of(&entry.source) as i32,
        data,
    })
}

/// The records of a log file, read as they come: at the end of what the
/// file holds now (perhaps in the middle of a record a writer is still
/// appending), [`RecordReader::next`] says so, and a later call reads on.
pub struct RecordReader<R> {
    inner: R,
    format: Format,
    /// Read and not yet decoded: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes of the whole frames decoded so far.
    consumed: u64,
}

impl<R: Read> RecordReader<R> {
    pub fn new(inner: R, format: Format) -> RecordReader<R> {
        RecordReader {
            inner,
            format,
            buf: Vec::new(),
            start: 0,
            consumed: 0,
        }
    }

    /// The next record, or `None` when the file holds no further whole one
    /// yet. Unreadable frames are skipped; `InvalidData` means the framing
    /// itself is broken and nothing further in the file can be read.
    pub fn next_record(&mut self) -> io::Result<Option<LogRecord>> {
        loop {
            match frame(self.format, &self.buf[self.start..]) {
                Frame::Whole(length, record) => {
                    self.start += length;
                    self.consumed += length as u64;
                    if record.is_some() {
                        return Ok(record);
                    }
                }
                Frame::Damaged => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("not a {} log record", self.format.driver_name()),
                    ))
                }
                Frame::Incomplete => {
                    if !self.fill()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The length of the whole frames read so far: where a damaged tail
    /// begins.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Reads more; false at the end of the file.
    fn fill(&mut self) -> io::Result<bool> {
        self.buf.drain(..self.start);
        self.start = 0;
        let held = self.buf.len();
        self.buf.resize(held + READ_CHUNK, 0);
        let read = loop {
            match self.inner.read(&mut self.buf[held..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.buf.truncate(held + *read.as_ref().unwrap_or(&0));
        Ok(read? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stream: Stream, data: &[u8], time_ns: i64) -> LogRecord {
        LogRecord {
            task_id: String::new(),
            time_ns,
            stream: stream as i32,
            data: data.to_vec(),
        }
    }

    fn round_trip(format: Format, records: &[LogRecord]) -> Vec<LogRecord> {
        let mut bytes = Vec::new();
        for r in records {
            encode(format, r, &mut bytes);
        }
        let mut reader = RecordReader::new(&bytes[..], format);
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            out.push(r);
        }
        assert_eq!(reader.consumed(), bytes.len() as u64);
        out
    }

    #[test]
    fn json_file_is_dockers_line() {
        let mut out = Vec::new();
        let t = rfc3339::parse("2026-12-03T10:51:53.123456789Z").unwrap();
        encode(
            Format::JsonFile,
            &record(Stream::Stdout, b"hello\n", t),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-03T10:51:53.123456789Z\"}\n"
        );
        let mut out = Vec::new();
        encode(
            Format::JsonFile,
            &record(Stream::Stderr, b"<a&b> \"q\" \\ \x01\t", 0),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"\\u003ca\\u0026b\\u003e \\\"q\\\" \\\\ \\u0001\\t\",\"stream\":\"stderr\",\"time\":\"1970-01-01T00:00:00Z\"}\n"
        );
    }

    #[test]
    fn both_formats_round_trip_lines_and_partial_pieces() {
        let records = [
            record(Stream::Stdout, b"hello\n", 1_700_000_000_000_000_001),
            record(
                Stream::Stderr,
                "é ☃ \u{2028}\n".as_bytes(),
                1_700_000_000_000_000_002,
            ),
            record(
                Stream::Stdout,
                b"a partial piece",
                1_700_000_000_000_000_003,
            ),
            record(Stream::Stdout, b"\n", 1_700_000_000_000_000_004),
        ];
        for format in [Format::JsonFile, Format::Local] {
            assert_eq!(round_trip(format, &records), records, "{format:?}");
        }
    }

    #[test]
    fn local_keeps_bytes_that_are_not_utf8() {
        let records = [record(Stream::Stderr, b"\xff\xfe bin\x00ary\n", 5)];
        assert_eq!(round_trip(Format::Local, &records), records);
        // json-file cannot: docker's replacement character.
        let json = round_trip(Format::JsonFile, &records);
        assert_eq!(json[0].data, "\u{fffd}\u{fffd} bin\u{0}ary\n".as_bytes());
    }

    #[test]
    fn a_record_being_written_is_read_once_it_is_whole() {
        for format in [Format::JsonFile, Format::Local] {
            let mut bytes = Vec::new();
            encode(format, &record(Stream::Stdout, b"one\n", 1), &mut bytes);
            encode(format, &record(Stream::Stdout, b"two\n", 2), &mut bytes);
            let cut = bytes.len() - 3;
            let source = std::io::Cursor::new(bytes[..cut].to_vec());
            let mut reader = RecordReader::new(source, format);
            assert_eq!(
                reader.next_record().unwrap().map(|r| r.data),
                Some(b"one\n".to_vec())
            );
            assert_eq!(reader.next_record().unwrap(), None);
            // The writer finishes the record.
            reader.inner.get_mut().extend_from_slice(&bytes[cut..]);
            assert_eq!(
                reader.next_record().unwrap().map(|r| r.data),
                Some(b"two\n".to_vec())
            );
        }
    }

    #[test]
    fn docker_local_pieces_with_metadata_are_read() {
        let entry = LocalEntry {
            source: "stdout".into(),
            time_nano: 7,
            line: b"end".to_vec(),
            partial: true,
            partial_log_metadata: Some(PartialMetadata { last: true }),
        };
        let body = prost::Message::encode_to_vec(&entry);
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let mut reader = RecordReader::new(&bytes[..], Format::Local);
        assert_eq!(
            reader.next_record().unwrap().map(|r| r.data),
            Some(b"end\n".to_vec())
        );
    }

    #[test]
    fn damage_is_skipped_or_reported() {
        let mut bytes = b"not json\n".to_vec();
        encode(
            Format::JsonFile,
            &record(Stream::Stdout, b"ok\n", 1),
            &mut bytes,
        );
        let mut reader = RecordReader::new(&bytes[..], Format::JsonFile);
        assert_eq!(
            reader.next_record().unwrap().map(|r| r.data),
            Some(b"ok\n".to_vec())
        );
        let mut reader = RecordReader::new(&[0u8, 0, 0, 2, 8, 1, 0, 0, 0, 3][..], Format::Local);
        assert_eq!(
            reader.next_record().err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
    }
}
