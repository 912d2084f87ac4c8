//! Parsing of flag values that clap cannot check on its own: tags, times, SKUs.
//!
//! Tags and times are parsed after clap, so that a bad value is reported like any other
//! rejected parameter, `error: (BadParameter) ...` with exit status 1.

use std::collections::HashMap;

use clap::ValueEnum;
use coffer_client::proto::Sku;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CliError;

/// `--sku`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SkuArg {
    Standard,
    Premium,
}

impl From<SkuArg> for Sku {
    fn from(sku: SkuArg) -> Self {
        match sku {
            SkuArg::Standard => Sku::Standard,
            SkuArg::Premium => Sku::Premium,
        }
    }
}

/// The lower-case name `az` prints for a SKU on the wire (an `i32`, which may be unknown to this
/// client if the server is newer).
pub fn sku_name(sku: i32) -> &'static str {
    match Sku::try_from(sku) {
        Ok(Sku::Standard) => "standard",
        Ok(Sku::Premium) => "premium",
        Ok(Sku::Unspecified) => "unspecified",
        Err(_) => "unknown",
    }
}

/// Parses `--tags k=v ...`. A later duplicate key wins, as in `az`. An empty list is allowed:
/// on update commands `--tags` with no pairs clears the tags.
pub fn parse_tags(pairs: &[String]) -> Result<HashMap<String, String>, CliError> {
    let mut tags = HashMap::with_capacity(pairs.len());
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CliError::bad_parameter(format!("--tags: {pair:?} is not of the form key=value"))
        })?;
        if key.is_empty() {
            return Err(CliError::bad_parameter(format!(
                "--tags: {pair:?} has an empty key"
            )));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(tags)
}

/// Parses an optional RFC 3339 date-time flag into Unix seconds, the wire form.
pub fn parse_time(flag: &str, value: Option<&str>) -> Result<Option<i64>, CliError> {
    let Some(value) = value else {
        return Ok(None);
    };
    OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map(|time| Some(time.unix_timestamp()))
        .map_err(|err| {
            CliError::bad_parameter(format!(
                "{flag}: {value:?} is not an RFC 3339 date-time such as 2030-01-31T12:00:00Z ({err})"
            ))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn tags_parse_key_value_pairs() {
        let tags = parse_tags(&strings(&["env=prod", "owner=team=a", "empty="])).unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(tags["env"], "prod");
        // Only the first '=' splits, so values may contain '='.
        assert_eq!(tags["owner"], "team=a");
        assert_eq!(tags["empty"], "");
    }

    #[test]
    fn tags_later_duplicate_wins() {
        let tags = parse_tags(&strings(&["a=1", "a=2"])).unwrap();
        assert_eq!(tags["a"], "2");
    }

    #[test]
    fn tags_reject_missing_equals_and_empty_key() {
        let err = parse_tags(&strings(&["ok=1", "novalue"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "(BadParameter) --tags: \"novalue\" is not of the form key=value"
        );
        let err = parse_tags(&strings(&["=v"])).unwrap_err();
        assert!(err.to_string().starts_with("(BadParameter) "), "{err}");
    }

    #[test]
    fn tags_may_be_empty() {
        assert!(parse_tags(&[]).unwrap().is_empty());
    }

    #[test]
    fn time_parses_rfc3339_to_unix_seconds() {
        assert_eq!(parse_time("--expires", None).unwrap(), None);
        assert_eq!(
            parse_time("--expires", Some("2030-01-31T12:00:00Z")).unwrap(),
            Some(1_896_091_200)
        );
        assert_eq!(
            parse_time("--not-before", Some("1970-01-01T01:00:00+01:00")).unwrap(),
            Some(0)
        );
    }

    #[test]
    fn time_rejects_malformed_values() {
        for bad in [
            "2030-13-01T00:00:00Z",
            "2030-01-31",
            "2030-01-31T12:00:00",
            "tomorrow",
            "",
        ] {
            let err = parse_time("--expires", Some(bad)).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("(BadParameter) --expires: "), "{text}");
            assert!(text.contains("RFC 3339"), "{text}");
        }
    }

    #[test]
    fn sku_names() {
        assert_eq!(sku_name(Sku::from(SkuArg::Premium) as i32), "premium");
        assert_eq!(sku_name(Sku::Standard as i32), "standard");
        assert_eq!(sku_name(99), "unknown");
    }
}

/// A secret value given on the command line, held so that `Debug` output of the parsed
/// arguments never shows it.
#[derive(Clone)]
pub struct SecretArg(pub String);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretArg(<redacted>)")
    }
}
