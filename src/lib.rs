//! pgrehearse: rehearse a PostgreSQL schema migration under production-like
//! load and measure every lock, wait and latency change it causes.
//!
//! Data flows one way, one module per box:
//! scenario → backend → seed → rehearsal (workload + migration + observe) →
//! record → analyze → report.
//!
//! As a library: [`rehearse`] a [`scenario::Scenario`] (loaded with
//! [`scenario::load()`] or [`scenario::load_str`]) and assert on the
//! [`Rehearsal`] it returns — [`library`]'s docs show a whole test. The
//! command line is the same code ([`cli`]).

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
pub mod library;
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

pub use analyze::{Analysis, StepFacts};
pub use error::{Error, Result};
pub use library::{rehearse, rehearse_until, Rehearsal};
pub use options::RunOptions;
pub use record::Blocks;
