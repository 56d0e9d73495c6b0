//! The on-disk half of the embedding cache: an append-only file of (text key, vector) records
//! for one model, so a replay embeds each text once across runs.
//!
//! Format (all integers little-endian):
//!
//! ```text
//! header  "CTXWEMB1" | dim: u32 | model id length: u32 | model id (UTF-8) | checksum: u64
//! record  key: u128 | dim × f32 | checksum: u64
//! ```
//!
//! Each checksum is 64-bit FNV-1a of the bytes before it in its header or record. Opening the file
//! reads every record once and keeps only `key → offset` in memory; vectors are read on demand.
//! A damaged file is never an error: a bad header starts the file afresh, and a record that is cut
//! short or fails its checksum ends the file there (it is truncated to the last good record). The
//! caller learns which happened from [`DiskCacheStatus`].

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::fnv::{Checksum, checksum};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CTXWEMB1";
/// Longest model id the header may carry; a longer length field means a damaged header.
const MAX_MODEL_ID: usize = 4096;

/// What opening an on-disk embedding cache found. Anything but `Created` and `Loaded` means cached
/// vectors were dropped (they will be embedded again); the host may want to log it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a repaired or rebuilt cache file is a warning worth reporting"]
pub enum DiskCacheStatus {
    /// There was no file; a new one was written.
    Created,
    /// The file was read whole and intact.
    Loaded {
        /// Records found.
        records: usize,
    },
    /// The file ended in a record that was cut short or corrupted; it was truncated after the last
    /// good record.
    Repaired {
        /// Good records kept.
        kept: usize,
        /// Bytes cut off the end of the file.
        dropped_bytes: u64,
        /// What was wrong, with the byte offset.
        reason: String,
    },
    /// The header was unreadable, or was written for another model or dimension; the file was
    /// emptied and started afresh.
    Rebuilt {
        /// What was wrong.
        reason: String,
    },
}

/// An open cache file for one model.
#[derive(Debug)]
pub(crate) struct DiskCache {
    path: PathBuf,
    file: File,
    model_id: String,
    dim: usize,
    /// Byte offset of each record's vector.
    offsets: FxHashMap<u128, u64>,
    /// Where the next record goes.
    end: u64,
}

impl DiskCache {
    /// Opens (or creates) the cache file at `path` for `model_id` and `dim`, repairing or
    /// rebuilding it when damaged. Only I/O failures (e.g. a directory that cannot be written) are
    /// errors.
    pub(crate) fn open(path: &Path, model_id: &str, dim: usize) -> Result<(Self, DiskCacheStatus)> {
        if model_id.len() > MAX_MODEL_ID {
            return Err(Error::Embeddings(format!("model id is longer than {MAX_MODEL_ID} bytes")));
        }
        let io = |e| Error::io(path, e);
        let existed = path.exists();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let mut cache = DiskCache { path: path.to_path_buf(), file, model_id: model_id.to_owned(), dim, offsets: FxHashMap::default(), end: 0 };
        let file_len = cache.file.metadata().map_err(io)?.len();
        if !existed || file_len == 0 {
            cache.start_afresh()?;
            return Ok((cache, DiskCacheStatus::Created));
        }
        let header_len = match cache.read_header()? {
            Ok(len) => len,
            Err(reason) => {
                cache.start_afresh()?;
                return Ok((cache, DiskCacheStatus::Rebuilt { reason }));
            }
        };
        let status = cache.read_records(header_len, file_len)?;
        Ok((cache, status))
    }

    pub(crate) fn model_id(&self) -> &str {
        &self.model_id
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Number of distinct keys stored.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The vector stored under `key`. A record that no longer reads back (the file was changed
    /// under us) is treated as absent.
    pub(crate) fn get(&mut self, key: u128) -> Result<Option<Arc<[f32]>>> {
        let Some(&offset) = self.offsets.get(&key) else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; self.dim * 4];
        let read = self.file.seek(SeekFrom::Start(offset)).and_then(|_| self.file.read_exact(&mut bytes));
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                self.offsets.remove(&key);
                return Ok(None);
            }
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        let vector: Vec<f32> = bytes.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect();
        if vector.iter().any(|x| !x.is_finite()) {
            self.offsets.remove(&key);
            return Ok(None);
        }
        Ok(Some(vector.into()))
    }

    /// Appends records in one write. Every vector must have `dim` components (the caller checks).
    pub(crate) fn append(&mut self, records: &[(u128, &[f32])]) -> Result<()> {
        let record_len = self.record_len();
        let mut buf = Vec::with_capacity(records.len() * record_len);
        let mut new_offsets = Vec::with_capacity(records.len());
        for (i, (key, vector)) in records.iter().enumerate() {
            let start = buf.len();
            buf.extend_from_slice(&key.to_le_bytes());
            for x in *vector {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            let sum = checksum(&buf[start..]);
            buf.extend_from_slice(&sum.to_le_bytes());
            new_offsets.push((*key, self.end + (i * record_len) as u64 + 16));
        }
        let io = |e| Error::io(&self.path, e);
        self.file.seek(SeekFrom::Start(self.end)).map_err(io)?;
        self.file.write_all(&buf).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.end += buf.len() as u64;
        self.offsets.extend(new_offsets);
        Ok(())
    }

    fn record_len(&self) -> usize {
        16 + self.dim * 4 + 8
    }

    fn header_bytes(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(8 + 4 + 4 + self.model_id.len() + 8);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&(self.dim as u32).to_le_bytes());
        h.extend_from_slice(&(self.model_id.len() as u32).to_le_bytes());
        h.extend_from_slice(self.model_id.as_bytes());
        let sum = checksum(&h);
        h.extend_from_slice(&sum.to_le_bytes());
        h
    }

    /// Empties the file and writes a fresh header.
    fn start_afresh(&mut self) -> Result<()> {
        let header = self.header_bytes();
        let io = |e| Error::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(&header).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.offsets.clear();
        self.end = header.len() as u64;
        Ok(())
    }

    /// Reads and checks the header. The outer `Result` is I/O; the inner `Err` is why the header
    /// is unusable; `Ok(len)` is the header's length.
    fn read_header(&mut self) -> Result<std::result::Result<u64, String>> {
        let io = |e| Error::io(&self.path, e);
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut fixed = [0u8; 16];
        match read_full(&mut self.file, &mut fixed).map_err(io)? {
            16 => {}
            n => return Ok(Err(format!("header cut short at byte {n}"))),
        }
        if &fixed[..8] != MAGIC {
            return Ok(Err("not a ctxwin embedding cache (bad magic)".into()));
        }
        let [d0, d1, d2, d3, l0, l1, l2, l3] = [fixed[8], fixed[9], fixed[10], fixed[11], fixed[12], fixed[13], fixed[14], fixed[15]];
        let dim = u32::from_le_bytes([d0, d1, d2, d3]) as usize;
        let id_len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if id_len > MAX_MODEL_ID {
            return Ok(Err(format!("header claims a {id_len}-byte model id")));
        }
        let mut rest = vec![0u8; id_len + 8];
        match read_full(&mut self.file, &mut rest).map_err(io)? {
            n if n == rest.len() => {}
            n => return Ok(Err(format!("header cut short at byte {}", 16 + n))),
        }
        let (id_bytes, sum_bytes) = rest.split_at(id_len);
        let mut sum = Checksum::new();
        sum.update(&fixed);
        sum.update(id_bytes);
        let mut stored = [0u8; 8];
        stored.copy_from_slice(sum_bytes);
        if sum.value() != u64::from_le_bytes(stored) {
            return Ok(Err("header checksum mismatch".into()));
        }
        let Ok(id) = std::str::from_utf8(id_bytes) else {
            return Ok(Err("header model id is not UTF-8".into()));
        };
        if id != self.model_id || dim != self.dim {
            return Ok(Err(format!("file was written for model {id:?} (dim {dim}), not {:?} (dim {})", self.model_id, self.dim)));
        }
        Ok(Ok((16 + id_len + 8) as u64))
    }

    /// Scans the records after the header, indexing the good ones and truncating the file at the
    /// first bad one.
    fn read_records(&mut self, header_len: u64, file_len: u64) -> Result<DiskCacheStatus> {
        let io = |e| Error::io(&self.path, e);
        let record_len = self.record_len();
        let mut reader = BufReader::with_capacity(1 << 16, &self.file);
        let mut record = vec![0u8; record_len];
        let mut offset = header_len;
        let mut kept = 0usize;
        let mut problem = None;
        while offset < file_len {
            let n = read_full(&mut reader, &mut record).map_err(io)?;
            if n < record_len {
                problem = Some(format!("record at byte {offset} cut short ({n} of {record_len} bytes)"));
                break;
            }
            let body = record_len - 8;
            let mut stored = [0u8; 8];
            stored.copy_from_slice(&record[body..]);
            let vector_ok = record[16..body].as_chunks::<4>().0.iter().all(|b| f32::from_le_bytes(*b).is_finite());
            if checksum(&record[..body]) != u64::from_le_bytes(stored) || !vector_ok {
                problem = Some(format!("record at byte {offset} is corrupted (checksum mismatch)"));
                break;
            }
            let mut key = [0u8; 16];
            key.copy_from_slice(&record[..16]);
            self.offsets.insert(u128::from_le_bytes(key), offset + 16);
            kept += 1;
            offset += record_len as u64;
        }
        drop(reader);
        self.end = offset;
        match problem {
            None => Ok(DiskCacheStatus::Loaded { records: kept }),
            Some(reason) => {
                self.file.set_len(offset).map_err(io)?;
                Ok(DiskCacheStatus::Repaired { kept, dropped_bytes: file_len - offset, reason })
            }
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::test_support::{Scratch, TestResult};

    fn fill(path: &Path, n: u32) -> Result<()> {
        let (mut c, status) = DiskCache::open(path, "m", 3)?;
        assert_eq!(status, DiskCacheStatus::Created);
        let vs: Vec<[f32; 3]> = (0..n).map(|i| [i as f32, 1.0, -1.0]).collect();
        let recs: Vec<(u128, &[f32])> = vs.iter().enumerate().map(|(i, v)| (i as u128, &v[..])).collect();
        c.append(&recs)
    }

    #[test]
    fn round_trip() -> TestResult {
        let dir = Scratch::new("disk-round-trip")?;
        let path = dir.join("c.bin");
        fill(&path, 4)?;
        let (mut c, status) = DiskCache::open(&path, "m", 3)?;
        assert_eq!(status, DiskCacheStatus::Loaded { records: 4 });
        assert_eq!(c.get(2)?.as_deref(), Some(&[2.0, 1.0, -1.0][..]));
        assert_eq!(c.get(9)?, None);
        c.append(&[(9, &[0.5, 0.5, 0.5][..])])?;
        let (mut c, status) = DiskCache::open(&path, "m", 3)?;
        assert_eq!(status, DiskCacheStatus::Loaded { records: 5 });
        assert_eq!(c.get(9)?.as_deref(), Some(&[0.5, 0.5, 0.5][..]));
        Ok(())
    }

    #[test]
    fn truncated_tail_is_repaired() -> TestResult {
        let dir = Scratch::new("disk-truncated")?;
        let path = dir.join("c.bin");
        fill(&path, 4)?;
        let len = std::fs::metadata(&path)?.len();
        OpenOptions::new().write(true).open(&path)?.set_len(len - 5)?;
        let (mut c, status) = DiskCache::open(&path, "m", 3)?;
        let record_len = 16 + 3 * 4 + 8;
        assert_eq!(
            status,
            DiskCacheStatus::Repaired {
                kept: 3,
                dropped_bytes: record_len - 5,
                reason: format!("record at byte {} cut short ({} of {record_len} bytes)", 25 + 3 * record_len, record_len - 5),
            }
        );
        assert_eq!(c.get(3)?, None);
        assert_eq!(c.get(2)?.as_deref(), Some(&[2.0, 1.0, -1.0][..]));
        // Appending after a repair lands on a record boundary.
        c.append(&[(7, &[7.0, 7.0, 7.0][..])])?;
        let (mut c, status) = DiskCache::open(&path, "m", 3)?;
        assert_eq!(status, DiskCacheStatus::Loaded { records: 4 });
        assert_eq!(c.get(7)?.as_deref(), Some(&[7.0, 7.0, 7.0][..]));
        Ok(())
    }

    #[test]
    fn flipped_byte_in_a_record_is_repaired() -> TestResult {
        let dir = Scratch::new("disk-flipped")?;
        let path = dir.join("c.bin");
        fill(&path, 4)?;
        let mut bytes = std::fs::read(&path)?;
        let header_len = 8 + 4 + 4 + 1 + 8;
        bytes[header_len + 36 + 20] ^= 0x40; // inside record 1's vector
        std::fs::write(&path, &bytes)?;
        let (_c, status) = DiskCache::open(&path, "m", 3)?;
        assert!(matches!(status, DiskCacheStatus::Repaired { kept: 1, dropped_bytes: 108, .. }), "{status:?}");
        assert_eq!(std::fs::metadata(&path)?.len(), (header_len + 36) as u64);
        Ok(())
    }

    #[test]
    fn garbage_or_other_model_is_rebuilt() -> TestResult {
        let dir = Scratch::new("disk-rebuilt")?;
        let path = dir.join("c.bin");
        std::fs::write(&path, b"this is not a cache file at all")?;
        let (mut c, status) = DiskCache::open(&path, "m", 3)?;
        assert_eq!(status, DiskCacheStatus::Rebuilt { reason: "not a ctxwin embedding cache (bad magic)".into() });
        c.append(&[(1, &[1.0, 2.0, 3.0][..])])?;
        drop(c);
        let (_c, status) = DiskCache::open(&path, "other", 3)?;
        assert_eq!(status, DiskCacheStatus::Rebuilt { reason: "file was written for model \"m\" (dim 3), not \"other\" (dim 3)".into() });
        let (_c, status) = DiskCache::open(&path, "other", 3)?;
        assert_eq!(status, DiskCacheStatus::Loaded { records: 0 });
        let (_c, status) = DiskCache::open(&path, "other", 4)?;
        assert!(matches!(status, DiskCacheStatus::Rebuilt { .. }), "{status:?}");
        // A header cut inside the model id.
        let bytes = std::fs::read(&path)?;
        std::fs::write(&path, &bytes[..18])?;
        let (_c, status) = DiskCache::open(&path, "other", 4)?;
        assert_eq!(status, DiskCacheStatus::Rebuilt { reason: "header cut short at byte 18".into() });
        Ok(())
    }
}
