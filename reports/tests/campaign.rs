//! Campaign reports: the merge of shards, its JSON and JUnit (golden files), the campaign
//! page's links to run pages, and the exit status of `sim merge`.

mod fixtures;

use fixtures::{scratch, shard_json, write_artifact, write_shard};
use reports::{merge, write_reports, Shard};

fn shard(text: &str) -> Shard {
    serde_json::from_str(text).expect("fixture shard")
}

/// The fixed campaign: two shards of `default` (one with failing seeds 3 and 11), one of
/// `partitions_only`, given out of order.
fn fixed_campaign() -> reports::Campaign {
    merge(
        vec![
            (
                "shards/p0".into(),
                shard(&shard_json("partitions_only", 0, 1, 50, &[])),
            ),
            (
                "shards/d1".into(),
                shard(&shard_json("default", 1, 2, 100, &[11, 3])),
            ),
            (
                "shards/d0".into(),
                shard(&shard_json("default", 0, 2, 100, &[])),
            ),
        ],
        &[
            "snapshot_installed",
            "proposal_deduplicated",
            "lease_revoked_by_expiry",
        ],
    )
}

/// Goal: the campaign JSON holds per-scenario verdicts, shards in order, failures by seed,
/// summed fault kinds and marks, and the marks never hit. Method: snapshot the fixed campaign.
#[test]
fn campaign_json_snapshot() {
    let campaign = fixed_campaign();
    assert!(!campaign.passed);
    assert_eq!(campaign.seeds_run, 250);
    assert_eq!(campaign.seeds_failed, 2);
    insta::assert_snapshot!("campaign_json", campaign.to_json());
}

/// Goal: JUnit has a suite per scenario and a case per shard's seed range; a failing case
/// lists each failing seed with its replay command, and markup in explanations is escaped.
/// Method: snapshot the fixed campaign's XML.
#[test]
fn campaign_junit_snapshot() {
    let xml = reports::junit_xml(&fixed_campaign());
    assert!(xml.contains("replay: detcd sim replay out/seed-3"));
    assert!(!xml.contains("<of seed"), "explanations are escaped");
    insta::assert_snapshot!("campaign_junit", xml);
}

/// Goal: merging shard directories writes report.html, junit.xml and report.json, a run page
/// beside each failure artifact, links from the campaign page to it, and the exit status says
/// whether every seed passed. Method: write two shard directories and merge them.
#[test]
fn merge_writes_reports_and_exit_status() {
    let root = scratch("merge");
    let failing = root.join("shards").join("a");
    let passing = root.join("shards").join("b");
    write_shard(&failing, &shard_json("default", 0, 2, 10, &[7]));
    write_artifact(&failing.join("seed-7"));
    write_shard(&passing, &shard_json("default", 1, 2, 10, &[]));
    let out = root.join("merged");
    let written = write_reports(&[failing.clone(), passing.clone()], &out, &[]).unwrap();
    let campaign = written.campaign.expect("a campaign");
    assert_eq!(campaign.scenarios.len(), 1);
    assert_eq!(campaign.scenarios[0].shards.len(), 2);
    for file in ["report.html", "junit.xml", "report.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(failing.join("seed-7").join("report.html").is_file());
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("href=\"../shards/a/seed-7/report.html\""),
        "{page}"
    );
    assert_eq!(
        reports::report_command(&[failing, passing.clone()], &out, &[]),
        1
    );
    assert_eq!(reports::report_command(&[passing], &out, &[]), 0);
    assert_eq!(
        reports::report_command(&[root.join("nothing")], &out, &[]),
        2
    );
    std::fs::write(root.join("shards").join("b").join("campaign.json"), "{").unwrap();
    assert_eq!(
        reports::report_command(&[root.join("shards").join("b")], &out, &[]),
        2
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Goal: the run page shows the timeline, the window, the explanation and the replay command,
/// escaped. Method: render the fixture artifact and look for each.
#[test]
fn run_page_holds_timeline_window_and_replay() {
    let dir = scratch("run-page");
    write_artifact(&dir);
    let page = reports::run_page(&dir).unwrap();
    assert!(page.contains("<svg id=\"timeline\""));
    assert!(page.contains("id=\"window\""));
    assert!(page.contains("read op 5 saw &lt;stale&gt; value 1"));
    assert!(page.contains("detcd sim replay out/seed-7"));
    assert!(page.contains("term 2: n3"));
    assert!(page.contains("client 2"));
    for fetch in ["<script", "<link", "src=", "url("] {
        assert!(
            !page.contains(fetch),
            "the page must need no network: {fetch}"
        );
    }
    std::fs::write(dir.join("history.jsonl"), "{\"id\":1,\n").unwrap();
    let error = reports::run_page(&dir).unwrap_err().to_string();
    assert!(
        error.contains("history.jsonl") && error.contains("line 1"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
