//! Tests of the command-line layer: exit statuses and output shape.

use super::*;

#[test]
fn bench_quick_checks_generated_histories_as_linearizable() {
    // Goal: the bench's generated histories are all judged linearizable, and the JSON has the
    // promised shape. Method: run the quick bench and inspect every row.
    let report = bench_check(true, None);
    let rows = report["generated"].as_array().expect("rows");
    assert_eq!(rows.len(), 2 * 3 * 2);
    for row in rows {
        assert_eq!(row["verdict"], "linearizable", "{row}");
        assert!(row["check_ms"].as_f64().is_some());
    }
    assert_eq!(
        report["hard_single_key"]["verdicts_all_linearizable"], true,
        "{report}"
    );
    // The Jepsen-shaped set: seed 0 at each of the 4 client counts is left linearizable by
    // construction, the others get a stale read; every one must be decided.
    let jepsen = &report["jepsen_hard"];
    assert_eq!(jepsen["histories"], 12, "{jepsen}");
    assert_eq!(jepsen["unknown"], 0, "{jepsen}");
    assert!(jepsen["linearizable"].as_u64() >= Some(4), "{jepsen}");
    assert!(jepsen["not_linearizable"].as_u64() >= Some(1), "{jepsen}");
    println!("{report}");
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let mut path = std::env::temp_dir();
    path.push(format!("checkers-cli-test-{}-{name}", std::process::id()));
    #[allow(clippy::disallowed_methods)]
    std::fs::write(&path, text).expect("temp file");
    path
}

#[test]
fn exit_statuses_follow_the_verdicts() {
    // Goal: 0 for linearizable, 1 for a violation, 2 for unreadable input (line named), and the
    // JSON line carries file, verdict, ops, check_ms and steps. Method: three files, checked
    // alone and together.
    let good = temp_file(
        "good",
        r#"{"id":1,"client":1,"call":0,"return":1,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put","revision":2}}"#,
    );
    let bad = temp_file("bad", "{\"id\":1,\"client\":1,\"call\":0,\"return\":1,\"op\":{\"type\":\"put\",\"key\":\"a\",\"value\":\"1\"},\"result\":{\"type\":\"put\",\"revision\":2}}\n{\"id\":2,\"client\":1,\"call\":2,\"return\":3,\"op\":{\"type\":\"range\",\"key\":\"a\"},\"result\":{\"type\":\"range\",\"kvs\":[]}}\n");
    let broken = temp_file("broken", "{\"id\":1}\n");
    let mut out = Vec::new();
    assert_eq!(
        check_command(
            std::slice::from_ref(&good),
            None,
            true,
            Explain::Full,
            &mut out
        ),
        EXIT_OK
    );
    let line: Value = serde_json::from_slice(&out).expect("one JSON line");
    assert_eq!(line["verdict"], "linearizable");
    assert_eq!(line["ops"], 1);
    assert!(line["check_ms"].as_f64().is_some());
    assert!(
        line["steps"].as_u64().is_some_and(|steps| steps > 0),
        "{line}"
    );
    let mut out = Vec::new();
    assert_eq!(
        check_command(
            std::slice::from_ref(&bad),
            None,
            false,
            Explain::Full,
            &mut out
        ),
        EXIT_VIOLATION
    );
    assert!(String::from_utf8_lossy(&out).contains("not linearizable"));
    let mut out = Vec::new();
    assert_eq!(
        check_command(
            &[good.clone(), bad.clone(), broken.clone()],
            None,
            false,
            Explain::Fast,
            &mut out
        ),
        EXIT_UNREADABLE
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("line 1: client: missing"), "{text}");
    for path in [good, bad, broken] {
        #[allow(clippy::disallowed_methods)]
        let _ = std::fs::remove_file(path);
    }
}

#[test]
#[ignore = "the full bench takes seconds; run with --ignored"]
fn bench_full_prints_figures() {
    // Goal: run the full bench once and print its JSON; every history must be linearizable.
    // Method: `cargo test --release -p checkers bench_full -- --ignored --nocapture`.
    let report = bench_check(false, None);
    println!("{report}");
    for row in report["generated"].as_array().expect("rows") {
        assert_eq!(row["verdict"], "linearizable", "{row}");
    }
}

fn check_text(files: &[PathBuf], watches: Option<&Path>, json: bool) -> (i32, String) {
    let mut out = Vec::new();
    let status = check_command(files, watches, json, Explain::Full, &mut out);
    (status, String::from_utf8(out).expect("utf-8 output"))
}

#[test]
fn files_without_operations_are_unreadable_not_linearizable() {
    // Goal: an empty file, or a watch file passed where the history belongs, is a user's
    // mistake reported with exit 2 and what was expected, never "linearizable (0 ops)"; a
    // --watches file without watch lines likewise, in JSON mode as JSON. Method: check each.
    let empty = temp_file("empty", "");
    let watch_line = r#"{"watch":3,"client":4,"call":900,"key":"a","range_end":"b","start_revision":1,"events":[],"canceled":null}"#;
    let watches_only = temp_file("watches-only", watch_line);
    let (status, text) = check_text(std::slice::from_ref(&empty), None, false);
    assert_eq!(status, EXIT_UNREADABLE, "{text}");
    assert!(text.contains("no operation lines"), "{text}");
    let (status, text) = check_text(std::slice::from_ref(&watches_only), None, false);
    assert_eq!(status, EXIT_UNREADABLE, "{text}");
    assert!(text.contains("--watches"), "{text}");
    let good = temp_file(
        "good-for-watches",
        r#"{"id":1,"client":1,"call":0,"return":1,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put","revision":2}}"#,
    );
    let (status, text) = check_text(std::slice::from_ref(&good), Some(&empty), true);
    assert_eq!(status, EXIT_UNREADABLE, "{text}");
    let parsed: Value = serde_json::from_str(text.trim()).expect("JSON only in --json mode");
    assert_eq!(parsed["verdict"], "unreadable");
    for path in [empty, watches_only, good] {
        std::fs::remove_file(path).expect("remove");
    }
}

#[test]
fn absurd_numbers_are_bounded_or_rejected() {
    // Goal: a negative revision is rejected naming the line (it used to overflow), and a huge
    // one is decided with memory bounded by the input, not by the number (a revision of 10^15
    // used to allocate a slot per revision). Method: one-line histories with each.
    let put = |revision: &str| {
        format!(
            r#"{{"id":1,"client":1,"call":0,"return":1,"op":{{"type":"put","key":"a","value":"1"}},"result":{{"type":"put","revision":{revision}}}}}"#
        )
    };
    let negative = temp_file("negative", &put("-9223372036854775808"));
    let (status, text) = check_text(std::slice::from_ref(&negative), None, false);
    assert_eq!(status, EXIT_UNREADABLE, "{text}");
    assert!(
        text.contains("line 1") && text.contains("out of range"),
        "{text}"
    );
    let huge = temp_file("huge", &put("1000000000000000"));
    let (status, text) = check_text(std::slice::from_ref(&huge), None, false);
    assert_eq!(status, EXIT_VIOLATION, "{text}");
    for path in [negative, huge] {
        std::fs::remove_file(path).expect("remove");
    }
}
