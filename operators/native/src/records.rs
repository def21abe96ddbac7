//! The records section of a Kafka record batch (message format v2), read in one call: the
//! source's consumer spent ~6 µs a record in kafka-python's pure-Python record reading
//! (a varint at a time, a record object, a consumer record object, then the source's own
//! record). Here a whole batch becomes the source's `LogRecord`s with no Python per record.
//!
//! Only the records section is read here; the batch's header (CRC, transactions, control
//! batches, compression) stays with the Python caller. The reading is strict: anything not a
//! well-formed section (a varint past 64 bits or past the end, a length past the end, a record
//! whose length field disagrees with its fields, a negative header count or header key length,
//! a header key that is not UTF-8, an offset or time that overflows, bytes left over) gives
//! `None`, and the caller reads the batch again with kafka-python, which raises its own error
//! for it (or accepts it: then its reading stands).
//!
//! A record (KIP-98): length, attributes, timestamp delta, offset delta (varlongs), key and
//! value (varint length, -1 for null, then bytes), a header count, then each header's key
//! (length and UTF-8 bytes) and value (length, -1 for null, then bytes). Varints are zigzag
//! encoded, little-endian groups of seven bits.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// A span of the section: start and end byte positions.
type Span = (usize, usize);

struct Record {
    offset: i64,
    timestamp: i64,
    key: Option<Span>,
    value: Option<Span>,
    headers: Vec<(Span, Option<Span>)>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// A zigzag varint of at most ten bytes whose value fits 64 bits.
    fn varint(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.data.get(self.pos)?;
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            raw |= bits << shift;
            if byte & 0x80 == 0 {
                return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        None
    }

    /// `len` bytes from here (None for a negative length when `nullable`).
    fn span(&mut self, len: i64) -> Option<Span> {
        let len = usize::try_from(len).ok()?;
        let end = self.pos.checked_add(len)?;
        if end > self.data.len() {
            return None;
        }
        let span = (self.pos, end);
        self.pos = end;
        Some(span)
    }

    /// A nullable field: `Some(None)` for null, `None` when malformed.
    fn nullable(&mut self) -> Option<Option<Span>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        self.span(len).map(Some)
    }

    fn record(
        &mut self,
        base_offset: i64,
        first_ts: i64,
        append_ts: Option<i64>,
    ) -> Option<Record> {
        let length = self.varint()?;
        let start = self.pos;
        self.varint()?; // attributes: none defined for records
        let ts_delta = self.varint()?;
        let offset = base_offset.checked_add(self.varint()?)?;
        let timestamp = match append_ts {
            Some(ts) => ts,
            None => first_ts.checked_add(ts_delta)?,
        };
        let key = self.nullable()?;
        let value = self.nullable()?;
        let count = self.varint()?;
        if count < 0 {
            return None;
        }
        let mut headers = Vec::new();
        for _ in 0..count {
            let name_len = self.varint()?;
            if name_len < 0 {
                return None;
            }
            let name = self.span(name_len)?;
            std::str::from_utf8(&self.data[name.0..name.1]).ok()?;
            headers.push((name, self.nullable()?));
        }
        if i64::try_from(self.pos - start).ok()? != length {
            return None;
        }
        Some(Record {
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

fn bytes_or_none<'py>(py: Python<'py>, data: &[u8], span: Option<Span>) -> Bound<'py, PyAny> {
    match span {
        Some((a, b)) => PyBytes::new(py, &data[a..b]).into_any(),
        None => py.None().into_bound(py),
    }
}

/// The records of a batch's (decompressed) records section `data`, each built as
/// `build(partition, offset, timestamp, key, value, headers)`, leaving out the leading ones
/// whose offset is below `skip_below` (a fetch from the middle of a batch), and the offset of
/// the batch's last record (None for no record); None when `data` is not `count` well-formed
/// records and nothing else. `append_time` is the batch's time
/// when the log stamps records (LogAppendTime), else each record's time is `first_timestamp`
/// plus its delta (CreateTime).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (build, data, partition, base_offset, first_timestamp, append_time, count, skip_below))]
pub fn read_batch<'py>(
    py: Python<'py>,
    build: &Bound<'py, PyAny>,
    data: &[u8],
    partition: &Bound<'py, PyAny>,
    base_offset: i64,
    first_timestamp: i64,
    append_time: Option<i64>,
    count: i32,
    skip_below: i64,
) -> PyResult<Option<(Bound<'py, PyList>, Option<i64>)>> {
    let mut reader = Reader { data, pos: 0 };
    // a record takes at least 7 bytes: a count the bytes cannot hold reserves no more
    let mut records = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(data.len() / 7));
    for _ in 0..count.max(0) {
        match reader.record(base_offset, first_timestamp, append_time) {
            Some(record) => records.push(record),
            None => return Ok(None),
        }
    }
    if reader.pos != data.len() {
        return Ok(None);
    }
    let first = records
        .iter()
        .position(|r| r.offset >= skip_below)
        .unwrap_or(records.len());
    let out = PyList::empty(py);
    for r in &records[first..] {
        let headers = PyList::empty(py);
        for &(name, value) in &r.headers {
            // checked as UTF-8 while reading
            let name = std::str::from_utf8(&data[name.0..name.1]).unwrap_or_default();
            let pair = PyTuple::new(
                py,
                [
                    PyString::new(py, name).into_any(),
                    bytes_or_none(py, data, value),
                ],
            )?;
            headers.append(pair)?;
        }
        let args = (
            partition,
            r.offset,
            r.timestamp,
            bytes_or_none(py, data, r.key),
            bytes_or_none(py, data, r.value),
            headers,
        );
        out.append(build.call1(args)?)?;
    }
    Ok(Some((out, records.last().map(|r| r.offset))))
}
