//! The macro's own tests, apart from the production modules:
//! - `snapshots.rs`: what the attribute generates for representative
//!   inputs, pretty-printed (`snapshots/`);
//! - `never_panics.rs`: thousands of generated and mutated inputs, none of
//!   which may make it panic.

mod never_panics;
mod snapshots;
