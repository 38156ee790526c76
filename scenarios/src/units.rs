//! Human units in scenario files: durations (`"250ms"`, `"12s"`, `"2m"`), rates (`"3/min"`) and
//! shares (`"5%"`), converted to the integer units the simulator's fields carry (`_ms`, `_ns`,
//! `_seconds`, `_per_minute`, `_ppm`), and back for writing files.
//!
//! It knows nothing of TOML or of which field is which; `file` decides by the field's suffix.

/// The integer unit a field carries, from its name's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Nanoseconds,
    Milliseconds,
    Seconds,
    PerMinute,
    PartsPerMillion,
}

impl Unit {
    /// The unit of field `name`, if its suffix names one.
    pub(crate) fn of_field(name: &str) -> Option<Unit> {
        [
            ("_ns", Unit::Nanoseconds),
            ("_ns_min", Unit::Nanoseconds),
            ("_ns_max", Unit::Nanoseconds),
            ("_ns_mean", Unit::Nanoseconds),
            ("_ms", Unit::Milliseconds),
            ("_ms_min", Unit::Milliseconds),
            ("_ms_max", Unit::Milliseconds),
            ("_seconds", Unit::Seconds),
            ("_per_minute", Unit::PerMinute),
            ("_ppm", Unit::PartsPerMillion),
        ]
        .into_iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|(_, unit)| unit)
    }

    /// Parses `text` into this unit; the error says what was expected.
    pub(crate) fn parse(self, text: &str) -> Result<u64, String> {
        match self {
            Unit::Nanoseconds => parse_duration_ns(text),
            Unit::Milliseconds => whole(parse_duration_ns(text)?, 1_000_000, text, "milliseconds"),
            Unit::Seconds => whole(parse_duration_ns(text)?, 1_000_000_000, text, "seconds"),
            Unit::PerMinute => parse_rate_per_minute(text),
            Unit::PartsPerMillion => parse_share_ppm(text),
        }
    }

    /// Renders `value` (in this unit) the way a person writes it in a file.
    pub(crate) fn render(self, value: u64) -> String {
        match self {
            Unit::Nanoseconds => render_duration_ns(value),
            Unit::Milliseconds => render_duration_ns(value.saturating_mul(1_000_000)),
            Unit::Seconds => render_duration_ns(value.saturating_mul(1_000_000_000)),
            Unit::PerMinute => format!("{value}/min"),
            Unit::PartsPerMillion => render_share(value),
        }
    }
}

/// Durations: a whole number and a unit among `ns`, `us`, `ms`, `s`, `m`, `h`.
const DURATION_UNITS_NS: [(&str, u64); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end = text
        .char_indices()
        .find(|(_, character)| !character.is_ascii_digit())
        .map_or(text.len(), |(position, _)| position);
    text.split_at(end)
}

/// `"250ms"` → 250,000,000.
pub(crate) fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a duration: write a whole number and a unit, e.g. \"250ms\", \"12s\", \"2m\" (units ns, us, ms, s, m, h)")
    };
    if text.trim_start().starts_with('-') {
        return Err(format!("{text:?} is negative: a duration is at least 0"));
    }
    let (number, unit) = split_number(text);
    let value: u64 = number.parse().map_err(|_| bad())?;
    let scale = DURATION_UNITS_NS
        .iter()
        .find(|(name, _)| *name == unit.trim())
        .map(|(_, scale)| *scale)
        .ok_or_else(bad)?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn whole(ns: u64, unit_ns: u64, text: &str, unit_name: &str) -> Result<u64, String> {
    if ns % unit_ns != 0 {
        return Err(format!("{text:?} is not a whole number of {unit_name}"));
    }
    Ok(ns / unit_ns)
}

/// The largest unit that renders `ns` exactly: 60,000,000,000 → `"1m"`, 250,000,000 → `"250ms"`.
pub(crate) fn render_duration_ns(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    DURATION_UNITS_NS
        .iter()
        .rev()
        .find(|(_, scale)| ns % scale == 0)
        .map(|(name, scale)| format!("{}{name}", ns / scale))
        .unwrap_or_else(|| format!("{ns}ns"))
}

/// `"3/min"`, `"1/s"`, `"30/h"` → events per minute (a whole number).
pub(crate) fn parse_rate_per_minute(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a rate: write e.g. \"3/min\", \"1/s\" or \"30/h\"");
    let (count, per) = text.split_once('/').ok_or_else(bad)?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    match per.trim() {
        "min" | "m" => Ok(count),
        "s" => count
            .checked_mul(60)
            .ok_or_else(|| format!("{text:?} is too high")),
        "h" => {
            if count % 60 != 0 {
                return Err(format!(
                    "{text:?} is not a whole number per minute: use a multiple of 60/h"
                ));
            }
            Ok(count / 60)
        }
        _ => Err(bad()),
    }
}

/// `"5%"` → 50,000 ppm; `"0.1%"` → 1,000 ppm; a bare number is taken as ppm.
pub(crate) fn parse_share_ppm(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a share: write e.g. \"5%\", \"0.1%\" or parts per million as a number"
        )
    };
    let Some(percent) = text.trim().strip_suffix('%') else {
        return text.trim().parse().map_err(|_| bad());
    };
    let (whole_part, fraction) = percent.split_once('.').unwrap_or((percent, ""));
    if fraction.len() > 4 || !fraction.chars().all(|digit| digit.is_ascii_digit()) {
        return Err(bad());
    }
    let whole_value: u64 = whole_part.trim().parse().map_err(|_| bad())?;
    let fraction_value: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<4}").parse().map_err(|_| bad())?
    };
    let ppm = whole_value
        .checked_mul(10_000)
        .and_then(|ppm| ppm.checked_add(fraction_value))
        .ok_or_else(bad)?;
    if ppm > 1_000_000 {
        return Err(format!("{text:?} is more than 100%"));
    }
    Ok(ppm)
}

fn render_share(ppm: u64) -> String {
    let (whole_part, fraction) = (ppm / 10_000, ppm % 10_000);
    if fraction == 0 {
        format!("{whole_part}%")
    } else {
        let digits = format!("{fraction:04}");
        format!("{whole_part}.{}%", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::Unit;

    /// Goal: every unit parses what a person writes and renders back to text that parses to the
    /// same number; nonsense, negatives and overflow are refused with a message.
    /// Method: a table of good inputs, a round trip over many values, a list of bad ones.
    #[test]
    fn units_parse_render_and_refuse() {
        let good = [
            (Unit::Milliseconds, "250ms", 250),
            (Unit::Milliseconds, "12s", 12_000),
            (Unit::Milliseconds, "2m", 120_000),
            (Unit::Nanoseconds, "35ms", 35_000_000),
            (Unit::Seconds, "1h", 3_600),
            (Unit::PerMinute, "3/min", 3),
            (Unit::PerMinute, "1/s", 60),
            (Unit::PerMinute, "120/h", 2),
            (Unit::PartsPerMillion, "5%", 50_000),
            (Unit::PartsPerMillion, "0.1%", 1_000),
            (Unit::PartsPerMillion, "250", 250),
        ];
        for (unit, text, value) in good {
            assert_eq!(unit.parse(text), Ok(value), "{text}");
        }
        for value in [0_u64, 1, 7, 250, 1_000, 60_000, 86_400_000, 123_456_789] {
            for unit in [
                Unit::Nanoseconds,
                Unit::Milliseconds,
                Unit::Seconds,
                Unit::PerMinute,
                Unit::PartsPerMillion,
            ] {
                if unit == Unit::PartsPerMillion && value > 1_000_000 {
                    continue;
                }
                let text = unit.render(value);
                assert_eq!(unit.parse(&text), Ok(value), "{unit:?} {value} as {text}");
            }
        }
        let bad = [
            (Unit::Milliseconds, "-5s"),
            (Unit::Milliseconds, "5 parsecs"),
            (Unit::Milliseconds, "1500us"),
            (Unit::Nanoseconds, "99999999999999999999h"),
            (Unit::PerMinute, "3 per minute"),
            (Unit::PerMinute, "1/h"),
            (Unit::PartsPerMillion, "101%"),
            (Unit::PartsPerMillion, "a%"),
        ];
        for (unit, text) in bad {
            let error = unit.parse(text).unwrap_err();
            assert!(error.contains(text), "{text}: {error}");
        }
    }
}
