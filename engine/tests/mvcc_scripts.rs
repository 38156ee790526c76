//! Golden-file conformance tests of the MVCC store: each `tests/mvcc/scripts/*.txt` is a story
//! of requests, one per line (txns as indented blocks), and its snapshot holds every response
//! rendered by the stable `engine::mvcc::describe_*` functions.
//!
//! Script format (`#` starts a comment line; KEYS is `k` for one key, `a..c` for `[a, c)`,
//! `a..` for every key >= `a`; a token `""` is empty; `\xNN` is a byte):
//!
//! ```text
//! leases 1 2                      # the leases that exist from now on
//! put KEY VALUE [--lease N] [--prev-kv] [--ignore-value] [--ignore-lease]
//! del KEYS [--prev-kv]
//! range KEYS [--rev N] [--limit N] [--sort none|asc|desc] [--target key|version|create|mod|value]
//!            [--keys-only] [--count-only] [--min-mod N] [--max-mod N] [--min-create N] [--max-create N]
//! compact N
//! events KEYS FROM TO [--max N]
//! delete-keys K1 K2 ...
//! rev                             # the current and compacted revisions
//! txn                             # a block: cmp/then/else lines, `then txn` nests, `end` closes
//!   cmp version|create|mod|lease|value KEYS =|!=|<|> OPERAND
//!   then put a 1
//!   else txn
//!     ...
//!   end
//! end
//! ```

use engine::kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    SortOrder, SortTarget, TxnRequest,
};
use engine::mvcc::{
    describe_delete, describe_error, describe_event, describe_put, describe_range, describe_txn,
    Store,
};
use engine::types::{LeaseId, Revision};

/// A token as bytes: `""` is empty, `\xNN` is one byte.
fn bytes_of(token: &str) -> Vec<u8> {
    if token == "\"\"" {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let raw = token.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] == b'\\' && raw.get(index + 1) == Some(&b'x') {
            let hex = &token[index + 2..index + 4];
            bytes.push(u8::from_str_radix(hex, 16).expect("bad \\x escape"));
            index += 4;
        } else {
            bytes.push(raw[index]);
            index += 1;
        }
    }
    bytes
}

/// KEYS as (key, range_end).
fn keys_of(token: &str) -> (Vec<u8>, Vec<u8>) {
    match token.split_once("..") {
        None => (bytes_of(token), Vec::new()),
        Some((start, "")) => (bytes_of(start), vec![0]),
        Some((start, end)) => (bytes_of(start), bytes_of(end)),
    }
}

fn number(token: Option<&&str>) -> i64 {
    token
        .expect("missing number")
        .parse()
        .expect("not a number")
}

/// The value following flag `name`, if the flag is present.
fn flag_value<'a>(words: &'a [&'a str], name: &str) -> Option<&'a str> {
    let at = words.iter().position(|word| *word == name)?;
    Some(words.get(at + 1).expect("flag without value"))
}

fn has_flag(words: &[&str], name: &str) -> bool {
    words.contains(&name)
}

fn flag_revision(words: &[&str], name: &str) -> Revision {
    Revision(flag_value(words, name).map_or(0, |value| value.parse().expect("not a number")))
}

fn parse_put(words: &[&str]) -> PutRequest {
    PutRequest {
        key: bytes_of(words[1]),
        value: words
            .get(2)
            .filter(|word| !word.starts_with("--"))
            .map_or(Vec::new(), |w| bytes_of(w)),
        lease: LeaseId(flag_value(words, "--lease").map_or(0, |v| v.parse().expect("lease"))),
        prev_kv: has_flag(words, "--prev-kv"),
        ignore_value: has_flag(words, "--ignore-value"),
        ignore_lease: has_flag(words, "--ignore-lease"),
    }
}

fn parse_delete(words: &[&str]) -> DeleteRangeRequest {
    let (key, range_end) = keys_of(words[1]);
    DeleteRangeRequest {
        key,
        range_end,
        prev_kv: has_flag(words, "--prev-kv"),
    }
}

fn parse_range(words: &[&str]) -> RangeRequest {
    let (key, range_end) = keys_of(words[1]);
    let sort_order = match flag_value(words, "--sort") {
        None | Some("none") => SortOrder::None,
        Some("asc") => SortOrder::Ascend,
        Some("desc") => SortOrder::Descend,
        Some(other) => panic!("unknown sort order {other}"),
    };
    let sort_target = match flag_value(words, "--target") {
        None | Some("key") => SortTarget::Key,
        Some("version") => SortTarget::Version,
        Some("create") => SortTarget::Create,
        Some("mod") => SortTarget::Mod,
        Some("value") => SortTarget::Value,
        Some(other) => panic!("unknown sort target {other}"),
    };
    RangeRequest {
        key,
        range_end,
        limit: flag_value(words, "--limit").map_or(0, |v| v.parse().expect("limit")),
        revision: flag_revision(words, "--rev"),
        sort_order,
        sort_target,
        serializable: false,
        keys_only: has_flag(words, "--keys-only"),
        count_only: has_flag(words, "--count-only"),
        min_mod_revision: flag_revision(words, "--min-mod"),
        max_mod_revision: flag_revision(words, "--max-mod"),
        min_create_revision: flag_revision(words, "--min-create"),
        max_create_revision: flag_revision(words, "--max-create"),
    }
}

fn parse_compare(words: &[&str]) -> Compare {
    let (key, range_end) = keys_of(words[2]);
    let result = match words[3] {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        other => panic!("unknown compare {other}"),
    };
    let operand = words[4];
    let target = match words[1] {
        "version" => CompareTarget::Version(number(Some(&operand))),
        "create" => CompareTarget::Create(Revision(number(Some(&operand)))),
        "mod" => CompareTarget::Mod(Revision(number(Some(&operand)))),
        "lease" => CompareTarget::Lease(LeaseId(number(Some(&operand)))),
        "value" => CompareTarget::Value(bytes_of(operand)),
        other => panic!("unknown compare target {other}"),
    };
    Compare {
        key,
        range_end,
        result,
        target,
    }
}

/// Parses a txn block body up to its `end`, echoing each line into `echo`.
fn parse_txn<'a>(lines: &mut impl Iterator<Item = &'a str>, echo: &mut String) -> TxnRequest {
    let mut request = TxnRequest::default();
    loop {
        let line = lines.next().expect("txn without end");
        echo.push_str(line);
        echo.push('\n');
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("end") => return request,
            Some("cmp") => request.compare.push(parse_compare(&words)),
            Some(side @ ("then" | "else")) => {
                let op = match words[1] {
                    "put" => RequestOp::Put(parse_put(&words[1..])),
                    "del" => RequestOp::DeleteRange(parse_delete(&words[1..])),
                    "range" => RequestOp::Range(parse_range(&words[1..])),
                    "txn" => RequestOp::Txn(parse_txn(lines, echo)),
                    other => panic!("unknown txn op {other}"),
                };
                if side == "then" {
                    request.success.push(op);
                } else {
                    request.failure.push(op);
                }
            }
            other => panic!("unknown txn line {other:?}"),
        }
    }
}

/// Runs one script and renders every request with its response.
fn run_script(text: &str) -> String {
    let mut store = Store::new();
    let mut leases: Vec<LeaseId> = Vec::new();
    let mut output = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        output.push_str(&format!("> {line}\n"));
        let lease_list = leases.clone();
        let lease_exists = move |lease: LeaseId| lease_list.contains(&lease);
        let rendered = match words[0] {
            "leases" => {
                leases = words[1..]
                    .iter()
                    .map(|w| LeaseId(w.parse().expect("lease")))
                    .collect();
                "ok".to_string()
            }
            "put" => store
                .put(&parse_put(&words), &lease_exists)
                .map_or_else(|e| describe_error(&e), |w| describe_put(&w.response)),
            "del" => store
                .delete_range(&parse_delete(&words))
                .map_or_else(|e| describe_error(&e), |w| describe_delete(&w.response)),
            "range" => store
                .range(&parse_range(&words))
                .map_or_else(|e| describe_error(&e), |r| describe_range(&r)),
            "compact" => store
                .compact(Revision(number(words.get(1))))
                .map_or_else(|e| describe_error(&e), |()| "compacted".to_string()),
            "events" => {
                let (key, range_end) = keys_of(words[1]);
                let (from, to) = (
                    Revision(number(words.get(2))),
                    Revision(number(words.get(3))),
                );
                let max = flag_value(&words, "--max").map_or(1000, |v| v.parse().expect("max"));
                match store.events(&key, &range_end, from, to, max) {
                    Err(error) => describe_error(&error),
                    Ok(events) => {
                        let lines: Vec<String> = events.iter().map(describe_event).collect();
                        format!("events count={}\n  {}", events.len(), lines.join("\n  "))
                    }
                }
            }
            "delete-keys" => {
                let keys: Vec<Vec<u8>> = words[1..].iter().map(|w| bytes_of(w)).collect();
                let written = store.delete_keys(&keys);
                let lines: Vec<String> = written.events.iter().map(describe_event).collect();
                format!(
                    "delete-keys rev={}\n  {}",
                    written.revision,
                    lines.join("\n  ")
                )
            }
            "rev" => format!(
                "rev={} compacted={}",
                store.revision(),
                store.compacted_revision()
            ),
            "txn" => {
                let request = parse_txn(&mut lines, &mut output);
                store
                    .txn(&request, &lease_exists)
                    .map_or_else(|e| describe_error(&e), |w| describe_txn(&w.response))
            }
            other => panic!("unknown command {other}"),
        };
        store.check_invariants();
        output.push_str(rendered.trim_end());
        output.push('\n');
    }
    output
}

/// Goal: pin etcd's documented MVCC behaviours, one story per script file. Method: run each
/// script against a fresh store, render every response with the stable describe functions and
/// compare with the reviewed snapshot; the store's invariants are checked after every request.
#[test]
fn mvcc_scripts() {
    insta::glob!("mvcc/scripts/*.txt", |path| {
        let text = std::fs::read_to_string(path).expect("script readable");
        insta::assert_snapshot!(run_script(&text));
    });
}
