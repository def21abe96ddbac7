//! The project's compiled parts, one Python extension (`operators._native`, stable ABI 3.11+):
//! where a step's Python cost per command was the largest of the pipeline and the work is plain
//! bytes and integers.
//!
//! - `seen_ids`: dedupe's memory of seen ids (`SeenIds`).
//! - `records`: the source's reading of a fetched Kafka record batch (`read_batch`).

use pyo3::prelude::*;

mod records;
mod seen_ids;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<seen_ids::SeenIds>()?;
    m.add("NEW", seen_ids::NEW)?;
    m.add("DUPLICATE", seen_ids::DUPLICATE)?;
    m.add("CONFLICT", seen_ids::CONFLICT)?;
    m.add("FAILED", seen_ids::FAILED)?;
    m.add_function(wrap_pyfunction!(records::read_batch, m)?)?;
    Ok(())
}
