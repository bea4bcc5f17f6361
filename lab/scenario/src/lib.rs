//! lvslab-scenario: scenario files, the scenario runner, path snapshots and JUnit output.
//! One runner serves both `lvslab test` and the cargo integration test.

pub mod format;
pub mod junit;
pub mod snapshot;

pub use format::{Backend, Scenario, Step};
