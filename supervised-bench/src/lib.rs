//! The benchmarks of `BENCHMARKS.md` live in `benches/`; this crate is not
//! published. It exists so that criterion, the peers compared against
//! (`task-supervisor`) and the helpers the benches need are not
//! dev-dependencies of the published `supervised` crate.
//!
//! ```text
//! cargo bench -p supervised-bench --bench heartbeat
//! cargo bench -p supervised-bench --bench scale
//! ```
