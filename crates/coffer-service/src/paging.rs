//! Page tokens: opaque to callers (base64url of the position to resume after).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_types::Error;
use coffer_types::limits::MAX_PAGE_SIZE;

/// One page of results and the token for the next, if any.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Listing<T> {
    /// The same page with every item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            items: self.items.into_iter().map(f).collect(),
            next_page_token: self.next_page_token,
        }
    }
}

pub(crate) fn page_size(requested: Option<u32>) -> Result<usize, Error> {
    match requested {
        None | Some(0) => Ok(MAX_PAGE_SIZE),
        Some(n) if (n as usize) <= MAX_PAGE_SIZE => Ok(n as usize),
        Some(n) => Err(Error::bad_parameter(format!(
            "maxresults must be between 1 and {MAX_PAGE_SIZE}; {n} was given."
        ))),
    }
}

pub(crate) fn decode_token(token: Option<&str>) -> Result<Option<String>, Error> {
    let bad = || Error::bad_parameter("The page token is not valid.");
    match token {
        None | Some("") => Ok(None),
        Some(token) => {
            let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
            let text = String::from_utf8(bytes).map_err(|_| bad())?;
            // Positions are names or versions: a token with anything else was not ours.
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(bad());
            }
            Ok(Some(text))
        }
    }
}

pub(crate) fn encode_token(next: Option<String>) -> Option<String> {
    next.map(|n| URL_SAFE_NO_PAD.encode(n.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = encode_token(Some("db-pass".into())).unwrap();
        assert_eq!(
            decode_token(Some(&token)).unwrap().as_deref(),
            Some("db-pass")
        );
        assert_eq!(decode_token(Some("")).unwrap(), None);
        assert!(decode_token(Some("!!!")).is_err());
        let hostile = URL_SAFE_NO_PAD.encode(b"a\0b");
        assert!(decode_token(Some(&hostile)).is_err());
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None).unwrap(), 25);
        assert_eq!(page_size(Some(3)).unwrap(), 3);
        assert!(page_size(Some(26)).is_err());
    }
}
