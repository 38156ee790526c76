//! HTML pieces shared by the pages (escaping, the inline style sheet) and the campaign page:
//! pass/fail per scenario, failures linking to their run pages, the fault kinds reached, the
//! coverage marks hit and never hit, and seeds per second. No script, no network.

use std::fmt::Write as _;

use crate::campaign::Campaign;

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            character => out.push(character),
        }
    }
    out
}

/// The style sheet every page inlines.
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}\
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}\
pre,code{background:#f6f8fa;padding:2px 4px;font-size:12px}pre{padding:8px;white-space:pre-wrap}\
.explanation{border-left:4px solid #d4a72c;background:#fff8c5;padding:8px}\
.legend span{display:inline-block;margin-right:14px}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}";

/// Opens a page with `title`.
pub(crate) fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    )
}

/// Closes a page.
pub(crate) const PAGE_END: &str = "</body></html>\n";

fn verdict_cell(passed: bool) -> &'static str {
    if passed {
        "<td class=\"pass\">pass</td>"
    } else {
        "<td class=\"fail\">FAIL</td>"
    }
}

/// The campaign page. Failure links point at `SHARD_DIR/seed-N/report.html`, the run page
/// written beside each artifact.
pub fn campaign_page(campaign: &Campaign) -> String {
    let mut out = page_start("detcd simulation campaign");
    let _ = writeln!(
        out,
        "<p>{} seeds, {} failed, {} operations{}: <span class=\"{}\">{}</span></p>",
        campaign.seeds_run,
        campaign.seeds_failed,
        campaign.ops,
        if campaign.interrupted {
            ", interrupted"
        } else {
            ""
        },
        if campaign.passed { "pass" } else { "fail" },
        if campaign.passed { "PASS" } else { "FAIL" }
    );
    out.push_str("<h2>Scenarios</h2>\n<table><tr><th>scenario</th><th>verdict</th><th>seeds</th><th>failed</th><th>seeds/s</th><th>shards</th></tr>\n");
    for scenario in &campaign.scenarios {
        let _ = writeln!(
            out,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            escape(&scenario.name),
            verdict_cell(scenario.passed),
            scenario.seeds_run,
            scenario.seeds_failed,
            scenario.seeds_per_second,
            scenario.shards.len()
        );
    }
    out.push_str("</table>\n<h2>Failures</h2>\n");
    let mut any_failure = false;
    for scenario in &campaign.scenarios {
        for entry in &scenario.shards {
            for failure in &entry.shard.failures {
                if !any_failure {
                    out.push_str("<table><tr><th>scenario</th><th>seed</th><th>checks</th><th>explanation</th><th>replay</th></tr>\n");
                    any_failure = true;
                }
                let link = format!("{}/{}/report.html", entry.dir, failure.artifact);
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td><a href=\"{}\">seed {}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    escape(&scenario.name),
                    escape(&link),
                    failure.seed,
                    escape(&failure.checks.join(", ")),
                    escape(&shorten(&failure.explanation, 300)),
                    escape(&failure.replay)
                );
            }
        }
    }
    out.push_str(if any_failure {
        "</table>\n"
    } else {
        "<p>none</p>\n"
    });
    out.push_str("<h2>Fault kinds reached</h2>\n<table><tr><th>scenario</th><th>fault</th><th>count</th></tr>\n");
    for scenario in &campaign.scenarios {
        for (kind, count) in &scenario.fault_kinds {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{count}</td></tr>",
                escape(&scenario.name),
                escape(kind)
            );
        }
    }
    out.push_str("</table>\n<h2>Coverage marks</h2>\n");
    if campaign.marks_never_hit.is_empty() {
        out.push_str("<p>every declared mark was hit</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p class=\"fail\">never hit: {}</p>",
            escape(&campaign.marks_never_hit.join(", "))
        );
    }
    out.push_str("<table><tr><th>mark</th><th>hits</th></tr>\n");
    for (mark, count) in &campaign.marks {
        let _ = writeln!(out, "<tr><td>{}</td><td>{count}</td></tr>", escape(mark));
    }
    for mark in &campaign.marks_never_hit {
        if !campaign.marks.contains_key(mark) {
            let _ = writeln!(out, "<tr><td>{}</td><td>0</td></tr>", escape(mark));
        }
    }
    out.push_str("</table>\n");
    out.push_str(PAGE_END);
    out
}

/// `text` cut to at most `chars_max` characters, with an ellipsis when cut.
pub(crate) fn shorten(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(chars_max).collect();
    short.push('…');
    short
}
