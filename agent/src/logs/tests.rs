//! The writer and the reader together, on temporary directories.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use shoal_proto::types::v1::{log_record::Stream, LogOptions, LogRecord};
use tokio::sync::mpsc;

use super::driver::{Format, LogConfig};
use super::writer::{copy_lines, LogWriter};
use super::{files, read, LogReadError, CLOSED_MARKER, MAX_RECORD_BYTES};

/// Only a guard against a hang: every wait here ends long before.
const GUARD: Duration = Duration::from_secs(10);

fn config(format: Format, max_size: u64, max_file: u32, compress: bool) -> LogConfig {
    LogConfig {
        format,
        max_size,
        max_file,
        compress,
    }
}

fn open(dir: &Path, config: LogConfig) -> LogWriter {
    LogWriter::open(dir, config).unwrap_or_else(|e| panic!("open: {e}"))
}

/// Appends `out <i>` to stdout and `err <i>` to stderr for each i.
fn write_lines(writer: &mut LogWriter, numbers: std::ops::Range<u32>) {
    for i in numbers {
        writer
            .append(Stream::Stdout, format!("out {i}\n").as_bytes())
            .unwrap();
        writer
            .append(Stream::Stderr, format!("err {i}\n").as_bytes())
            .unwrap();
        writer.flush().unwrap();
    }
}

fn options(tail: i64, since_ns: i64, follow: bool) -> LogOptions {
    LogOptions {
        follow,
        tail,
        since_ns,
    }
}

/// Everything a non-following read sends.
async fn read_all(dir: &Path, options: LogOptions) -> Vec<LogRecord> {
    let (tx, mut rx) = mpsc::channel(16);
    let reading = read(dir, "task1", &options, tx);
    let collecting = async {
        let mut records = Vec::new();
        while let Some(record) = rx.recv().await {
            records.push(record);
        }
        records
    };
    let (read, records) = tokio::time::timeout(GUARD, async { tokio::join!(reading, collecting) })
        .await
        .unwrap_or_else(|_| panic!("reading {} hung", dir.display()));
    read.unwrap_or_else(|e| panic!("read: {e}"));
    records
}

fn texts(records: &[LogRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).trim_end().to_string())
        .collect()
}

fn numbered(prefix: &str, numbers: impl Iterator<Item = u32>) -> Vec<String> {
    numbers.map(|i| format!("{prefix} {i}")).collect()
}

/// The log files of `dir` and their total size.
fn log_files(dir: &Path) -> (Vec<String>, u64) {
    let mut names = Vec::new();
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name != CLOSED_MARKER {
            total += entry.metadata().unwrap().len();
            names.push(name);
        }
    }
    names.sort();
    (names, total)
}

#[tokio::test]
async fn rotation_keeps_max_file_files_of_about_max_size() {
    for format in [Format::JsonFile, Format::Local] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(dir.path(), config(format, 1024, 3, false));
        write_lines(&mut writer, 0..500);
        writer.finish().unwrap();
        let (names, total) = log_files(dir.path());
        let base = files::file_name(format);
        assert_eq!(
            names,
            [base.to_string(), format!("{base}.1"), format!("{base}.2")]
        );
        assert!(total <= 3 * 1024, "{format:?}: {total} bytes");
        assert!(total > 2 * 1024, "{format:?}: {total} bytes");
        for name in &names {
            let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(size <= 1024, "{name}: {size}");
        }
        // What is kept is the end, in order, each line on its stream.
        let records = read_all(dir.path(), options(-1, 0, false)).await;
        let last = texts(&records[records.len() - 2..]);
        assert_eq!(last, ["out 499", "err 499"]);
        for record in &records {
            let stream = if record.data.starts_with(b"out") {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            assert_eq!(record.stream(), stream);
            assert_eq!(record.task_id, "task1");
        }
        let times: Vec<i64> = records.iter().map(|r| r.time_ns).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "times increase");
        assert!(dir.path().join(CLOSED_MARKER).exists());
    }
}

#[tokio::test]
async fn compressed_rotated_files_are_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = open(dir.path(), config(Format::Local, 512, 4, true));
    write_lines(&mut writer, 0..300);
    writer.finish().unwrap();
    let (names, _) = log_files(dir.path());
    assert_eq!(
        names,
        [
            "local.log",
            "local.log.1.gz",
            "local.log.2.gz",
            "local.log.3.gz"
        ]
    );
    let records = read_all(dir.path(), options(-1, 0, false)).await;
    let outs: Vec<String> = texts(&records)
        .into_iter()
        .filter(|t| t.starts_with("out"))
        .collect();
    let first: u32 = outs[0][4..].parse().unwrap();
    assert!(first > 0, "the oldest lines were rotated out");
    assert_eq!(outs, numbered("out", first..300), "no gap across the files");
}

#[tokio::test]
async fn tail_counts_back_across_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = open(dir.path(), config(Format::JsonFile, 600, 5, true));
    write_lines(&mut writer, 0..100);
    writer.finish().unwrap();
    // A tail longer than the current file holds.
    let current = std::fs::read_to_string(dir.path().join("json.log")).unwrap();
    let in_current = current.lines().count();
    let tail = in_current as i64 + 7;
    let records = read_all(dir.path(), options(tail, 0, false)).await;
    assert_eq!(records.len() as i64, tail);
    assert_eq!(texts(&records[records.len() - 1..]), ["err 99"]);
    let all = read_all(dir.path(), options(-1, 0, false)).await;
    assert_eq!(records, all[all.len() - tail as usize..]);
    assert!(read_all(dir.path(), options(0, 0, false)).await.is_empty());
}

#[tokio::test]
async fn since_keeps_the_records_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = open(dir.path(), config(Format::Local, 1 << 20, 2, false));
    write_lines(&mut writer, 0..10);
    writer.finish().unwrap();
    let all = read_all(dir.path(), options(-1, 0, false)).await;
    let since = all[6].time_ns;
    let records = read_all(dir.path(), options(-1, since, false)).await;
    assert_eq!(records, all[6..]);
    let records = read_all(dir.path(), options(2, since, false)).await;
    assert_eq!(records, all[all.len() - 2..]);
}

#[tokio::test]
async fn a_missing_directory_has_no_logs_and_an_empty_one_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let missing = read(&dir.path().join("gone"), "t", &options(-1, 0, true), tx).await;
    assert!(matches!(missing, Err(LogReadError::NoLogs)), "{missing:?}");
    assert!(read_all(dir.path(), options(-1, 0, false)).await.is_empty());
}

/// Receives records until their texts are `wanted`.
async fn expect(rx: &mut mpsc::Receiver<LogRecord>, wanted: &[String]) {
    let mut got = Vec::new();
    while got.len() < wanted.len() {
        let record = tokio::time::timeout(GUARD, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("waited for {wanted:?}, got {got:?}"));
        let Some(record) = record else {
            panic!("the reader ended; wanted {wanted:?}, got {got:?}");
        };
        got.extend(texts(&[record]));
    }
    assert_eq!(got, wanted);
}

#[tokio::test]
async fn follow_reads_on_across_rotations_until_the_logger_closes() {
    for (format, compress) in [(Format::JsonFile, false), (Format::Local, true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(dir.path(), config(format, 400, 3, compress));
        writer.append(Stream::Stdout, b"before\n").unwrap();
        writer.flush().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let path = dir.path().to_path_buf();
        let reader =
            tokio::spawn(async move { read(&path, "task1", &options(-1, 0, true), tx).await });
        expect(&mut rx, &["before".to_string()]).await;

        // Appended later: one line, then enough for several rotations
        // while the reader waits on a full channel.
        writer.append(Stream::Stderr, b"later\n").unwrap();
        writer.flush().unwrap();
        expect(&mut rx, &["later".to_string()]).await;
        for i in 0..12 {
            writer
                .append(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
            writer.flush().unwrap();
        }
        expect(&mut rx, &numbered("line", 0..12)).await;
        assert!(
            dir.path()
                .join(format!("{}.1", files::file_name(format)))
                .exists()
                || dir
                    .path()
                    .join(format!("{}.1.gz", files::file_name(format)))
                    .exists()
        );
        assert!(!reader.is_finished(), "following until the logger closes");

        writer.append(Stream::Stdout, b"last\n").unwrap();
        writer.finish().unwrap();
        expect(&mut rx, &["last".to_string()]).await;
        let ended = tokio::time::timeout(GUARD, reader)
            .await
            .unwrap_or_else(|_| panic!("{format:?}: the reader did not end at the marker"));
        ended.unwrap().unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(rx.recv().await, None);
    }
}

#[tokio::test]
async fn a_follower_that_lags_several_rotations_misses_nothing_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = open(dir.path(), config(Format::JsonFile, 300, 100, false));
    writer.append(Stream::Stdout, b"start\n").unwrap();
    writer.flush().unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let path = dir.path().to_path_buf();
    let reader = tokio::spawn(async move { read(&path, "t", &options(-1, 0, true), tx).await });
    expect(&mut rx, &["start".to_string()]).await;
    // The channel holds one record: the reader blocks while the writer
    // rotates many times under it.
    for i in 0..40 {
        writer
            .append(Stream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
        writer.flush().unwrap();
    }
    writer.finish().unwrap();
    assert!(dir.path().join("json.log.9").exists(), "rotated many times");
    expect(&mut rx, &numbered("line", 0..40)).await;
    tokio::time::timeout(GUARD, reader)
        .await
        .unwrap_or_else(|_| panic!("the reader did not end"))
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_follower_ends_when_the_directory_goes_or_its_receiver_does() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let mut writer = open(&logs, LogConfig::default());
    write_lines(&mut writer, 0..2);
    let (tx, mut rx) = mpsc::channel(8);
    let path = logs.clone();
    let reader = tokio::spawn(async move { read(&path, "t", &options(-1, 0, true), tx).await });
    expect(
        &mut rx,
        &["out 0", "err 0", "out 1", "err 1"].map(String::from),
    )
    .await;
    std::fs::remove_dir_all(&logs).unwrap();
    tokio::time::timeout(GUARD, reader)
        .await
        .unwrap_or_else(|_| panic!("the reader outlived its directory"))
        .unwrap()
        .unwrap();

    let mut writer = open(&logs, LogConfig::default());
    write_lines(&mut writer, 0..1);
    let (tx, rx) = mpsc::channel(8);
    let path = logs.clone();
    let reader = tokio::spawn(async move { read(&path, "t", &options(-1, 0, true), tx).await });
    drop(rx);
    tokio::time::timeout(GUARD, reader)
        .await
        .unwrap_or_else(|_| panic!("the reader outlived its receiver"))
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn streams_are_cut_into_lines_and_16_kib_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Mutex::new(open(dir.path(), LogConfig::default()));
    let long = vec![b'x'; MAX_RECORD_BYTES * 2 + 10];
    let mut input = b"one\ntwo\n".to_vec();
    input.extend_from_slice(&long);
    input.extend_from_slice(b"\nno newline at the end");
    copy_lines(&input[..], Stream::Stderr, &writer);
    writer.into_inner().unwrap().finish().unwrap();
    let records = read_all(dir.path(), options(-1, 0, false)).await;
    let sizes: Vec<usize> = records.iter().map(|r| r.data.len()).collect();
    assert_eq!(sizes, [4, 4, MAX_RECORD_BYTES, MAX_RECORD_BYTES, 11, 21]);
    assert_eq!(records[4].data, b"xxxxxxxxxx\n");
    assert_eq!(records[5].data, b"no newline at the end");
    assert!(records.iter().all(|r| r.stream() == Stream::Stderr));
}

#[tokio::test]
async fn a_record_cut_short_by_a_killed_logger_is_dropped_on_reopen() {
    for format in [Format::JsonFile, Format::Local] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(dir.path(), config(format, 1 << 20, 2, false));
        write_lines(&mut writer, 0..2);
        drop(writer);
        let path = files::current(dir.path(), format);
        let size = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(size - 3).unwrap();
        let mut writer = open(dir.path(), config(format, 1 << 20, 2, false));
        writer.append(Stream::Stdout, b"again\n").unwrap();
        writer.finish().unwrap();
        let records = read_all(dir.path(), options(-1, 0, false)).await;
        assert_eq!(
            texts(&records),
            ["out 0", "err 0", "out 1", "again"],
            "{format:?}"
        );
    }
}
