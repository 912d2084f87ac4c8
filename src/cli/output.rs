//! Rendering results: the `az`-shaped JSON form, aligned tables, and `--query`.

use clap::ValueEnum;
use serde_json::Value;
use std::io::Write;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CliError, GlobalArgs};

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Rows for table output. Column widths are computed when printed.
#[derive(Debug, Default)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// Prints a result: the `--query` selection of `json` if a query was given, else `json` or the
/// table. `table` is built only when needed.
pub fn print(
    global: &GlobalArgs,
    json: &Value,
    table: impl FnOnce() -> Table,
) -> Result<(), CliError> {
    let text = match (&global.query, global.output) {
        (Some(path), _) => format_query_result(query(json, path)?),
        (None, OutputFormat::Json) => pretty(json),
        (None, OutputFormat::Table) => format_table(&table()),
    };
    emit(&text)
}

/// Writes `text` and a newline to stdout (nothing at all for empty text).
fn emit(text: &str) -> Result<(), CliError> {
    if text.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // `coffer secret list | head -1` closes the pipe early; that is not a failure.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(CliError::Local {
            code: "OutputError",
            message: format!("cannot write to stdout: {err}"),
        }),
    }
}

fn pretty(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Follows a dotted path (`attributes.enabled`; a numeric segment indexes an array) into
/// `value`. An empty path or `@` selects the whole value.
pub fn query<'a>(value: &'a Value, path: &str) -> Result<&'a Value, CliError> {
    let path = path.trim();
    if path.is_empty() || path == "@" {
        return Ok(value);
    }
    let mut current = value;
    for segment in path.split('.') {
        let next = match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get(index)),
            _ => None,
        };
        current = next.ok_or_else(|| {
            CliError::bad_parameter(format!(
                "--query: {path:?} does not match the result (no {segment:?})"
            ))
        })?;
    }
    Ok(current)
}

/// A string prints raw (so `--query value` is usable in scripts), other scalars as JSON,
/// objects and arrays as pretty JSON.
pub fn format_query_result(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(_) | Value::Array(_) => pretty(value),
        scalar => scalar.to_string(),
    }
}

/// Aligned columns with a dashed rule under the headers, like `az -o table`. An empty table
/// prints nothing, as `az` does.
pub fn format_table(table: &Table) -> String {
    if table.rows.is_empty() {
        return String::new();
    }
    let mut widths: Vec<usize> = table.headers.iter().map(|h| h.chars().count()).collect();
    for row in &table.rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut lines = Vec::with_capacity(table.rows.len() + 2);
    let headers: Vec<String> = table.headers.iter().map(|h| (*h).to_owned()).collect();
    lines.push(format_row(&headers, &widths));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    lines.push(format_row(&rule, &widths));
    for row in &table.rows {
        lines.push(format_row(row, &widths));
    }
    lines.join("\n")
}

fn format_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if index > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count());
        line.extend(std::iter::repeat_n(' ', pad));
    }
    line.trim_end().to_owned()
}

/// Unix seconds as an RFC 3339 JSON string; `null` if out of range.
pub fn time_json(unix: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// An optional time as JSON, `null` when absent.
pub fn opt_time_json(unix: Option<i64>) -> Value {
    unix.map_or(Value::Null, time_json)
}

/// A JSON scalar as a table cell: strings unquoted, `null` as empty.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "attributes": {"enabled": true, "expires": null, "recoverableDays": 90},
            "name": "db",
            "tags": {"env": "prod"},
            "value": "s3cret",
            "versions": [{"name": "v1"}, {"name": "v2"}]
        })
    }

    #[test]
    fn query_selects_nested_fields() {
        let value = sample();
        assert_eq!(query(&value, "value").unwrap(), &json!("s3cret"));
        assert_eq!(query(&value, "attributes.enabled").unwrap(), &json!(true));
        assert_eq!(query(&value, "attributes.expires").unwrap(), &Value::Null);
        assert_eq!(query(&value, "tags.env").unwrap(), &json!("prod"));
        assert_eq!(query(&value, "versions.1.name").unwrap(), &json!("v2"));
        assert_eq!(query(&value, "").unwrap(), &value);
        assert_eq!(query(&value, "@").unwrap(), &value);
    }

    #[test]
    fn query_reports_paths_that_do_not_match() {
        let value = sample();
        for bad in [
            "valu",
            "attributes.enabled.x",
            "versions.7",
            "versions.x",
            "a..b",
        ] {
            let err = query(&value, bad).unwrap_err();
            assert!(
                err.to_string().starts_with("(BadParameter) --query"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn query_results_print_strings_raw_and_the_rest_as_json() {
        let value = sample();
        assert_eq!(
            format_query_result(query(&value, "value").unwrap()),
            "s3cret"
        );
        assert_eq!(format_query_result(&json!(true)), "true");
        assert_eq!(format_query_result(&json!(90)), "90");
        assert_eq!(format_query_result(&Value::Null), "null");
        assert_eq!(
            format_query_result(query(&value, "tags").unwrap()),
            "{\n  \"env\": \"prod\"\n}"
        );
    }

    #[test]
    fn table_columns_are_aligned() {
        let table = Table {
            headers: vec!["Name", "Enabled"],
            rows: vec![
                vec!["a".to_owned(), "true".to_owned()],
                vec!["longer-name".to_owned(), "false".to_owned()],
            ],
        };
        assert_eq!(
            format_table(&table),
            "Name         Enabled\n-----------  -------\na            true\nlonger-name  false"
        );
        assert_eq!(format_table(&Table::default()), "");
    }

    #[test]
    fn times_render_as_rfc3339() {
        assert_eq!(time_json(1_896_091_200), json!("2030-01-31T12:00:00Z"));
        assert_eq!(opt_time_json(None), Value::Null);
        assert_eq!(time_json(i64::MAX), Value::Null);
    }
}
