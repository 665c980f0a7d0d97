//! Append-only segment files: where message bodies live, and the write-ahead log itself.
//!
//! Every stored message is appended, as one checksummed record, to the *active* segment;
//! the writer thread appends a whole batch with one `write` and one `fdatasync` before it
//! answers anyone, so **a record is durable before its 201**. redb then only holds a small
//! index (address → expiry and record location), committed without its own fsync; after a
//! crash the records written since redb's last durable commit are re-applied from the
//! segments (see `store`). A segment is never appended to after a restart (a new one is
//! started), so a torn tail can only be the last, unacknowledged batch of a segment.
//!
//! **Deleting** (`DELETE /v1/m/{address}`) appends a *tombstone* naming the address and
//! holding the SHA-256 digest of the deleted body (never the body), and *wipes* the deleted
//! record: its body and checksum are overwritten with zeros and flushed, so the ciphertext is
//! gone from the file; its head (segment id, length, address, expiry) stays, so scans still
//! find the next record. A record that does not verify is never a message: a scan steps over
//! it by the length in its head (a wiped record, or a torn one) and stops only where no record
//! head follows (zeros, the end of the file, or bytes of another segment). The tombstone keeps
//! the deleted message's expiry: the address's index entry then points at it, with length 0,
//! and marks the address *spent* until that expiry (a tombstone is never wiped). A PUT there
//! compares its body's digest with the tombstone's (see `writer`); a put-back of the same bytes
//! appends them again as an ordinary record with that expiry. It also lets a recovery
//! redo a delete whose index commit was not durable yet (see `store`).
//!
//! Segments are named `{id:016x}.seg` in `DIR/segments/`. A segment is closed when it
//! reaches [`SEGMENT_BYTES`] (or when it holds expired messages at purge time) and deleted
//! once every message in it has expired and been purged from the index.
//!
//! Record layout (little-endian): `segment id (u64) ‖ body_len (u32) ‖ address (32) ‖
//! expires_ms (u64) ‖ body ‖ checksum (u64)` of everything before the checksum. A message has
//! `body_len` between 1 and 64 MiB. A tombstone has the expiry of the message it deleted and
//! one of two forms:
//! - `body_len` = [`DIGEST_TOMBSTONE`] (bit 31) | 32, and the 32-byte SHA-256 of the deleted
//!   body as its body. Bit 31 is never set in a message's `body_len` (that would be over
//!   2 GiB), so no record written before digests existed can be mistaken for one, and the
//!   low bits still give the bytes to step over.
//! - `body_len` 0 and no body: the form written before digests were recorded (and still when
//!   the deleted body could not be read back). Segments holding it keep loading; its address
//!   is spent for any body, as it always was.
//!
//! A binary from before digests stops a scan at the first digest tombstone (its head does not
//! parse there), so going back to one after deletes is not supported.
//!
//! A wiped record has zeros from its body to the end of its checksum.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::disk::Disk;

/// Size of a segment file, zero-filled before it is used (see [`ActiveSegment`]). A segment
/// is closed when less than a sixteenth of it is left (a last batch may run past the end:
/// the file then simply grows).
#[cfg(not(test))]
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Pause after each zero-filled MiB of a segment prepared in the background.
const PACE: Duration = Duration::from_millis(2);
/// Size of a segment file (small in unit tests).
#[cfg(test)]
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// The first segment after a start is prepared on the start's path, so it is smaller.
const FIRST_SEGMENT_BYTES: u64 = if SEGMENT_BYTES < 4 << 20 {
    SEGMENT_BYTES
} else {
    4 << 20
};

/// Bytes before the body: segment id, body length, address, expiry.
pub const RECORD_HEAD: usize = 8 + 4 + 32 + 8;
/// Bytes of a record besides its body.
pub const RECORD_FIXED: usize = RECORD_HEAD + 8;
/// Largest body a record may claim (larger claims are treated as garbage by scans).
const MAX_RECORD_BODY: u32 = 64 << 20;
/// Flag in a record's `body_len`: a tombstone whose body is the deleted message's digest.
pub const DIGEST_TOMBSTONE: u32 = 1 << 31;

/// SHA-256 of a deleted message's body, as its tombstone records it.
pub type Digest = [u8; 32];

/// The SHA-256 digest of `body`.
pub fn digest(body: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(body).into()
}

/// Where a stored body is: segment, record offset in it, body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment id.
    pub segment: u64,
    /// Offset of the record (not the body) in the segment.
    pub offset: u64,
    /// Body length in bytes.
    pub len: u32,
}

/// One message, or one tombstone, as recorded in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Message address.
    pub address: [u8; 32],
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// The bytes between head and checksum: the message body; for a tombstone the deleted
    /// body's [`Digest`], or nothing (a tombstone written before digests).
    pub body: Vec<u8>,
    /// Whether this record is a tombstone.
    pub tombstone: bool,
}

impl Record {
    /// Whether this record is a tombstone: the message at its address was deleted here.
    pub fn is_tombstone(&self) -> bool {
        self.tombstone
    }
}

/// Open segment files by id, shared by the writer (which adds and removes them) and readers.
pub type Files = Arc<RwLock<HashMap<u64, Arc<File>>>>;

/// Checksum of a record: a word-at-a-time multiply–xorshift hash. It only has to catch torn
/// and stale bytes, not adversaries (records are written by this process only).
pub fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ (bytes.len() as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
        h ^= h >> 29;
    }
    let mut tail = [0u8; 8];
    let rest = words.remainder();
    if let Some(t) = tail.get_mut(..rest.len()) {
        t.copy_from_slice(rest);
    }
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 32;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 29)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.checked_add(8)?)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

/// The parsed head of a record: (body length in bytes, address, expiry), if it belongs to
/// `segment`. See [`is_tombstone`] for what kind of record it is.
fn parse_head(head: &[u8], segment: u64) -> Option<(u32, [u8; 32], u64)> {
    if u64_at(head, 0)? != segment {
        return None;
    }
    let field = u32_at(head, 8)?;
    let len = if field & DIGEST_TOMBSTONE != 0 {
        // The only flagged length is a digest's.
        (field == DIGEST_TOMBSTONE | DIGEST_LEN).then_some(DIGEST_LEN)?
    } else {
        field
    };
    if len > MAX_RECORD_BODY {
        return None;
    }
    let address = <[u8; 32]>::try_from(head.get(12..44)?).ok()?;
    Some((len, address, u64_at(head, 44)?))
}

/// Length of a [`Digest`], as a record's `body_len` holds it.
const DIGEST_LEN: u32 = 32;

/// Whether the record with this (parsed) head is a tombstone: flagged, or of length 0.
fn is_tombstone(head: &[u8]) -> bool {
    u32_at(head, 8).is_some_and(|field| field == 0 || field & DIGEST_TOMBSTONE != 0)
}

/// Path of segment `id` in `dir`.
pub fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

/// Ids of the segment files in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if stem.len() == 16
            && let Ok(id) = u64::from_str_radix(stem, 16)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Opens segment `id` for reading and writing.
pub fn open(dir: &Path, id: u64) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path_of(dir, id))
}

/// Creates segment file `id`, fills it with `len` zero bytes and makes it and its directory
/// entry durable. Overwriting blocks that already exist needs no file-system metadata
/// update, so each later `fdatasync` of a batch is one data write instead of a data write
/// plus an inode update (measured here: flushes ~40% shorter). Zeros never parse as a
/// record (segment ids start at 1), so scans stop where the records end.
///
/// `pace` (used off the writer's path) flushes each MiB and pauses after it, so that the
/// zeros reach the device in small steps between the writer's own flushes instead of as one
/// burst that would delay them.
///
/// The zeros only go into space above the `disk` reserve: without that room the file is
/// created empty (appends then grow it). On any failure the file is removed again, so a
/// failed attempt (a full disk) leaves nothing behind; returns the file and its zero-filled
/// length.
fn prepare(
    dir: &Path,
    id: u64,
    len: u64,
    pace: Option<Duration>,
    disk: Option<&Disk>,
) -> io::Result<(File, u64)> {
    let len = if disk.is_none_or(|d| d.has_room_for(len)) {
        len
    } else {
        0
    };
    let path = path_of(dir, id);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    match fill(&file, dir, len, pace) {
        Ok(()) => Ok((file, len)),
        Err(err) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            let _ = sync_dir(dir);
            Err(err)
        }
    }
}

fn fill(file: &File, dir: &Path, len: u64, pace: Option<Duration>) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64);
        file.write_all_at(zeros.get(..n as usize).unwrap_or_default(), at)?;
        at += n;
        if let Some(pause) = pace {
            file.sync_data()?;
            std::thread::sleep(pause);
        }
    }
    file.sync_all()?;
    sync_dir(dir)
}

/// The next segment, being prepared by a helper thread off the writer's path.
struct Spare {
    id: u64,
    thread: std::thread::JoinHandle<io::Result<(File, u64)>>,
}

impl Spare {
    fn spawn(dir: &Path, id: u64, disk: &Disk) -> Option<Self> {
        let dir = dir.to_path_buf();
        let disk = disk.clone();
        std::thread::Builder::new()
            .name("mailbox-segment".into())
            .spawn(move || prepare(&dir, id, SEGMENT_BYTES, Some(PACE), Some(&disk)))
            .ok()
            .map(|thread| Self { id, thread })
    }

    fn is_ready(&self) -> bool {
        self.thread.is_finished()
    }

    /// The prepared file; if preparing failed, a plain empty file (appends still work).
    fn take(self, dir: &Path) -> io::Result<(u64, File, u64)> {
        match self.thread.join() {
            Ok(Ok((file, len))) => Ok((self.id, file, len)),
            _ => {
                let (file, _) = prepare(dir, self.id, 0, None, None)?;
                Ok((self.id, file, 0))
            }
        }
    }
}

/// Makes the directory's entries (created or removed segment files) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Every record of segment `id` from `from` that verifies (messages and tombstones), in
/// order, with its offset. A record whose head is whole but which does not verify (wiped by
/// a delete, or torn) is stepped over; the scan ends at the end of the file or where no
/// record head follows (zeros, a torn head, bytes of another segment).
pub fn scan(file: &File, id: u64, from: u64) -> io::Result<Vec<(u64, Record)>> {
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    std::io::Seek::seek(&mut reader, io::SeekFrom::Start(from))?;
    let mut records = Vec::new();
    let mut at = from;
    let mut head = [0u8; RECORD_HEAD];
    while at.saturating_add(RECORD_FIXED as u64) <= len {
        reader.read_exact(&mut head)?;
        let Some((body_len, address, expires_ms)) = parse_head(&head, id) else {
            break;
        };
        let total = RECORD_FIXED as u64 + u64::from(body_len);
        if at.saturating_add(total) > len {
            break;
        }
        let mut rest = vec![0u8; body_len as usize + 8];
        reader.read_exact(&mut rest)?;
        let (body, sum) = rest.split_at(body_len as usize);
        if verifies(&head, body, sum) {
            records.push((
                at,
                Record {
                    address,
                    expires_ms,
                    body: body.to_vec(),
                    tombstone: is_tombstone(&head),
                },
            ));
        }
        at += total;
    }
    Ok(records)
}

/// Whether `sum` is the checksum of the record `head ‖ body`.
fn verifies(head: &[u8], body: &[u8], sum: &[u8]) -> bool {
    let mut summed = Vec::with_capacity(head.len() + body.len());
    summed.extend_from_slice(head);
    summed.extend_from_slice(body);
    u64_at(sum, 0) == Some(checksum(&summed))
}

/// Record heads found by [`scan_heads`] (location, address), and where the next one starts.
pub type Heads = (Vec<(Location, [u8; 32])>, Option<u64>);

/// Heads of the records of segment `id` from `from`, at most `limit`, as
/// (location, address); and the offset after the last one, or None at the segment's end.
/// Used by purge, which only compares locations with the index, so it needs no checksum.
/// A tombstone's location has length 0, as the spent index entry pointing at it has.
pub fn scan_heads(file: &File, id: u64, from: u64, limit: usize) -> io::Result<Heads> {
    let len = file.metadata()?.len();
    let mut out = Vec::new();
    let mut at = from;
    let mut head = [0u8; RECORD_HEAD];
    while out.len() < limit {
        if at.saturating_add(RECORD_FIXED as u64) > len {
            return Ok((out, None));
        }
        file.read_exact_at(&mut head, at)?;
        let Some((body_len, address, _)) = parse_head(&head, id) else {
            return Ok((out, None));
        };
        out.push((
            Location {
                segment: id,
                offset: at,
                len: if is_tombstone(&head) { 0 } else { body_len },
            },
            address,
        ));
        at = at.saturating_add(RECORD_FIXED as u64 + u64::from(body_len));
    }
    Ok((out, Some(at)))
}

/// Reads the body at `location`, checking that the record there is `address`'s.
/// `Ok(None)` if the segment is gone (it was purged: the message expired) or the record no
/// longer verifies (a delete wiped it, possibly while this read was under way).
pub fn read_body(
    files: &Files,
    location: Location,
    address: &[u8; 32],
) -> io::Result<Option<Vec<u8>>> {
    read_body_in(files, None, location, address)
}

fn read_body_in(
    files: &Files,
    staged: Option<&ActiveSegment>,
    location: Location,
    address: &[u8; 32],
) -> io::Result<Option<Vec<u8>>> {
    let mut record = vec![0u8; RECORD_FIXED + location.len as usize];
    if !read_at(
        files,
        staged,
        location.segment,
        location.offset,
        &mut record,
    )? {
        return Ok(None);
    }
    let (head, rest) = record.split_at(RECORD_HEAD);
    let (body, sum) = rest.split_at(location.len as usize);
    match parse_head(head, location.segment) {
        Some((len, found, _))
            if len == location.len && found == *address && !is_tombstone(head) =>
        {
            Ok(verifies(head, body, sum).then(|| body.to_vec()))
        }
        _ => Err(disagree()),
    }
}

/// The digest recorded by the tombstone at `location` (where a spent index entry points),
/// checking that it is `address`'s. `Ok(None)` if it records none (written before digests
/// were), or no longer verifies, or its segment is gone: the address then counts as spent
/// for any body. (The writer reads through [`ActiveSegment::tombstone_digest`].)
#[cfg(test)]
pub fn tombstone_digest(
    files: &Files,
    location: Location,
    address: &[u8; 32],
) -> io::Result<Option<Digest>> {
    tombstone_digest_in(files, None, location, address)
}

fn tombstone_digest_in(
    files: &Files,
    staged: Option<&ActiveSegment>,
    location: Location,
    address: &[u8; 32],
) -> io::Result<Option<Digest>> {
    let mut head = [0u8; RECORD_HEAD];
    if !read_at(files, staged, location.segment, location.offset, &mut head)? {
        return Ok(None);
    }
    match parse_head(&head, location.segment) {
        Some((len, found, _)) if found == *address && is_tombstone(&head) => {
            let mut rest = vec![0u8; len as usize + 8];
            let at = location.offset.saturating_add(RECORD_HEAD as u64);
            if !read_at(files, staged, location.segment, at, &mut rest)? {
                return Ok(None);
            }
            let (body, sum) = rest.split_at(len as usize);
            Ok(verifies(&head, body, sum)
                .then(|| Digest::try_from(body).ok())
                .flatten())
        }
        _ => Err(disagree()),
    }
}

fn disagree() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "index and segment disagree")
}

/// Fills `buf` from `offset` in segment `segment`: from the records `staged` in the active
/// segment and not flushed yet if it is there, else from the segment's file. `Ok(false)` if
/// the segment is gone (purged).
fn read_at(
    files: &Files,
    staged: Option<&ActiveSegment>,
    segment: u64,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<bool> {
    if let Some(active) = staged.filter(|a| a.id == segment)
        && let Some(start) = offset.checked_sub(active.offset)
    {
        let bytes = usize::try_from(start)
            .ok()
            .and_then(|start| active.buffer.get(start..start.checked_add(buf.len())?))
            .ok_or_else(disagree)?;
        buf.copy_from_slice(bytes);
        return Ok(true);
    }
    let Some(file) = file_of(files, segment) else {
        return Ok(false);
    };
    file.read_exact_at(buf, offset)?;
    Ok(true)
}

fn file_of(files: &Files, segment: u64) -> Option<Arc<File>> {
    files
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&segment)
        .cloned()
}

/// Wipes the flushed record at `location`: overwrites its body and checksum with zeros (not
/// yet flushed: the caller `fdatasync`s the returned file before it acknowledges the delete).
/// The head stays, so scans step over the record. `Ok(None)` if the segment is gone.
pub fn wipe(files: &Files, location: Location) -> io::Result<Option<Arc<File>>> {
    let Some(file) = file_of(files, location.segment) else {
        return Ok(None);
    };
    let zeros = vec![0u8; location.len as usize + 8];
    file.write_all_at(&zeros, location.offset.saturating_add(RECORD_HEAD as u64))?;
    Ok(Some(file))
}

/// The active segment: records are staged in memory, then appended and flushed together.
pub struct ActiveSegment {
    dir: PathBuf,
    files: Files,
    id: u64,
    file: Arc<File>,
    /// Where the next flushed record goes (everything before it is durable).
    offset: u64,
    buffer: Vec<u8>,
    /// Earliest and latest expiry of the records in this segment, if any.
    expiry: Option<(u64, u64)>,
    /// Zero-filled length of the file.
    capacity: u64,
    /// The segment that follows this one, prepared in the background.
    spare: Option<Spare>,
    /// Where zero-filling may go.
    disk: Disk,
    /// A flush failed: what follows `offset` in the file is unknown, so nothing more is
    /// appended here; the next batch starts a new segment.
    broken: bool,
}

impl ActiveSegment {
    /// Creates segment `id` (empty, zero-filled if `disk` has room above its reserve) in
    /// `dir`, makes it and its directory entry durable, registers it in `files`, and starts
    /// preparing the next one. On failure nothing is left behind.
    pub fn create(dir: &Path, id: u64, files: Files, disk: Disk) -> io::Result<Self> {
        let (file, capacity) = prepare(dir, id, FIRST_SEGMENT_BYTES, None, Some(&disk))?;
        Ok(Self::start(dir, id, file, capacity, files, disk))
    }

    fn start(dir: &Path, id: u64, file: File, capacity: u64, files: Files, disk: Disk) -> Self {
        let file = Arc::new(file);
        files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&file));
        Self {
            dir: dir.to_path_buf(),
            files,
            id,
            file,
            offset: 0,
            buffer: Vec::new(),
            expiry: None,
            capacity,
            spare: Spare::spawn(dir, id + 1, &disk),
            disk,
            broken: false,
        }
    }

    /// This segment's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Durable length of this segment (where the next flush writes).
    #[cfg(test)]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Earliest and latest expiry among the records staged or flushed here.
    pub fn expiry(&self) -> Option<(u64, u64)> {
        self.expiry
    }

    /// Where the end of the staged records will be once flushed.
    pub fn end(&self) -> u64 {
        self.offset + self.buffer.len() as u64
    }

    /// Whether the segment is full and the next batch should start a new one.
    pub fn is_full(&self) -> bool {
        if self.broken {
            return true;
        }
        let limit = if self.capacity > 0 {
            self.capacity
        } else {
            SEGMENT_BYTES
        };
        self.offset.saturating_add(limit / 16) >= limit
    }

    /// Stages one message record; it becomes durable with the next [`ActiveSegment::flush`].
    pub fn stage(
        &mut self,
        address: &[u8; 32],
        expires_ms: u64,
        body: &[u8],
    ) -> io::Result<Location> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&n| n <= MAX_RECORD_BODY)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        Ok(self.append(address, expires_ms, len, body))
    }

    /// Stages a record whose `body_len` field is `field`; returns where it goes, with the
    /// body's length.
    fn append(&mut self, address: &[u8; 32], expires_ms: u64, field: u32, body: &[u8]) -> Location {
        let start = self.buffer.len();
        let location = Location {
            segment: self.id,
            offset: self.offset + start as u64,
            len: u32::try_from(body.len()).unwrap_or(u32::MAX),
        };
        self.buffer.extend_from_slice(&self.id.to_le_bytes());
        self.buffer.extend_from_slice(&field.to_le_bytes());
        self.buffer.extend_from_slice(address);
        self.buffer.extend_from_slice(&expires_ms.to_le_bytes());
        self.buffer.extend_from_slice(body);
        let sum = checksum(self.buffer.get(start..).unwrap_or_default());
        self.buffer.extend_from_slice(&sum.to_le_bytes());
        self.expiry = Some(match self.expiry {
            Some((lo, hi)) => (lo.min(expires_ms), hi.max(expires_ms)),
            None => (expires_ms, expires_ms),
        });
        location
    }

    /// Stages a tombstone for `address`, whose message (expiring at `expires_ms`, its body's
    /// digest `deleted`) is deleted; returns where it goes (length 0: what the address's
    /// spent index entry points at). Without a digest it is a tombstone of the form written
    /// before digests (the address is then spent for any body).
    pub fn stage_tombstone(
        &mut self,
        address: &[u8; 32],
        expires_ms: u64,
        deleted: Option<&Digest>,
    ) -> Location {
        let at = match deleted {
            Some(digest) => self.append(address, expires_ms, DIGEST_TOMBSTONE | DIGEST_LEN, digest),
            None => self.append(address, expires_ms, 0, &[]),
        };
        Location { len: 0, ..at }
    }

    /// The body of the message record at `location` (staged here or flushed), as
    /// [`read_body`] reads it.
    pub fn read_body(&self, location: Location, address: &[u8; 32]) -> io::Result<Option<Vec<u8>>> {
        read_body_in(&self.files, Some(self), location, address)
    }

    /// The digest of the tombstone at `location` (staged here or flushed), as
    /// [`tombstone_digest`] reads it.
    pub fn tombstone_digest(
        &self,
        location: Location,
        address: &[u8; 32],
    ) -> io::Result<Option<Digest>> {
        tombstone_digest_in(&self.files, Some(self), location, address)
    }

    /// Wipes the record at `at` if it is staged here and not flushed yet (a message stored
    /// and deleted in the same batch): its body and checksum become zeros before they ever
    /// reach the file. Returns whether it was staged here.
    pub fn wipe_staged(&mut self, at: Location) -> bool {
        if at.segment != self.id {
            return false;
        }
        let Some(start) = at
            .offset
            .checked_sub(self.offset)
            .and_then(|s| usize::try_from(s).ok())
        else {
            return false;
        };
        let from = start.saturating_add(RECORD_HEAD);
        let to = from.saturating_add(at.len as usize + 8);
        match self.buffer.get_mut(from..to) {
            Some(bytes) => {
                bytes.fill(0);
                true
            }
            None => false,
        }
    }

    /// Appends the staged records and `fdatasync`s the segment. Returns only once they are
    /// durable; on error nothing staged may be acknowledged (the caller fails the batch) and
    /// the segment is closed to appends (part of the batch may be in the file: the next
    /// batch goes to a new segment, as after a restart, so those bytes stay a torn tail that
    /// no index entry points into).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = if self.broken {
            Err(io::Error::other("segment closed after a failed flush"))
        } else {
            self.file
                .write_all_at(&self.buffer, self.offset)
                .and_then(|()| self.file.sync_data())
        };
        match result {
            Ok(()) => self.offset += self.buffer.len() as u64,
            Err(_) => self.broken = true,
        }
        self.buffer.clear();
        result
    }

    /// Whether a flush failed here (the next batch must start a new segment).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Withdraws the record staged last, at `at` (its write was refused after all).
    pub fn unstage(&mut self, at: Location) {
        if at.segment == self.id
            && let Some(start) = at.offset.checked_sub(self.offset)
        {
            self.buffer
                .truncate(usize::try_from(start).unwrap_or(usize::MAX));
        }
    }

    /// Drops the staged records (their batch failed before the flush).
    pub fn discard(&mut self) {
        self.buffer.clear();
    }

    /// Closes this segment and starts segment `id + 1`; returns the closed segment's id.
    /// Does nothing (None) while records are staged (they belong to this segment's next
    /// flush) or while the next segment is still being prepared.
    pub fn roll(&mut self) -> io::Result<Option<u64>> {
        if !self.buffer.is_empty() {
            return Ok(None);
        }
        // Until the next segment is ready, keep appending here (slower flushes, no stall),
        // up to twice the usual size. A broken segment takes no more appends: roll now.
        if !self.broken
            && self.spare.as_ref().is_some_and(|spare| !spare.is_ready())
            && self.offset < 2 * SEGMENT_BYTES
        {
            return Ok(None);
        }
        let (id, file, capacity) = match self.spare.take() {
            Some(spare) => spare.take(&self.dir)?,
            None => {
                let (file, _) = prepare(&self.dir, self.id + 1, 0, None, None)?;
                (self.id + 1, file, 0)
            }
        };
        let closed = self.id;
        let disk = self.disk.clone();
        *self = Self::start(&self.dir, id, file, capacity, Arc::clone(&self.files), disk);
        Ok(Some(closed))
    }
}

/// Writes segment `id` in `dir` holding `records`, encoded as the writer encodes them (a
/// tombstone whose body is not a digest is written in the form from before digests), without
/// preparing a next segment: a data folder's segments as a test wants them.
#[cfg(test)]
pub fn write_for_test(dir: &Path, id: u64, records: &[Record]) -> io::Result<()> {
    let (file, capacity) = prepare(dir, id, 0, None, None)?;
    let mut segment = ActiveSegment {
        dir: dir.to_path_buf(),
        files: Files::default(),
        id,
        file: Arc::new(file),
        offset: 0,
        buffer: Vec::new(),
        expiry: None,
        capacity,
        spare: None,
        disk: Disk::new(dir, 0, Arc::new(|_: &Path| Ok(u64::MAX))),
        broken: false,
    };
    for record in records {
        if record.tombstone {
            let digest = Digest::try_from(record.body.as_slice()).ok();
            segment.stage_tombstone(&record.address, record.expires_ms, digest.as_ref());
        } else {
            segment.stage(&record.address, record.expires_ms, &record.body)?;
        }
    }
    segment.flush()
}

/// Forgets segment `id` and deletes its file (every message in it has been purged from a
/// durably committed index, so nothing points into it any more).
pub fn remove(dir: &Path, files: &Files, id: u64) -> io::Result<()> {
    files
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    match std::fs::remove_file(path_of(dir, id)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roomy(dir: &Path) -> Disk {
        Disk::new(dir, 0, Arc::new(|_: &Path| Ok(u64::MAX)))
    }

    fn temp_dir(name: &str) -> io::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("hush-seg-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    #[test]
    fn flushed_records_scan_back_and_a_torn_tail_is_ignored() -> io::Result<()> {
        let dir = temp_dir("torn")?;
        let files = Files::default();
        let mut seg = ActiveSegment::create(&dir, 7, Arc::clone(&files), roomy(&dir))?;
        let a = seg.stage(&[1; 32], 10, b"alpha")?;
        let b = seg.stage(&[2; 32], 20, b"beta")?;
        // A refused write is withdrawn before the flush and never reaches the file.
        let refused = seg.stage(&[4; 32], 20, b"refused")?;
        seg.unstage(refused);
        assert_eq!(seg.end(), refused.offset);
        seg.flush()?;
        assert_eq!(seg.expiry(), Some((10, 20)));
        assert_eq!(read_body(&files, b, &[2; 32])?, Some(b"beta".to_vec()));
        assert!(
            read_body(&files, b, &[3; 32]).is_err(),
            "wrong address is detected"
        );

        // A third record, torn: its last bytes never reached the disk.
        let c = seg.stage(&[3; 32], 30, &[9; 100])?;
        seg.flush()?;
        let file = open(&dir, 7)?;
        file.set_len(c.offset + RECORD_FIXED as u64 + 50)?;
        let records = scan(&file, 7, 0)?;
        assert_eq!(records.len(), 2);
        assert_eq!(records.first().map(|r| r.0), Some(a.offset));
        assert_eq!(
            records.get(1).map(|r| r.1.clone()),
            Some(Record {
                address: [2; 32],
                expires_ms: 20,
                body: b"beta".to_vec(),
                tombstone: false,
            })
        );
        // A flipped byte inside a complete record: it is no message, and is stepped over.
        file.set_len(c.offset + RECORD_FIXED as u64 + 100)?;
        file.write_all_at(&[0xff], c.offset + RECORD_HEAD as u64 + 3)?;
        assert_eq!(scan(&file, 7, 0)?.len(), 2);
        // Scanning from an offset starts there; the heads scan walks every record.
        assert_eq!(scan(&file, 7, b.offset)?.len(), 1);
        let (heads, end) = scan_heads(&file, 7, 0, 10)?;
        assert_eq!(heads.len(), 3);
        assert_eq!(end, None);
        let (heads, next) = scan_heads(&file, 7, 0, 1)?;
        assert_eq!(heads, vec![(a, [1; 32])]);
        assert_eq!(next, Some(b.offset));
        // Records of another segment id (a stale file under the wrong name) never match.
        assert!(scan(&file, 8, 0)?.is_empty());

        // Rolling waits (returns None, keeps the segment) until the next one is prepared.
        let mut closed = seg.roll()?;
        for _ in 0..500 {
            if closed.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            closed = seg.roll()?;
        }
        assert_eq!((closed, seg.id(), seg.offset()), (Some(7), 8, 0));
        // The next segment was prepared (zero-filled) in the background; zeros hold no record.
        assert!(list(&dir)?.starts_with(&[7, 8]));
        let next = open(&dir, 8)?;
        assert_eq!(next.metadata()?.len(), SEGMENT_BYTES);
        assert!(scan(&next, 8, 0)?.is_empty());
        assert!(!seg.is_full());
        remove(&dir, &files, 7)?;
        assert!(!list(&dir)?.contains(&7));
        assert_eq!(
            read_body(&files, a, &[1; 32])?,
            None,
            "a removed segment reads as gone"
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn wiped_records_read_as_gone_and_scans_step_over_them() -> io::Result<()> {
        let dir = temp_dir("wipe")?;
        let files = Files::default();
        let mut seg = ActiveSegment::create(&dir, 5, Arc::clone(&files), roomy(&dir))?;
        let a = seg.stage(&[1; 32], 10, &[0xa1; 300])?;
        let b = seg.stage(&[2; 32], 20, b"beta")?;
        seg.flush()?;
        // Stored and deleted in one batch: wiped in memory, never written.
        let c = seg.stage(&[3; 32], 30, &[0xc3; 200])?;
        assert!(seg.wipe_staged(c));
        assert!(!seg.wipe_staged(a), "a flushed record is wiped in the file");
        seg.stage_tombstone(&[3; 32], 30, None);
        let d = seg.stage(&[4; 32], 40, b"delta")?;
        seg.flush()?;
        let file = wipe(&files, a)?.ok_or_else(|| io::Error::other("segment missing"))?;
        file.sync_data()?;

        let mut bytes = vec![0u8; RECORD_FIXED + 300];
        file.read_exact_at(&mut bytes, a.offset)?;
        let (head, rest) = bytes.split_at(RECORD_HEAD);
        assert!(rest.iter().all(|&b| b == 0), "body and checksum are zeros");
        assert_eq!(
            parse_head(head, 5),
            Some((300, [1; 32], 10)),
            "the head stays"
        );
        assert_eq!(read_body(&files, a, &[1; 32])?, None);
        assert_eq!(read_body(&files, c, &[3; 32])?, None);
        assert_eq!(read_body(&files, d, &[4; 32])?, Some(b"delta".to_vec()));
        let found: Vec<_> = scan(&file, 5, 0)?
            .into_iter()
            .map(|(at, r)| (at, r.address, r.is_tombstone()))
            .collect();
        assert_eq!(
            found,
            vec![
                (b.offset, [2; 32], false),
                (c.offset + RECORD_FIXED as u64 + 200, [3; 32], true),
                (d.offset, [4; 32], false),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn tombstones_hold_a_flagged_digest_and_those_from_before_digests_still_scan() -> io::Result<()>
    {
        let dir = temp_dir("tombstone-forms")?;
        let files = Files::default();
        let mut seg = ActiveSegment::create(&dir, 6, Arc::clone(&files), roomy(&dir))?;
        let m = seg.stage(&[1; 32], 10, b"message")?;
        let deleted = digest(b"message");
        let new = seg.stage_tombstone(&[1; 32], 10, Some(&deleted));
        // Read back from the staged records before the flush, as the writer does.
        assert_eq!(seg.tombstone_digest(new, &[1; 32])?, Some(deleted));
        assert_eq!(seg.read_body(m, &[1; 32])?, Some(b"message".to_vec()));
        let old = seg.stage_tombstone(&[2; 32], 20, None);
        let after = seg.stage(&[3; 32], 30, &[0x33; 32])?;
        seg.flush()?;
        assert_eq!(
            (new.len, old.len),
            (0, 0),
            "spent entries point at them with length 0"
        );

        // On disk: the digest tombstone's body_len is bit 31 | 32, then the digest; the old
        // form is body_len 0 and no body, exactly as written before digests.
        let file = open(&dir, 6)?;
        let mut head = [0u8; RECORD_HEAD];
        file.read_exact_at(&mut head, new.offset)?;
        assert_eq!(u32_at(&head, 8), Some(0x8000_0020));
        let mut body = [0u8; 32];
        file.read_exact_at(&mut body, new.offset + RECORD_HEAD as u64)?;
        assert_eq!(body, deleted);
        let mut old_bytes = vec![0u8; RECORD_FIXED];
        file.read_exact_at(&mut old_bytes, old.offset)?;
        let mut expected = 6u64.to_le_bytes().to_vec();
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&[2; 32]);
        expected.extend_from_slice(&20u64.to_le_bytes());
        let sum = checksum(&expected);
        expected.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(old_bytes, expected);
        assert_eq!(old.offset, new.offset + RECORD_FIXED as u64 + 32);

        // Scans tell both from messages (a 32-byte message stays a message) and step on.
        let found: Vec<_> = scan(&file, 6, 0)?
            .into_iter()
            .map(|(at, r)| (at, r.address, r.is_tombstone(), r.body.len()))
            .collect();
        assert_eq!(
            found,
            vec![
                (m.offset, [1; 32], false, 7),
                (new.offset, [1; 32], true, 32),
                (old.offset, [2; 32], true, 0),
                (after.offset, [3; 32], false, 32),
            ]
        );
        let (heads, _) = scan_heads(&file, 6, 0, 10)?;
        assert_eq!(
            heads,
            vec![
                (m, [1; 32]),
                (new, [1; 32]),
                (old, [2; 32]),
                (after, [3; 32])
            ]
        );
        assert_eq!(tombstone_digest(&files, new, &[1; 32])?, Some(deleted));
        assert_eq!(tombstone_digest(&files, old, &[2; 32])?, None);
        assert!(
            tombstone_digest(&files, new, &[2; 32]).is_err(),
            "another address's"
        );
        assert!(
            tombstone_digest(&files, after, &[3; 32]).is_err(),
            "a message"
        );
        assert!(read_body(&files, Location { len: 32, ..new }, &[1; 32]).is_err());
        // A flagged length other than a digest's is no record head.
        file.write_all_at(&(DIGEST_TOMBSTONE | 33).to_le_bytes(), old.offset + 8)?;
        assert_eq!(scan(&file, 6, 0)?.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_failed_flush_closes_the_segment_and_the_next_batch_starts_a_new_one() -> io::Result<()> {
        let dir = temp_dir("failed-flush")?;
        let files = Files::default();
        let mut seg = ActiveSegment::create(&dir, 3, Arc::clone(&files), roomy(&dir))?;
        let kept = seg.stage(&[1; 32], 10, b"kept")?;
        seg.flush()?;
        // A device that is full: every write fails with ENOSPC.
        let healthy = std::mem::replace(
            &mut seg.file,
            Arc::new(OpenOptions::new().write(true).open("/dev/full")?),
        );
        seg.stage(&[2; 32], 10, b"lost")?;
        assert!(seg.flush().is_err());
        assert!(seg.is_broken() && seg.is_full());
        seg.file = healthy;
        seg.stage(&[3; 32], 10, b"refused")?;
        assert!(seg.flush().is_err(), "no append after a failed flush");
        // The next batch rolls at once (without waiting for the spare) and works.
        assert_eq!(seg.roll()?, Some(3));
        let fresh = seg.stage(&[4; 32], 10, b"fresh")?;
        seg.flush()?;
        assert_eq!(fresh.segment, 4);
        assert_eq!(read_body(&files, fresh, &[4; 32])?, Some(b"fresh".to_vec()));
        assert_eq!(read_body(&files, kept, &[1; 32])?, Some(b"kept".to_vec()));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn zero_fill_only_goes_into_space_above_the_reserve_and_failures_leave_no_file()
    -> io::Result<()> {
        let dir = temp_dir("reserve")?;
        let tight = Disk::new(&dir, 1 << 30, Arc::new(|_: &Path| Ok(1 << 20)));
        let (file, len) = prepare(&dir, 1, 4 << 20, None, Some(&tight))?;
        assert_eq!(
            (len, file.metadata()?.len()),
            (0, 0),
            "no room: created empty"
        );
        assert!(prepare(&dir, 1, 0, None, None).is_err(), "exists already");
        assert!(list(&dir)?.contains(&1));
        let spare = Spare::spawn(&dir, 2, &tight).map(|s| s.take(&dir));
        assert_eq!(
            spare.map(|r| r.map(|(id, _, len)| (id, len)).ok()),
            Some(Some((2, 0)))
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn checksum_depends_on_every_byte_and_the_length() {
        let base = vec![7u8; 37];
        let sum = checksum(&base);
        for i in 0..base.len() {
            let mut changed = base.clone();
            if let Some(b) = changed.get_mut(i) {
                *b ^= 1;
            }
            assert_ne!(checksum(&changed), sum, "byte {i}");
        }
        assert_ne!(checksum(base.get(..36).unwrap_or_default()), sum);
        assert_ne!(checksum(&[0; 8]), checksum(&[0; 16]));
    }
}
