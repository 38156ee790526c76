//! JUnit XML for CI: one test suite per scenario, one test case per shard's seed range; a test
//! case with failing seeds carries a `<failure>` listing each seed, its checks, its explanation
//! and the command that replays it.

use std::fmt::Write as _;

use crate::campaign::Campaign;

/// Escapes text for XML content and attribute values.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            character if (character as u32) < 0x20 && !matches!(character, '\n' | '\t' | '\r') => {
                out.push('?')
            }
            character => out.push(character),
        }
    }
    out
}

/// The campaign as JUnit XML.
pub fn junit_xml(campaign: &Campaign) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let cases: usize = campaign
        .scenarios
        .iter()
        .map(|scenario| scenario.shards.len())
        .sum();
    let failed_cases = campaign
        .scenarios
        .iter()
        .flat_map(|scenario| scenario.shards.iter())
        .filter(|entry| entry.shard.seeds_failed > 0)
        .count();
    let _ = writeln!(
        out,
        "<testsuites name=\"detcd sim\" tests=\"{cases}\" failures=\"{failed_cases}\">"
    );
    for scenario in &campaign.scenarios {
        let suite_failures = scenario
            .shards
            .iter()
            .filter(|entry| entry.shard.seeds_failed > 0)
            .count();
        let suite_seconds: f64 = scenario
            .shards
            .iter()
            .map(|entry| entry.shard.wall_seconds)
            .sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"sim.{}\" tests=\"{}\" failures=\"{suite_failures}\" time=\"{suite_seconds:.3}\">",
            xml_escape(&scenario.name),
            scenario.shards.len()
        );
        for entry in &scenario.shards {
            let shard = &entry.shard;
            let _ = write!(
                out,
                "    <testcase classname=\"sim.{}\" name=\"{} ({} seeds)\" time=\"{:.3}\"",
                xml_escape(&scenario.name),
                xml_escape(&shard.seed_range()),
                shard.seeds_run,
                shard.wall_seconds
            );
            if shard.failures.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            let mut checks: Vec<&str> = shard
                .failures
                .iter()
                .flat_map(|failure| failure.checks.iter().map(String::as_str))
                .collect();
            checks.sort_unstable();
            checks.dedup();
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{} of {} seeds failed: {}\" type=\"{}\">",
                shard.seeds_failed,
                shard.seeds_run,
                xml_escape(&checks.join(", ")),
                xml_escape(checks.first().copied().unwrap_or("failure"))
            );
            for failure in &shard.failures {
                let _ = writeln!(
                    out,
                    "seed {}: {}: {}\n  replay: {}",
                    failure.seed,
                    xml_escape(&failure.checks.join(", ")),
                    xml_escape(&failure.explanation),
                    xml_escape(&failure.replay)
                );
            }
            out.push_str("      </failure>\n    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::xml_escape;

    /// Goal: markup and control characters in explanations cannot break the XML.
    /// Method: escape a string with each.
    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            xml_escape("a<b & \"c\" 'd'>\u{1}\n"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;?\n"
        );
    }
}
