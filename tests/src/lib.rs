//! Helpers shared by the integration tests and the benchmark: frame
//! builders and ready-made service fixtures.

pub mod bench;
pub mod daemon;
pub mod fixtures;
pub mod keepalived;
pub mod lab;
pub mod netns;
pub mod packet;
pub mod perf_lab;
pub mod plot;
pub mod showcase;
