//! A container's log as the node keeps it. `logs/<c>.log` holds what the container wrote, as it
//! wrote it (what `kubectl logs` shows); `logs/<c>.times` says when each piece of it arrived, for
//! `--timestamps` and `--since` (the kubelet's CRI log keeps a time on every line): 16-byte
//! records, the offset in the log where the piece starts (u64) and the Unix time in nanoseconds
//! (i64), little-endian. The shim writes both from the container's output pipe (the console's
//! relay for a terminal); nothing else writes them.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const RECORD: usize = 16;

/// The times file of the log at `log`.
pub fn times_path(log: &Path) -> PathBuf {
    log.with_extension("times")
}

/// The time now, in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Appends `data`, which arrived at `at` (Unix nanoseconds), to the log at `log` and its time to
/// its times file. Both are opened for each piece: the shim moves them aside when a run starts.
pub fn append(log: &Path, data: &[u8], at: i64) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut file = OpenOptions::new().create(true).append(true).open(log)?;
    let offset = file.metadata()?.len();
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&offset.to_le_bytes());
    record[8..].copy_from_slice(&at.to_le_bytes());
    // The time first: a reader that sees the piece can then always find its time.
    OpenOptions::new().create(true).append(true).open(times_path(log))?.write_all(&record)?;
    file.write_all(data)
}

/// The records in `bytes` (a times file, or what was added to one), in order; a torn record at
/// the end is left out.
pub fn parse_times(bytes: &[u8]) -> Vec<(u64, i64)> {
    bytes
        .chunks_exact(RECORD)
        .map(|r| (u64::from_le_bytes(r[..8].try_into().unwrap()), i64::from_le_bytes(r[8..].try_into().unwrap())))
        .collect()
}

/// Where the last `n` lines of `text` start (0 when it has no more than `n`).
pub fn tail_start(text: &[u8], n: usize) -> usize {
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    lines[..lines.len().saturating_sub(n)].iter().map(|l| l.len()).sum()
}

/// Turns pieces of a log into what `logs` sends: with `timestamps`, each line prefixed with the
/// time its first byte arrived (RFC 3339 with nanoseconds, as the kubelet prints it); with
/// `since`, the lines that arrived before it left out. Fed in order, piece by piece (a followed
/// log), it remembers whether a line is open.
pub struct Lines {
    timestamps: bool,
    since: Option<i64>,
    /// The times known, in order; only the last one before the next piece's start is needed.
    times: Vec<(u64, i64)>,
    /// A line's time when the log has none for it (a log written before times were kept).
    fallback: i64,
    at_line_start: bool,
    keeping: bool,
}

impl Lines {
    pub fn new(timestamps: bool, since: Option<i64>, fallback: i64) -> Lines {
        Lines { timestamps, since, times: Vec::new(), fallback, at_line_start: true, keeping: true }
    }

    /// Whether a piece needs the times at all.
    pub fn needs_times(&self) -> bool {
        self.timestamps || self.since.is_some()
    }

    /// Records read from the times file, in order.
    pub fn add_times(&mut self, records: &[(u64, i64)]) {
        self.times.extend_from_slice(records);
    }

    /// A new run's log: it starts over.
    pub fn restart(&mut self) {
        self.times.clear();
        self.at_line_start = true;
        self.keeping = true;
    }

    /// `data`, which starts at `start` in the log, as it is to be sent.
    pub fn feed(&mut self, start: u64, data: &[u8]) -> Vec<u8> {
        if !self.needs_times() {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len());
        let mut offset = start;
        for piece in data.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                let at = self.time_at(offset);
                self.keeping = self.since.is_none_or(|since| at >= since);
                if self.keeping && self.timestamps {
                    out.extend_from_slice(rfc3339_nanos(at).as_bytes());
                    out.push(b' ');
                }
            }
            if self.keeping {
                out.extend_from_slice(piece);
            }
            self.at_line_start = piece.ends_with(b"\n");
            offset += piece.len() as u64;
        }
        // Older times are no longer needed: keep the last one at or before the end.
        let before = self.times.partition_point(|(o, _)| *o <= offset);
        if before > 1 {
            self.times.drain(..before - 1);
        }
        out
    }

    fn time_at(&self, offset: u64) -> i64 {
        let i = self.times.partition_point(|(o, _)| *o <= offset);
        match i {
            0 => self.times.first().map_or(self.fallback, |t| t.1),
            i => self.times[i - 1].1,
        }
    }
}

/// Unix nanoseconds as Go's RFC3339Nano: UTC, `Z`, the fraction without trailing zeros.
pub fn rfc3339_nanos(nanos: i64) -> String {
    let (secs, frac) = (nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000));
    let whole = emu_api::time::rfc3339(secs);
    let Some(base) = whole.strip_suffix('Z') else { return whole };
    if frac == 0 {
        return whole;
    }
    let digits = format!("{frac:09}");
    format!("{base}.{}Z", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn pieces_and_their_times_are_kept_side_by_side() {
        let dir = std::env::temp_dir().join(format!("emu-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("c.log");
        append(&log, b"one\ntw", 5 * SECOND).unwrap();
        append(&log, b"o\n", 6 * SECOND).unwrap();
        append(&log, b"", 7 * SECOND).unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"one\ntwo\n");
        assert_eq!(parse_times(&std::fs::read(times_path(&log)).unwrap()), vec![(0, 5 * SECOND), (6, 6 * SECOND)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_has_the_time_of_its_first_byte_and_since_drops_older_lines() {
        let times = [(0, 5 * SECOND), (6, 6 * SECOND + 120_000_000), (8, 9 * SECOND)];
        let mut lines = Lines::new(true, None, 0);
        lines.add_times(&times);
        let text = b"one\ntwo\nthree\n";
        assert_eq!(
            String::from_utf8(lines.feed(0, text)).unwrap(),
            "1970-01-01T00:00:05Z one\n1970-01-01T00:00:05Z two\n1970-01-01T00:00:09Z three\n"
        );
        let mut since = Lines::new(false, Some(6 * SECOND), 0);
        since.add_times(&times);
        assert_eq!(since.feed(0, text), b"three\n");
        // Fed in pieces (a followed log), a line split between pieces is stamped once.
        let mut follow = Lines::new(true, None, 0);
        follow.add_times(&times[..2]);
        let first = follow.feed(0, b"one\ntw");
        follow.add_times(&times[2..]);
        let rest = follow.feed(6, b"o\nthree\n");
        assert_eq!(
            String::from_utf8([first, rest].concat()).unwrap(),
            "1970-01-01T00:00:05Z one\n1970-01-01T00:00:05Z two\n1970-01-01T00:00:09Z three\n"
        );
        // Without times asked for, the bytes pass as they are.
        assert_eq!(Lines::new(false, None, 0).feed(0, text), text);
    }

    #[test]
    fn times_print_as_gos_rfc3339_nano_and_tails_start_at_a_line() {
        assert_eq!(rfc3339_nanos(6 * SECOND + 120_000_000), "1970-01-01T00:00:06.12Z");
        assert_eq!(rfc3339_nanos(1_700_000_000 * SECOND + 1), "2023-11-14T22:13:20.000000001Z");
        assert_eq!(tail_start(b"a\nb\nc\n", 2), 2);
        assert_eq!(tail_start(b"a\nb\nc", 1), 4);
        assert_eq!(tail_start(b"a\n", 5), 0);
    }
}
