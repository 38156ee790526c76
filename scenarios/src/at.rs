//! The scripted timeline in files: `[[at]]` entries, each a time, a `fault` and its settings,
//! read into `sim::timeline::TimedFault` and written back.
//!
//! ```toml
//! [[at]]
//! time = "12s"
//! fault = "partition"
//! groups = [[1, 2], [3, 4, 5]]
//! heal_after = "3s"
//! ```
//!
//! Durations are text with a unit (`"3s"`); targets are member ids or roles (`"leader"`,
//! `"a_follower"`, `"the_most_behind"`, `"a_minority"`, `"the_learner"`). Every error names the
//! entry (`at[2]`, counted from 0), its key and its line. Whether targets exist and times fall
//! in the safety phase is `Scenario::validate`'s business, after the whole file is read.

use serde_json::{Map, Value};
use sim::disk::DiskFaultKind;
use sim::timeline::{CrashPointTrigger, Role, TimedFault, Timeline};
use toml_edit::{Item, TableLike};

use crate::file::{plain_value, Places};
use crate::units::{render_duration_ns, Unit};

/// Each fault's keys besides `time` and `fault`: (key, required).
const FAULT_KEYS: [(&str, &[(&str, bool)]); 9] = [
    (
        "partition",
        &[
            ("groups", false),
            ("cut", false),
            ("flapping", false),
            ("heal_after", true),
        ],
    ),
    ("crash", &[("target", false), ("restart_after", true)]),
    ("pause", &[("target", false), ("resume_after", true)]),
    (
        "disk",
        &[("kind", true), ("target", false), ("window", false)],
    ),
    ("clock_drift", &[("target", false), ("drift_ppm", true)]),
    ("clock_jump", &[("target", false), ("jump", true)]),
    ("crash_point", &[("target", false), ("trigger", true)]),
    ("wal_flip", &[("target", false)]),
    ("figure_eight", &[]),
];

/// File keys that are durations, and the field each becomes.
const DURATION_KEYS: [(&str, &str, Unit); 6] = [
    ("time", "time_ns", Unit::Nanoseconds),
    ("heal_after", "heal_after_ms", Unit::Milliseconds),
    ("restart_after", "restart_after_ms", Unit::Milliseconds),
    ("resume_after", "resume_after_ms", Unit::Milliseconds),
    ("window", "window_ms", Unit::Milliseconds),
    ("jump", "jump_ms", Unit::Milliseconds),
];

/// Reads the `at` item of a file (an array of tables) into a timeline.
pub(crate) fn parse_timeline(
    places: &mut Places<'_>,
    item: &Item,
    line: Option<usize>,
) -> Result<Timeline, crate::FileError> {
    let tables: Vec<&dyn TableLike> = match item {
        Item::ArrayOfTables(array) => array.iter().map(|table| table as &dyn TableLike).collect(),
        Item::Value(toml_edit::Value::Array(array)) => {
            let mut tables = Vec::new();
            for value in array.iter() {
                let table = value.as_inline_table().ok_or_else(|| {
                    places.error(line, "at", "expected [[at]] tables, one per fault".into())
                })?;
                tables.push(table as &dyn TableLike);
            }
            tables
        }
        _ => return Err(places.error(line, "at", "expected [[at]] tables, one per fault".into())),
    };
    let mut entries = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let path = format!("at[{index}]");
        let header_line = table
            .iter()
            .next()
            .and_then(|(key, _)| places.line_of_table_key(table, key))
            .or(line);
        if let Some(header_line) = header_line {
            places.lines.insert(path.clone(), header_line);
        }
        entries.push(parse_entry(places, table, &path, header_line)?);
    }
    Ok(Timeline { entries })
}

fn parse_entry(
    places: &mut Places<'_>,
    table: &dyn TableLike,
    path: &str,
    header_line: Option<usize>,
) -> Result<TimedFault, crate::FileError> {
    let fault_names: Vec<&str> = FAULT_KEYS.iter().map(|(name, _)| *name).collect();
    let fault_line = places.line_of_table_key(table, "fault").or(header_line);
    let fault_path = format!("{path}.fault");
    let fault = match table.get("fault").and_then(Item::as_str) {
        Some(fault) => fault,
        None if table.get("fault").is_some() => {
            return Err(places.error(fault_line, &fault_path, "expected a string".into()))
        }
        None => {
            return Err(places.error(
                header_line,
                path,
                format!("missing key `fault` ({})", fault_names.join(", ")),
            ))
        }
    };
    let Some((_, keys)) = FAULT_KEYS.iter().find(|(name, _)| *name == fault) else {
        return Err(places.error(
            fault_line,
            &fault_path,
            nearest_message(&format!("unknown fault {fault:?}"), fault, &fault_names),
        ));
    };
    let mut object = Map::new();
    for (key, item) in table.iter() {
        let key_path = format!("{path}.{key}");
        let line = places.line_of_table_key(table, key);
        if let Some(line) = line {
            places.lines.insert(key_path.clone(), line);
        }
        let valid: Vec<&str> = ["time", "fault"]
            .into_iter()
            .chain(keys.iter().map(|(name, _)| *name))
            .collect();
        if !valid.contains(&key) {
            let what = format!("unknown key for fault {fault:?}");
            return Err(places.error(line, &key_path, nearest_message(&what, key, &valid)));
        }
        let (field, value) =
            convert(key, item).map_err(|message| places.error(line, &key_path, message))?;
        object.insert(field, value);
    }
    let required = [("time", true)].into_iter().chain(keys.iter().copied());
    for (key, _) in required.filter(|(_, required)| *required) {
        if table.get(key).is_none() {
            return Err(places.error(
                header_line,
                path,
                format!("fault {fault:?} needs key `{key}`"),
            ));
        }
    }
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|error| {
        // The fault's fields are flattened into the entry, where the path is lost (".").
        let inner = error.path().to_string();
        let key_path = if inner == "." {
            path.to_string()
        } else {
            format!("{path}.{inner}")
        };
        places.error(
            places.line_of_path(&key_path).or(header_line),
            &key_path,
            error.inner().to_string(),
        )
    })
}

/// The field and JSON value of file key `key`.
fn convert(key: &str, item: &Item) -> Result<(String, Value), String> {
    let value = item
        .as_value()
        .ok_or_else(|| "expected a value, found a table".to_string())?;
    if let Some((_, field, unit)) = DURATION_KEYS.iter().find(|(name, _, _)| *name == key) {
        let text = value
            .as_str()
            .ok_or_else(|| "expected a duration such as \"3s\"".to_string())?;
        return Ok((field.to_string(), Value::from(unit.parse(text)?)));
    }
    let converted = match key {
        "target" => target_value(value)?,
        "groups" => {
            let groups = value
                .as_array()
                .ok_or("expected a list of groups, e.g. [[1, 2], [\"leader\"]]")?;
            let mut out = Vec::new();
            for group in groups.iter() {
                let members = group
                    .as_array()
                    .ok_or("expected a list of groups, e.g. [[1, 2], [\"leader\"]]")?;
                let targets: Result<Vec<Value>, String> =
                    members.iter().map(target_value).collect();
                out.push(Value::Array(targets?));
            }
            Value::Array(out)
        }
        "drift_ppm" => match (value.as_integer(), value.as_str()) {
            (Some(integer), _) => Value::from(integer),
            (None, Some(text)) => {
                let (sign, digits) = match text.strip_prefix('-') {
                    Some(rest) => (-1, rest),
                    None => (1, text),
                };
                let magnitude = Unit::PartsPerMillion.parse(digits)?;
                Value::from(sign * i64::try_from(magnitude).map_err(|_| "too large")?)
            }
            (None, None) => {
                return Err("expected a whole number of ppm or text such as \"5%\"".into())
            }
        },
        "kind" | "trigger" => {
            let names: Vec<&str> = if key == "kind" {
                DiskFaultKind::ALL.iter().map(|kind| kind.name()).collect()
            } else {
                CrashPointTrigger::ALL
                    .iter()
                    .map(|trigger| trigger.name())
                    .collect()
            };
            match value.as_str() {
                Some(name) if names.contains(&name) => Value::from(name),
                Some(name) => {
                    let what = format!("unknown {key} {name:?}");
                    return Err(nearest_message(&what, name, &names));
                }
                None => return Err(format!("expected one of {}", names.join(", "))),
            }
        }
        _ => plain_value(value)?,
    };
    Ok((key.to_string(), converted))
}

/// A target: a member id (1 or more) or a role's name.
fn target_value(value: &toml_edit::Value) -> Result<Value, String> {
    if let Some(id) = value.as_integer() {
        if id < 1 {
            return Err(format!("member {id} does not exist: ids start at 1"));
        }
        return Ok(Value::from(id));
    }
    let roles: Vec<&str> = Role::ALL.iter().map(|role| role.name()).collect();
    match value.as_str() {
        Some(name) if Role::by_name(name).is_some() => Ok(Value::from(name)),
        Some(name) => Err(nearest_message(
            &format!("unknown role {name:?}"),
            name,
            &roles,
        )),
        None => Err(format!(
            "expected a member id or a role ({})",
            roles.join(", ")
        )),
    }
}

/// `what`, the nearest of `candidates` to `given` when one is close, and every candidate.
fn nearest_message(what: &str, given: &str, candidates: &[&str]) -> String {
    let nearest = candidates
        .iter()
        .map(|candidate| (strsim::levenshtein(given, candidate), *candidate))
        .min()
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2));
    match nearest {
        Some((_, candidate)) => format!(
            "{what}; did you mean `{candidate}`? (valid: {})",
            candidates.join(", ")
        ),
        None => format!("{what} (valid: {})", candidates.join(", ")),
    }
}

/// Writes `timeline` as `[[at]]` tables, durations in human units.
pub(crate) fn write_timeline(out: &mut String, timeline: &Timeline) {
    for entry in &timeline.entries {
        let value = serde_json::to_value(entry).expect("a timed fault serialises");
        let object = value.as_object().expect("a timed fault is an object");
        out.push_str("\n[[at]]\n");
        out.push_str(&format!(
            "time = \"{}\"\n",
            render_duration_ns(entry.time_ns)
        ));
        for (field, value) in object {
            if field == "time_ns" {
                continue;
            }
            if let Some((key, _, unit)) = DURATION_KEYS.iter().find(|(_, name, _)| name == field) {
                let rendered = unit.render(value.as_u64().unwrap_or_default());
                out.push_str(&format!("{key} = \"{rendered}\"\n"));
            } else {
                out.push_str(&format!("{field} = {value}\n"));
            }
        }
    }
}
