//! Run and campaign reports: JSON, JUnit XML and self-contained HTML with timelines, built from
//! what the simulator leaves on disk: failure artifacts (`seed-N/artifact.json`, `history.jsonl`,
//! `faults.jsonl`, `events.jsonl`; docs/artifacts.md) and campaign outputs (`campaign.json`).
//!
//! It reads files and renders text; it never runs a simulation, and it depends on no simulator
//! type (only on the files' documented fields), so any build's outputs can be reported on. The
//! HTML needs no network: styles and SVG are inline. May use: `checkers` (nothing yet needed).

mod campaign;
mod html;
mod junit;
mod run_page;
mod write;

pub use campaign::{merge, Campaign, ScenarioSummary, Shard, ShardEntry, ShardFailure};
pub use junit::junit_xml;
pub use run_page::{run_page, RunPageError};
pub use write::{report_command, write_reports, ReportError, WrittenReports};

pub use html::campaign_page;
