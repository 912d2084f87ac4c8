//! Tags on vaults and objects: at most 15, names and values at most 256 characters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, quote_user_text};
use crate::limits::{MAX_TAG_NAME_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS};

/// A validated tag set. Ordered so that records serialize deterministically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    pub fn new(tags: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let map: BTreeMap<String, String> = tags.into_iter().collect();
        if map.len() > MAX_TAGS {
            return Err(Error::bad_parameter(format!(
                "Too many tags: {} given, at most {MAX_TAGS} are allowed.",
                map.len()
            )));
        }
        for (name, value) in &map {
            if name.is_empty() || name.chars().count() > MAX_TAG_NAME_CHARS {
                return Err(Error::bad_parameter(format!(
                    "Tag name {} is invalid: it must be 1 to {MAX_TAG_NAME_CHARS} characters.",
                    quote_user_text(name)
                )));
            }
            if value.chars().count() > MAX_TAG_VALUE_CHARS {
                return Err(Error::bad_parameter(format!(
                    "The value of tag {} is longer than {MAX_TAG_VALUE_CHARS} characters.",
                    quote_user_text(name)
                )));
            }
        }
        Ok(Self(map))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(count: usize) -> Vec<(String, String)> {
        (0..count)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect()
    }

    #[test]
    fn fifteen_tags_pass_sixteen_fail() {
        assert_eq!(Tags::new(n(15)).unwrap().len(), 15);
        let err = Tags::new(n(16)).unwrap_err();
        assert!(err.message.contains("16 given"));
    }

    #[test]
    fn long_tag_names_and_values_fail() {
        assert!(Tags::new([("a".repeat(257), "v".into())]).is_err());
        assert!(Tags::new([("a".into(), "v".repeat(257))]).is_err());
        assert!(Tags::new([(String::new(), "v".into())]).is_err());
        assert!(Tags::new([("a".repeat(256), "v".repeat(256))]).is_ok());
    }
}
