//! Tests of the command-line layer: exit statuses and output shape.

use super::*;

#[test]
fn bench_quick_checks_generated_histories_as_linearizable() {
    // Goal: the bench's generated histories are all judged linearizable, and the JSON has the
    // promised shape. Method: run the quick bench and inspect every row.
    let report = bench_check(true);
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
    // JSON line carries file, verdict, ops and check_ms. Method: three files, checked alone and
    // together.
    let good = temp_file(
        "good",
        r#"{"id":1,"client":1,"call":0,"return":1,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put","revision":2}}"#,
    );
    let bad = temp_file("bad", "{\"id\":1,\"client\":1,\"call\":0,\"return\":1,\"op\":{\"type\":\"put\",\"key\":\"a\",\"value\":\"1\"},\"result\":{\"type\":\"put\",\"revision\":2}}\n{\"id\":2,\"client\":1,\"call\":2,\"return\":3,\"op\":{\"type\":\"range\",\"key\":\"a\"},\"result\":{\"type\":\"range\",\"kvs\":[]}}\n");
    let broken = temp_file("broken", "{\"id\":1}\n");
    let mut out = Vec::new();
    assert_eq!(
        check_command(std::slice::from_ref(&good), None, true, &mut out),
        EXIT_OK
    );
    let line: Value = serde_json::from_slice(&out).expect("one JSON line");
    assert_eq!(line["verdict"], "linearizable");
    assert_eq!(line["ops"], 1);
    assert!(line["check_ms"].as_f64().is_some());
    let mut out = Vec::new();
    assert_eq!(
        check_command(std::slice::from_ref(&bad), None, false, &mut out),
        EXIT_VIOLATION
    );
    assert!(String::from_utf8_lossy(&out).contains("not linearizable"));
    let mut out = Vec::new();
    assert_eq!(
        check_command(
            &[good.clone(), bad.clone(), broken.clone()],
            None,
            false,
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
    let report = bench_check(false);
    println!("{report}");
    for row in report["generated"].as_array().expect("rows") {
        assert_eq!(row["verdict"], "linearizable", "{row}");
    }
}
