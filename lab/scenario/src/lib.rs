//! lvslab-scenario: scenario files, the scenario runner, path snapshots and JUnit output.
//! One runner serves both `lvslab test` and the cargo integration test.

pub mod flood;
pub mod format;
pub mod ha;
pub mod junit;
pub mod overrides;
pub mod runner;
pub mod settle;
pub mod snapshot;
pub mod suite;
pub mod traffic;

pub use format::{Backend, Scenario, Step};
pub use overrides::apply_overrides;
pub use runner::{run, RunnerConfig, ScenarioResult};
