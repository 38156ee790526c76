//! The page of one run, from its artifact directory (docs/artifacts.md): a timeline per client
//! (each operation a bar from call to return: ok, failed, or unknown outcome running to the
//! end), the faults as bands over time (partitions across the page, crashes and pauses on their
//! member's row, instant faults as ticks), the leader of each term, the counterexample window
//! highlighted with the checker's explanation, and the replay command.
//!
//! One self-contained file: inline CSS and SVG, tooltips as SVG titles, no script.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::html::{escape, page_start, shorten, PAGE_END};

/// Why a run page could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RunPageError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    Unknown,
}

/// One operation of the history, as the timeline draws it.
#[derive(Clone, Debug)]
struct Op {
    id: u64,
    client: u64,
    call_ns: i64,
    return_ns: Option<i64>,
    outcome: Outcome,
    kind: String,
    line: String,
}

/// A fault from `faults.jsonl`.
#[derive(Clone, Debug)]
struct Fault {
    kind: String,
    member: Option<u64>,
    start_ns: i64,
    end_ns: Option<i64>,
    detail: String,
}

/// Width of the labels left of the plot (px).
const LABEL_WIDTH_PX: f64 = 90.0;
/// Width of the plot (px).
const PLOT_WIDTH_PX: f64 = 1200.0;
/// Height of one row (px) and the gap below it.
const ROW_HEIGHT_PX: f64 = 14.0;
const ROW_GAP_PX: f64 = 4.0;
/// Height of the time axis on top (px).
const AXIS_HEIGHT_PX: f64 = 22.0;
/// Operations listed in the window table at most (the SVG shows every one).
const WINDOW_ROWS_MAX: usize = 200;

/// Colours: ok, failed, unknown, window, partition, crash, pause, tick.
const OK_COLOUR: &str = "#2da44e";
const FAILED_COLOUR: &str = "#cf222e";
const UNKNOWN_COLOUR: &str = "#8c959f";
const WINDOW_COLOUR: &str = "#ffd33d";
const PARTITION_COLOUR: &str = "#54aeff";
const CRASH_COLOUR: &str = "#fa4549";
const PAUSE_COLOUR: &str = "#fb8f44";
const TICK_COLOUR: &str = "#8250df";
/// One colour per member for the leader row.
const MEMBER_COLOURS: [&str; 7] = [
    "#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a",
];

fn read_text(path: &Path) -> Result<String, RunPageError> {
    std::fs::read_to_string(path).map_err(|error| RunPageError {
        path: path.to_path_buf(),
        message: format!("cannot read: {error}"),
    })
}

/// The JSON lines of `path` (an absent file reads as none: older artifacts lack some).
fn read_lines(path: &Path) -> Result<Vec<(String, Value)>, RunPageError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .map(|value| (line.to_string(), value))
                .map_err(|error| RunPageError {
                    path: path.to_path_buf(),
                    message: format!("line {}: {error}", index + 1),
                })
        })
        .collect()
}

fn ops_of(lines: Vec<(String, Value)>) -> Vec<Op> {
    lines
        .into_iter()
        .filter(|(_, value)| value.get("op").is_some())
        .map(|(line, value)| {
            let return_ns = value["return"].as_i64();
            let outcome = match (return_ns, value["result"]["type"].as_str()) {
                (None, _) => Outcome::Unknown,
                (Some(_), Some("error")) => Outcome::Failed,
                (Some(_), _) => Outcome::Ok,
            };
            Op {
                id: value["id"].as_u64().unwrap_or(0),
                client: value["client"].as_u64().unwrap_or(0),
                call_ns: value["call"].as_i64().unwrap_or(0),
                return_ns,
                outcome,
                kind: value["op"]["type"].as_str().unwrap_or("?").to_string(),
                line,
            }
        })
        .collect()
}

fn faults_of(lines: Vec<(String, Value)>) -> Vec<Fault> {
    lines
        .into_iter()
        .map(|(_, value)| Fault {
            kind: value["kind"].as_str().unwrap_or("?").to_string(),
            member: value["member"].as_u64(),
            start_ns: value["start_ns"].as_i64().unwrap_or(0),
            end_ns: value["end_ns"].as_i64(),
            detail: value["detail"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// (time, member, term) of every leader elected, by time.
fn leaders_of(lines: Vec<(String, Value)>) -> Vec<(i64, u64, u64)> {
    let mut leaders: Vec<(i64, u64, u64)> = lines
        .into_iter()
        .filter(|(_, value)| value["event"] == "leader_elected")
        .map(|(_, value)| {
            (
                value["time"].as_i64().unwrap_or(0),
                value["member"].as_u64().unwrap_or(0),
                value["term"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    leaders.sort_unstable();
    leaders
}

/// Maps simulated time to x.
struct Scale {
    end_ns: i64,
}

impl Scale {
    fn x(&self, time_ns: i64) -> f64 {
        let fraction = time_ns.clamp(0, self.end_ns) as f64 / self.end_ns.max(1) as f64;
        LABEL_WIDTH_PX + fraction * PLOT_WIDTH_PX
    }

    /// x and width of the span `start..end`, at least one pixel wide.
    fn span(&self, start_ns: i64, end_ns: i64) -> (f64, f64) {
        let left = self.x(start_ns);
        (left, (self.x(end_ns) - left).max(1.0))
    }
}

fn row_y(row: usize) -> f64 {
    AXIS_HEIGHT_PX + row as f64 * (ROW_HEIGHT_PX + ROW_GAP_PX)
}

/// The time axis: a tick at each round number of seconds, about ten in all.
fn axis(svg: &mut String, scale: &Scale, height_px: f64) {
    let seconds = scale.end_ns as f64 / 1e9;
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|step| seconds / step <= 12.0)
        .unwrap_or(1800.0);
    let mut tick = 0.0;
    while tick <= seconds {
        let x = scale.x((tick * 1e9) as i64);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"{height_px:.0}\" stroke=\"#eaeef2\"/><text x=\"{x:.1}\" y=\"11\" font-size=\"10\" text-anchor=\"middle\">{tick}s</text>",
        );
        tick += step;
    }
}

fn label(svg: &mut String, row: usize, text: &str) {
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"{:.1}\" font-size=\"11\">{}</text>",
        row_y(row) + ROW_HEIGHT_PX - 3.0,
        escape(text)
    );
}

/// The page of the run whose artifact directory is `dir`.
pub fn run_page(dir: &Path) -> Result<String, RunPageError> {
    let meta_path = dir.join("artifact.json");
    let meta: Value =
        serde_json::from_str(&read_text(&meta_path)?).map_err(|error| RunPageError {
            path: meta_path.clone(),
            message: format!("not an artifact: {error}"),
        })?;
    let ops = ops_of(read_lines(&dir.join("history.jsonl"))?);
    let faults = faults_of(read_lines(&dir.join("faults.jsonl"))?);
    let leaders = leaders_of(read_lines(&dir.join("events.jsonl"))?);
    let member_count = meta["scenario"]["member_count"].as_u64().unwrap_or(0);
    let failures: Vec<&Value> = meta["verdict"]["failures"]
        .as_array()
        .map(|failures| failures.iter().collect())
        .unwrap_or_default();
    let window: BTreeSet<u64> = failures
        .iter()
        .flat_map(|failure| failure["window"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id.as_u64())
        .collect();
    let end_ns = ops
        .iter()
        .map(|op| op.return_ns.unwrap_or(op.call_ns))
        .chain(
            faults
                .iter()
                .map(|fault| fault.end_ns.unwrap_or(fault.start_ns)),
        )
        .chain(
            meta["sim_ms"]
                .as_i64()
                .map(|millis| millis.saturating_mul(1_000_000)),
        )
        .max()
        .unwrap_or(1)
        .max(1);
    let scale = Scale { end_ns };

    let title = format!(
        "{} seed {}",
        meta["scenario_name"].as_str().unwrap_or("?"),
        meta["seed"]
    );
    let mut out = page_start(&title);
    let verdict = meta["verdict"]["verdict"].as_str().unwrap_or("?");
    let _ = writeln!(
        out,
        "<p>verdict <span class=\"{}\">{}</span> (checks {}, expected {}) · trace hash <code>{}</code> · {} operations · {} faults · built by detcd {} {} ({})</p>",
        if verdict == "pass" { "pass" } else { "fail" },
        escape(verdict),
        escape(meta["verdict"]["checks_verdict"].as_str().unwrap_or("?")),
        escape(meta["verdict"]["expected_verdict"].as_str().unwrap_or("?")),
        escape(meta["trace_hash"].as_str().unwrap_or("?")),
        ops.len(),
        faults.len(),
        escape(meta["build"]["version"].as_str().unwrap_or("?")),
        escape(meta["build"]["git_hash"].as_str().unwrap_or("?")),
        escape(meta["build"]["profile"].as_str().unwrap_or("?")),
    );
    let _ = writeln!(
        out,
        "<p>replay: <code>{}</code><br>run from the scenario: <code>{}</code></p>",
        escape(meta["replay_command"].as_str().unwrap_or("")),
        escape(meta["run_command"].as_str().unwrap_or(""))
    );
    for failure in &failures {
        let window_text = failure["window"]
            .as_array()
            .filter(|ids| !ids.is_empty())
            .map(|ids| format!(" (window: {} operations, highlighted)", ids.len()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<div class=\"explanation\"><b>{}</b> at {:.3}s{}<pre>{}</pre></div>",
            escape(failure["check"].as_str().unwrap_or("?")),
            failure["time_ns"].as_f64().unwrap_or(0.0) / 1e9,
            window_text,
            escape(failure["explanation"].as_str().unwrap_or(""))
        );
    }
    out.push_str("<h2>Timeline</h2>\n");
    legend(&mut out);
    out.push_str(&timeline_svg(
        &scale,
        &ops,
        &faults,
        &leaders,
        member_count,
        &window,
    ));
    window_table(&mut out, &ops, &window);
    fault_table(&mut out, &faults);
    out.push_str(PAGE_END);
    Ok(out)
}

fn legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    for (colour, text) in [
        (OK_COLOUR, "ok"),
        (FAILED_COLOUR, "failed (definite error)"),
        (
            UNKNOWN_COLOUR,
            "unknown outcome (until the client's next call)",
        ),
        (WINDOW_COLOUR, "counterexample window"),
        (PARTITION_COLOUR, "partition"),
        (CRASH_COLOUR, "member down"),
        (PAUSE_COLOUR, "member paused"),
        (TICK_COLOUR, "disk, clock or crash-point fault"),
    ] {
        let _ = write!(
            out,
            "<span><i class=\"swatch\" style=\"background:{colour}\"></i>{text}</span>"
        );
    }
    out.push_str("</p>\n");
}

/// The SVG: the axis, the leader row, a row per member, a row per client.
fn timeline_svg(
    scale: &Scale,
    ops: &[Op],
    faults: &[Fault],
    leaders: &[(i64, u64, u64)],
    member_count: u64,
    window: &BTreeSet<u64>,
) -> String {
    let clients: BTreeSet<u64> = ops.iter().map(|op| op.client).collect();
    let client_row = |client: u64| 1 + member_count as usize + clients.range(..client).count();
    let rows = 1 + member_count as usize + clients.len();
    let height_px = row_y(rows) + 4.0;
    let width_px = LABEL_WIDTH_PX + PLOT_WIDTH_PX + 10.0;
    let mut svg = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width_px:.0}\" height=\"{height_px:.0}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    );
    axis(&mut svg, scale, height_px);
    // Partitions and Figure-8 schedules cut the whole cluster: bands over every row.
    for fault in faults.iter().filter(|fault| fault.member.is_none()) {
        let (x, width) = scale.span(fault.start_ns, fault.end_ns.unwrap_or(scale.end_ns));
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"{PARTITION_COLOUR}\" opacity=\"0.18\"><title>{}</title></rect>",
            AXIS_HEIGHT_PX - 4.0,
            height_px - AXIS_HEIGHT_PX,
            escape(&fault.detail)
        );
    }
    // The counterexample window: a band over the client rows, from its first call to its last
    // return (or the end, for an unknown outcome).
    let window_ops: Vec<&Op> = ops.iter().filter(|op| window.contains(&op.id)).collect();
    if let (Some(start), Some(end)) = (
        window_ops.iter().map(|op| op.call_ns).min(),
        window_ops
            .iter()
            .map(|op| op.return_ns.unwrap_or(scale.end_ns))
            .max(),
    ) {
        let (x, width) = scale.span(start, end);
        let top = row_y(1 + member_count as usize) - 2.0;
        let _ = writeln!(
            svg,
            "<rect id=\"window\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"{WINDOW_COLOUR}\" opacity=\"0.45\"><title>counterexample window</title></rect>",
            height_px - top
        );
    }
    label(&mut svg, 0, "leader");
    for (index, (time, member, term)) in leaders.iter().enumerate() {
        let next = leaders
            .get(index + 1)
            .map_or(scale.end_ns, |(next, _, _)| *next);
        let (x, width) = scale.span(*time, next);
        let colour = MEMBER_COLOURS[(*member as usize) % MEMBER_COLOURS.len()];
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{ROW_HEIGHT_PX}\" fill=\"{colour}\" opacity=\"0.8\"><title>term {term}: n{member}</title></rect>",
            row_y(0)
        );
        if width > 44.0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#fff\">t{term} n{member}</text>",
                x + 2.0,
                row_y(0) + ROW_HEIGHT_PX - 3.0
            );
        }
        svg.push('\n');
    }
    for member in 1..=member_count {
        label(&mut svg, member as usize, &format!("n{member}"));
    }
    for fault in faults.iter() {
        let Some(member) = fault
            .member
            .filter(|member| (1..=member_count).contains(member))
        else {
            continue;
        };
        let y = row_y(member as usize);
        let (colour, lasting) = match fault.kind.as_str() {
            "crash" => (CRASH_COLOUR, true),
            "pause" => (PAUSE_COLOUR, true),
            _ => (TICK_COLOUR, false),
        };
        let (x, width) = if lasting {
            scale.span(fault.start_ns, fault.end_ns.unwrap_or(scale.end_ns))
        } else {
            (scale.x(fault.start_ns) - 1.0, 3.0)
        };
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{ROW_HEIGHT_PX}\" fill=\"{colour}\"><title>{}</title></rect>",
            escape(&fault.detail)
        );
    }
    for client in &clients {
        label(&mut svg, client_row(*client), &format!("client {client}"));
    }
    // An unknown outcome is drawn until the client's next call (it gave up waiting then; the
    // operation may still take effect later, which the window band shows when it matters).
    let mut next_call: std::collections::BTreeMap<u64, i64> = std::collections::BTreeMap::new();
    let mut by_call: Vec<&Op> = ops.iter().collect();
    by_call.sort_by_key(|op| (op.client, op.call_ns, op.id));
    for pair in by_call.windows(2) {
        if pair[0].client == pair[1].client {
            next_call.insert(pair[0].id, pair[1].call_ns);
        }
    }
    // Window operations last, so their outline is on top.
    let mut ordered: Vec<&Op> = ops.iter().filter(|op| !window.contains(&op.id)).collect();
    ordered.extend(window_ops.iter().copied());
    for op in ordered {
        let y = row_y(client_row(op.client));
        let end_ns = op
            .return_ns
            .unwrap_or_else(|| next_call.get(&op.id).copied().unwrap_or(scale.end_ns));
        let (x, width) = scale.span(op.call_ns, end_ns);
        let (colour, opacity) = match op.outcome {
            Outcome::Ok => (OK_COLOUR, "1"),
            Outcome::Failed => (FAILED_COLOUR, "1"),
            Outcome::Unknown => (UNKNOWN_COLOUR, "0.55"),
        };
        let stroke = if window.contains(&op.id) {
            " stroke=\"#1f2328\" stroke-width=\"1.5\""
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{ROW_HEIGHT_PX}\" fill=\"{colour}\" opacity=\"{opacity}\"{stroke}><title>op {} {} ({:?})</title></rect>",
            op.id,
            escape(&op.kind),
            op.outcome
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn window_table(out: &mut String, ops: &[Op], window: &BTreeSet<u64>) {
    if window.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>Operations in the window ({})</h2>\n<table><tr><th>id</th><th>client</th><th>call (s)</th><th>return (s)</th><th>history line</th></tr>",
        window.len()
    );
    for op in ops
        .iter()
        .filter(|op| window.contains(&op.id))
        .take(WINDOW_ROWS_MAX)
    {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.6}</td><td>{}</td><td><code>{}</code></td></tr>",
            op.id,
            op.client,
            op.call_ns as f64 / 1e9,
            op.return_ns.map_or("unknown".to_string(), |time| format!(
                "{:.6}",
                time as f64 / 1e9
            )),
            escape(&shorten(&op.line, 400))
        );
    }
    out.push_str("</table>\n");
}

fn fault_table(out: &mut String, faults: &[Fault]) {
    let _ = writeln!(
        out,
        "<h2>Faults ({})</h2>\n<table><tr><th>start (s)</th><th>end (s)</th><th>kind</th><th>detail</th></tr>",
        faults.len()
    );
    for fault in faults {
        let _ = writeln!(
            out,
            "<tr><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            fault.start_ns as f64 / 1e9,
            fault
                .end_ns
                .map_or(String::new(), |end| format!("{:.3}", end as f64 / 1e9)),
            escape(&fault.kind),
            escape(&shorten(&fault.detail, 200))
        );
    }
    out.push_str("</table>\n");
}
