//! pgrehearse: rehearse a PostgreSQL schema migration under production-like
//! load and measure every lock, wait and latency change it causes.
//!
//! Data flows one way, one module per box:
//! scenario → backend → seed → rehearsal (workload + migration + observe) →
//! record → analyze → report.

pub mod analyze;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod error;
pub mod fields;
pub mod health;
pub mod holds;
pub mod init;
pub mod input;
pub mod latency;
pub mod latency_hdr;
pub mod locks;
pub mod matrix;
pub mod migration;
pub mod migrations;
pub mod observe;
pub mod options;
pub mod pg;
pub mod printer;
pub mod progress;
pub mod record;
pub mod rehearsal;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod signals;
pub mod sizing;
pub mod sql;
pub mod sweep;
pub mod workload;

pub use error::{Error, Result};
