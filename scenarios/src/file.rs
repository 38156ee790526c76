//! Reading and writing scenario files: TOML over the fields of `sim::Scenario`.
//!
//! A file starts from a built-in scenario (`extends`, `no_faults` by default) and overrides what
//! it names, so every field the simulator has is settable and everything left out keeps a
//! documented default. Keys are the field names of `sim::Scenario` and its parts; fields whose
//! names end in a unit (`_ms`, `_ns`, `_seconds`, `_per_minute`, `_ppm`) also take human text
//! (`"250ms"`, `"3/min"`, `"5%"`), and fault-rate lists take a table (`{ bit_flip = "2/min" }`).
//!
//! Every error names the file, the line, the key and why, and suggests the nearest valid key for
//! an unknown one. Nothing here runs a scenario.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use sim::Scenario;
use toml_edit::{Document, Item, TableLike};

use crate::units::Unit;

/// Keys a file may hold besides the scenario's fields (`at`: the timeline's entries).
const FILE_KEYS: [&str; 3] = ["extends", "description", "at"];
/// The built-in a file starts from unless it says `extends`.
pub const DEFAULT_BASE: &str = "no_faults";

/// A scenario read from a file, with the file's own description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioFile {
    /// The scenario.
    pub scenario: Scenario,
    /// What the scenario hunts, as the file says (`description = "..."`).
    pub description: Option<String>,
}

/// A file that cannot be used: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// The file, as named to `parse`.
    pub file: String,
    /// 1-based line, when the error has a place.
    pub line: Option<usize>,
    /// The dotted key at fault (`network.drop_ppm`), when there is one.
    pub key: Option<String>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(formatter, ": {key}")?;
        }
        write!(formatter, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// Where each key of a file is, by dotted path.
pub(crate) struct Places<'text> {
    text: &'text str,
    file: &'text str,
    pub(crate) lines: BTreeMap<String, usize>,
}

impl Places<'_> {
    fn line_of_offset(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|byte| *byte == b'\n')
            .count()
            + 1
    }

    /// The line of `key` in `table`.
    pub(crate) fn line_of_table_key(&self, table: &dyn TableLike, key: &str) -> Option<usize> {
        line_of_key(self, table, key)
    }

    pub(crate) fn error(&self, line: Option<usize>, key: &str, message: String) -> FileError {
        FileError {
            file: self.file.to_string(),
            line,
            key: (!key.is_empty()).then(|| key.to_string()),
            message,
        }
    }

    /// The line of `path` or of its nearest named parent (`a.b[2].c` → `a.b`).
    pub(crate) fn line_of_path(&self, path: &str) -> Option<usize> {
        let mut candidate = path.to_string();
        loop {
            if let Some(line) = self.lines.get(&candidate) {
                return Some(*line);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate.truncate(cut);
        }
    }
}

/// Parses scenario file `text`; `file` names it in errors (and gives the scenario its name when
/// the file sets none).
pub fn parse(text: &str, file: &str) -> Result<ScenarioFile, FileError> {
    let mut places = Places {
        text,
        file,
        lines: BTreeMap::new(),
    };
    let document = Document::parse(text).map_err(|error| {
        let line = error.span().map(|span| places.line_of_offset(span.start));
        places.error(
            line,
            "",
            format!("not valid TOML: {}", error.message().trim()),
        )
    })?;
    let root = document.as_table();
    let extends = match root.get("extends") {
        None => DEFAULT_BASE.to_string(),
        Some(item) => item.as_str().map(str::to_string).ok_or_else(|| {
            places.error(
                line_of_key(&places, root, "extends"),
                "extends",
                "expected the name of a built-in scenario, as a string".into(),
            )
        })?,
    };
    let base = Scenario::by_name(&extends).ok_or_else(|| {
        places.error(
            line_of_key(&places, root, "extends"),
            "extends",
            format!(
                "no built-in scenario is called {extends:?}; built in: {}",
                Scenario::BUILT_IN.join(", ")
            ),
        )
    })?;
    let description = match root.get("description") {
        None => None,
        Some(item) => Some(item.as_str().map(str::to_string).ok_or_else(|| {
            places.error(
                line_of_key(&places, root, "description"),
                "description",
                "expected a string".into(),
            )
        })?),
    };
    let mut value = serde_json::to_value(&base).expect("a scenario serialises");
    if root.get("name").is_none() {
        value["name"] = Value::String(file_stem(file));
    }
    merge_table(&mut places, &mut value, root, "")?;
    if let Some(item) = root.get("at") {
        let line = line_of_key(&places, root, "at");
        let timeline = crate::at::parse_timeline(&mut places, item, line)?;
        value["timeline"] = serde_json::to_value(&timeline).expect("a timeline serialises");
    }
    let scenario: Scenario = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        places.error(places.line_of_path(&path), &path, error.inner().to_string())
    })?;
    scenario.validate().map_err(|message| {
        let key = validation_key(&message, &places);
        // A timeline message starts with its key (`at[0].groups: ...`): said once is enough.
        let message = key
            .as_deref()
            .and_then(|key| message.strip_prefix(&format!("{key}: ")))
            .map_or(message.clone(), str::to_string);
        places.error(
            key.as_deref().and_then(|key| places.line_of_path(key)),
            key.as_deref().unwrap_or(""),
            message,
        )
    })?;
    Ok(ScenarioFile {
        scenario,
        description,
    })
}

/// The dotted key a validation message starts with (`network.drop_ppm (...) is ...`), or the
/// budget for a budget error, if the file named it.
fn validation_key(message: &str, places: &Places<'_>) -> Option<String> {
    if message.contains("fault budget") {
        return Some("budget".into());
    }
    let first = message.split([' ', '(']).next().unwrap_or_default();
    let first = first.trim_end_matches(':');
    (!first.is_empty() && places.line_of_path(first).is_some()).then(|| first.to_string())
}

fn file_stem(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("scenario_file")
        .to_string()
}

fn line_of_key(places: &Places<'_>, table: &dyn TableLike, key: &str) -> Option<usize> {
    table
        .key(key)
        .and_then(|key| key.span())
        .map(|span| places.line_of_offset(span.start))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Overrides `base` (an object) with the keys of `table`.
fn merge_table(
    places: &mut Places<'_>,
    base: &mut Value,
    table: &dyn TableLike,
    path: &str,
) -> Result<(), FileError> {
    for (key, item) in table.iter() {
        let key_path = join(path, key);
        let line = line_of_key(places, table, key);
        if let Some(line) = line {
            places.lines.insert(key_path.clone(), line);
        }
        if path.is_empty() && FILE_KEYS.contains(&key) {
            continue;
        }
        if path.is_empty() && key == "timeline" {
            return Err(places.error(
                line,
                &key_path,
                "write the timeline as [[at]] tables, one per fault".into(),
            ));
        }
        let object = base.as_object_mut().expect("merge_table is given objects");
        if key_path == "workload.auth" && !object.contains_key(key) {
            // Off in every built-in, so absent from the base: a file turns it on by naming it.
            let defaults = sim::auth_traffic::AuthTraffic::default();
            let defaults = serde_json::to_value(defaults).expect("auth settings serialise");
            object.insert(key.to_string(), defaults);
        }
        if key_path == "workload.locks" && !object.contains_key(key) {
            // Off in every built-in too: a file turns it on by naming it.
            let defaults = sim::lock_traffic::LockTraffic::default();
            let defaults = serde_json::to_value(defaults).expect("lock settings serialise");
            object.insert(key.to_string(), defaults);
        }
        let Some(slot) = object.get_mut(key) else {
            let known: Vec<&str> = object.keys().map(String::as_str).collect();
            let extra = if path.is_empty() { &FILE_KEYS[..] } else { &[] };
            return Err(places.error(line, &key_path, unknown_key_message(key, &known, extra)));
        };
        if let (Value::Object(_), Some(inner)) = (&*slot, item.as_table_like()) {
            merge_table(places, slot, inner, &key_path)?;
            continue;
        }
        let converted =
            convert(item, slot, key).map_err(|message| places.error(line, &key_path, message))?;
        *slot = converted;
    }
    Ok(())
}

fn unknown_key_message(key: &str, known: &[&str], extra: &[&str]) -> String {
    let mut candidates: Vec<&str> = known.iter().chain(extra).copied().collect();
    candidates.sort_unstable();
    let nearest = candidates
        .iter()
        .map(|candidate| (strsim::levenshtein(key, candidate), *candidate))
        .min()
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2));
    match nearest {
        Some((_, candidate)) => format!(
            "unknown key; did you mean `{candidate}`? (valid here: {})",
            candidates.join(", ")
        ),
        None => format!("unknown key (valid here: {})", candidates.join(", ")),
    }
}

/// The JSON value for TOML `item` replacing `current` (whose type it must match) in field `key`.
fn convert(item: &Item, current: &Value, key: &str) -> Result<Value, String> {
    let unit = Unit::of_field(key);
    if let (Value::Array(_), Some(table)) = (current, item.as_table_like()) {
        if key.ends_with("_per_minute") {
            return rate_table(table);
        }
    }
    let Some(value) = item.as_value() else {
        return Err(format!("expected {}, found a table", type_name(current)));
    };
    match current {
        Value::Number(number) => number_value(value, number, unit),
        Value::Bool(_) => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "expected true or false".to_string()),
        Value::String(_) => value
            .as_str()
            .map(|text| Value::String(text.to_string()))
            .ok_or_else(|| "expected a string".to_string()),
        Value::Array(_) => match value.as_array() {
            Some(array) => Ok(Value::Array(
                array.iter().map(plain_value).collect::<Result<_, _>>()?,
            )),
            None => Err("expected a list".into()),
        },
        Value::Null | Value::Object(_) => plain_value(value),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "a value",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// A number field: an integer, or text in the field's unit.
fn number_value(
    value: &toml_edit::Value,
    current: &Number,
    unit: Option<Unit>,
) -> Result<Value, String> {
    let unsigned = current.is_u64();
    if let Some(integer) = value.as_integer() {
        if unsigned && integer < 0 {
            return Err(format!("{integer} is negative: expected 0 or more"));
        }
        return Ok(Value::from(integer));
    }
    match (value.as_str(), unit) {
        (Some(text), Some(unit)) => unit.parse(text).map(Value::from),
        (Some(text), None) => Err(format!(
            "expected a whole number, found the string {text:?}"
        )),
        (None, Some(unit)) => Err(format!(
            "expected a whole number or text such as {:?}",
            unit.render(match unit {
                Unit::PerMinute => 3,
                Unit::PartsPerMillion => 50_000,
                _ => 250,
            })
        )),
        (None, None) => Err("expected a whole number".into()),
    }
}

/// `{ bit_flip = "2/min", lost_write = 1 }` → `[["bit_flip", 2], ["lost_write", 1]]`, in file order.
fn rate_table(table: &dyn TableLike) -> Result<Value, String> {
    let mut pairs = Vec::new();
    for (kind, item) in table.iter() {
        let rate = match item.as_value() {
            Some(value) => match (value.as_integer(), value.as_str()) {
                (Some(integer), _) if integer >= 0 => integer as u64,
                (_, Some(text)) => crate::units::parse_rate_per_minute(text)
                    .map_err(|message| format!("{kind}: {message}"))?,
                _ => return Err(format!("{kind}: expected a rate such as \"2/min\"")),
            },
            None => return Err(format!("{kind}: expected a rate such as \"2/min\"")),
        };
        pairs.push(Value::Array(vec![
            Value::String(kind.to_string()),
            Value::from(rate),
        ]));
    }
    Ok(Value::Array(pairs))
}

/// A TOML value as JSON, with no unit conversion (inside lists and free-form fields).
pub(crate) fn plain_value(value: &toml_edit::Value) -> Result<Value, String> {
    use toml_edit::Value as Toml;
    Ok(match value {
        Toml::String(text) => Value::String(text.value().clone()),
        Toml::Integer(integer) => Value::from(*integer.value()),
        Toml::Float(float) => Number::from_f64(*float.value())
            .map(Value::Number)
            .ok_or("a float that is not a number")?,
        Toml::Boolean(flag) => Value::Bool(*flag.value()),
        Toml::Datetime(_) => return Err("dates are not used in scenarios".into()),
        Toml::Array(array) => {
            Value::Array(array.iter().map(plain_value).collect::<Result<_, _>>()?)
        }
        Toml::InlineTable(table) => {
            let mut object = Map::new();
            for (key, inner) in table.iter() {
                object.insert(key.to_string(), plain_value(inner)?);
            }
            Value::Object(object)
        }
    })
}

/// Writes `scenario` as a complete scenario file (every field, durations and rates in human
/// units) that `parse` reads back to an equal scenario.
pub fn to_toml(scenario: &Scenario, description: Option<&str>) -> String {
    let value = serde_json::to_value(scenario).expect("a scenario serialises");
    let object = value.as_object().expect("a scenario is an object");
    let mut out = String::new();
    if let Some(description) = description {
        out.push_str(&format!("description = {}\n", quote(description)));
    }
    out.push_str(&format!("extends = {}\n", quote(DEFAULT_BASE)));
    let mut fields = object.clone();
    fields.remove("timeline");
    write_table(&mut out, &fields, "");
    crate::at::write_timeline(&mut out, &scenario.timeline);
    out
}

fn write_table(out: &mut String, object: &Map<String, Value>, path: &str) {
    for (key, value) in object {
        // An absent optional field keeps the base's default (TOML has no null).
        if !value.is_object() && !value.is_null() {
            out.push_str(&format!("{key} = {}\n", render_value(key, value)));
        }
    }
    for (key, value) in object {
        if let Value::Object(inner) = value {
            let inner_path = join(path, key);
            out.push_str(&format!("\n[{inner_path}]\n"));
            write_table(out, inner, &inner_path);
        }
    }
}

fn render_value(key: &str, value: &Value) -> String {
    let unit = Unit::of_field(key);
    match value {
        Value::Number(number) => match (number.as_u64(), unit) {
            (Some(unsigned), Some(unit)) => quote(&unit.render(unsigned)),
            _ => number.to_string(),
        },
        Value::Array(items) if key.ends_with("_per_minute") => {
            let pairs: Vec<String> = items
                .iter()
                .filter_map(|pair| {
                    let kind = pair.get(0)?.as_str()?;
                    let rate = pair.get(1)?.as_u64()?;
                    Some(format!("{kind} = {}", quote(&Unit::PerMinute.render(rate))))
                })
                .collect();
            if pairs.is_empty() {
                "{}".to_string()
            } else {
                format!("{{ {} }}", pairs.join(", "))
            }
        }
        Value::Array(items) => {
            let rendered: Vec<String> = items.iter().map(|item| render_value("", item)).collect();
            format!("[{}]", rendered.join(", "))
        }
        Value::String(text) => quote(text),
        Value::Object(fields) => {
            let rendered: Vec<String> = fields
                .iter()
                .filter(|(_, inner)| !inner.is_null())
                .map(|(name, inner)| format!("{name} = {}", render_value(name, inner)))
                .collect();
            format!("{{ {} }}", rendered.join(", "))
        }
        other => other.to_string(),
    }
}

/// A TOML basic string (JSON's escapes are valid TOML escapes for the text scenarios hold).
fn quote(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}
