//! `dedupe`'s memory of seen ids, compiled: per command, the Python version spent most of its
//! time converting between str, bytes and int around two blake2b calls and probing `array`s one
//! boxed int at a time. Here a whole batch is hashed and looked up in one call.
//!
//! The ring keeps (id hash, content hash, event time), oldest at `head`; `slots` is an
//! open-addressing index over it (linear probing, at most half full, deletion by shifting back,
//! no tombstones): `slots[i]` is a ring position + 1, 0 a free slot. The hashes are the ones the
//! Python code computed (blake2b with an 8-byte digest, read big-endian), so snapshots taken
//! before this module resume with the same decisions.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// What `process` decided for each command.
pub(crate) const NEW: u8 = 0;
pub(crate) const DUPLICATE: u8 = 1;
pub(crate) const CONFLICT: u8 = 2;
/// Hashing failed (an id that is not valid UTF-8, a value that is not bytes): Python raises the
/// same error again to build the reject.
pub(crate) const FAILED: u8 = 3;

/// The content hash of ids restored from a snapshot that kept none: a repeat of one is a
/// duplicate whatever its bytes.
const UNKNOWN_CONTENT: u64 = 0;

/// The largest `max_keys` (`DedupeParams` caps it at ten million): ring positions + 1 fit in the
/// index's u32 slots.
const MAX_CAPACITY: usize = 1 << 30;

fn blake2b_64(data: &[u8]) -> u64 {
    let digest = blake2b_simd::Params::new().hash_length(8).hash(data);
    u64::from_be_bytes(digest.as_bytes().try_into().expect("an 8-byte digest"))
}

/// `operators.aggregates.stable_hash` of a str.
fn id_hash(key: &Bound<'_, PyAny>) -> Option<u64> {
    let key = key.cast::<PyString>().ok()?;
    Some(blake2b_64(key.to_str().ok()?.as_bytes()))
}

/// 64 bits of the record's bytes (None hashes as empty); never `UNKNOWN_CONTENT`.
fn content_hash(value: &Bound<'_, PyAny>) -> Option<u64> {
    let bytes: &[u8] = if value.is_none() {
        b""
    } else {
        value.cast::<PyBytes>().ok()?.as_bytes()
    };
    Some(blake2b_64(bytes).max(1))
}

fn words<const N: usize>(name: &str, data: &[u8]) -> PyResult<Vec<[u8; N]>> {
    if !data.len().is_multiple_of(N) {
        return Err(PyValueError::new_err(format!(
            "{name}: {} bytes is not a whole number of {N}-byte items",
            data.len()
        )));
    }
    Ok(data
        .chunks_exact(N)
        .map(|c| c.try_into().expect("a whole chunk"))
        .collect())
}

#[pyclass(module = "operators._native")]
pub(crate) struct SeenIds {
    hashes: Vec<u64>,
    contents: Vec<u64>,
    times: Vec<i64>,
    slots: Vec<u32>,
    mask: usize,
    head: usize,
    size: usize,
    /// the latest event time put so far (ttl counts back from it)
    #[pyo3(get, set)]
    newest: i64,
}

impl SeenIds {
    fn put_one(&mut self, h: u64, content: u64, ts: i64) -> Option<u64> {
        let mask = self.mask;
        let mut i = h as usize & mask;
        loop {
            let at = self.slots[i] as usize;
            if at == 0 {
                break;
            }
            if self.hashes[at - 1] == h {
                return Some(self.contents[at - 1]);
            }
            i = (i + 1) & mask;
        }
        let capacity = self.hashes.len();
        if self.size == capacity {
            self.drop_oldest();
            i = h as usize & mask; // the drop may have opened a slot earlier in the run
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
        }
        let at = (self.head + self.size) % capacity;
        self.hashes[at] = h;
        self.contents[at] = content;
        self.times[at] = ts;
        self.slots[i] = at as u32 + 1;
        self.size += 1;
        if ts > self.newest {
            self.newest = ts;
        }
        None
    }

    fn drop_oldest(&mut self) {
        let mask = self.mask;
        let at = self.head as u32 + 1;
        let mut i = self.hashes[self.head] as usize & mask;
        while self.slots[i] != at {
            i = (i + 1) & mask;
        }
        // Shift back every later member of the probe run whose home is not between the hole
        // and itself (cyclically): it could not be found past the hole.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let at = self.slots[j];
            if at == 0 {
                break;
            }
            let home = self.hashes[at as usize - 1] as usize & mask;
            let stays = if i < j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.slots[i] = at;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.head = (self.head + 1) % self.hashes.len();
        self.size -= 1;
    }

    fn expire_before(&mut self, horizon: i64) {
        while self.size > 0 && self.times[self.head] < horizon {
            self.drop_oldest();
        }
    }

    /// The ring's live items, oldest first, as the bytes of a native-endian array (what
    /// `array.tobytes()` gave: old snapshots and new ones are the same format).
    fn live<T: Copy, const N: usize>(
        &self,
        py: Python<'_>,
        ring: &[T],
        to_bytes: fn(T) -> [u8; N],
    ) -> PyResult<Py<PyBytes>> {
        let end = self.head + self.size;
        let (older, newer) = if end <= ring.len() {
            (&ring[self.head..end], &ring[..0])
        } else {
            (&ring[self.head..], &ring[..end - ring.len()])
        };
        PyBytes::new_with(py, self.size * N, |buf| {
            for (chunk, &item) in buf.chunks_exact_mut(N).zip(older.iter().chain(newer)) {
                chunk.copy_from_slice(&to_bytes(item));
            }
            Ok(())
        })
        .map(Bound::unbind)
    }
}

#[pymethods]
impl SeenIds {
    #[new]
    fn new(capacity: usize) -> PyResult<Self> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(PyValueError::new_err(format!(
                "capacity must be between 1 and {MAX_CAPACITY}, not {capacity}"
            )));
        }
        // at least twice the capacity, so the index is at most half full
        let width = (2 * capacity).next_power_of_two().max(8);
        Ok(SeenIds {
            hashes: vec![0; capacity],
            contents: vec![0; capacity],
            times: vec![0; capacity],
            slots: vec![0; width],
            mask: width - 1,
            head: 0,
            size: 0,
            newest: 0,
        })
    }

    fn __len__(&self) -> usize {
        self.size
    }

    /// Where the oldest id sits in the ring.
    #[getter]
    fn head(&self) -> usize {
        self.head
    }

    /// A copy of the ring's event times, in ring order (for inspection).
    #[getter]
    fn times(&self) -> Vec<i64> {
        self.times.clone()
    }

    /// The bytes the ring and the index hold, whatever their fill.
    #[getter]
    fn nbytes(&self) -> usize {
        self.hashes.len() * 24 + self.slots.len() * 4
    }

    /// How many index slots point into the ring (as many as live ids, unless the index broke).
    #[getter]
    fn occupied(&self) -> usize {
        self.slots.iter().filter(|&&s| s != 0).count()
    }

    /// The content hash kept with the id hash `h`; or, if `h` is new, None, and `h` is kept as
    /// the newest id (the oldest dropped if the ring is full).
    fn put(&mut self, h: u64, content: u64, ts: i64) -> Option<u64> {
        self.put_one(h, content, ts)
    }

    /// Forget ids older than `horizon`; insertion order is close to event-time order.
    fn expire(&mut self, horizon: i64) {
        self.expire_before(horizon);
    }

    /// `dedupe` over a batch: for each command (its id, or the `id@dlqN` key of a DLQ replay;
    /// its record's bytes; its event time) NEW, DUPLICATE, CONFLICT or FAILED, one byte each;
    /// then ids older than `ttl` before the newest are forgotten.
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        keys: Vec<Bound<'py, PyAny>>,
        values: Vec<Bound<'py, PyAny>>,
        times: Vec<i64>,
        ttl: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if keys.len() != values.len() || keys.len() != times.len() {
            return Err(PyValueError::new_err(
                "keys, values and times differ in length",
            ));
        }
        let mut codes = Vec::with_capacity(keys.len());
        for ((key, value), ts) in keys.iter().zip(&values).zip(times) {
            let (Some(h), Some(content)) = (id_hash(key), content_hash(value)) else {
                // the hashing error is Python's to raise again (nothing was changed here)
                codes.push(FAILED);
                continue;
            };
            codes.push(match self.put_one(h, content, ts) {
                None => NEW,
                Some(known) if known == content || known == UNKNOWN_CONTENT => DUPLICATE,
                Some(_) => CONFLICT,
            });
        }
        self.expire_before(self.newest.saturating_sub(ttl));
        Ok(PyBytes::new(py, &codes))
    }

    /// The live ids, oldest first: (id hashes, content hashes, event times) as packed arrays.
    fn snapshot(&self, py: Python<'_>) -> PyResult<(Py<PyBytes>, Py<PyBytes>, Py<PyBytes>)> {
        Ok((
            self.live(py, &self.hashes, u64::to_ne_bytes)?,
            self.live(py, &self.contents, u64::to_ne_bytes)?,
            self.live(py, &self.times, i64::to_ne_bytes)?,
        ))
    }

    /// Put back the ids of a snapshot, oldest first (the ring keeps the last `capacity`).
    fn load(&mut self, hashes: &[u8], contents: &[u8], times: &[u8]) -> PyResult<()> {
        let hashes = words::<8>("hashes", hashes)?;
        let contents = words::<8>("contents", contents)?;
        let times = words::<8>("times", times)?;
        if hashes.len() != contents.len() || hashes.len() != times.len() {
            return Err(PyValueError::new_err(
                "a snapshot's hashes, contents and times differ in length",
            ));
        }
        for ((h, c), ts) in hashes.into_iter().zip(contents).zip(times) {
            self.put_one(
                u64::from_ne_bytes(h),
                u64::from_ne_bytes(c),
                i64::from_ne_bytes(ts),
            );
        }
        Ok(())
    }
}
