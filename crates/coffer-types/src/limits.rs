//! Service limits, as Azure Key Vault documents them.

/// Largest secret value, in bytes of its UTF-8 form ("25k bytes").
pub const MAX_SECRET_VALUE_BYTES: usize = 25_600;
/// Longest `contentType`.
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
/// Most tags on one vault or object.
pub const MAX_TAGS: usize = 15;
/// Longest tag name.
pub const MAX_TAG_NAME_CHARS: usize = 256;
/// Longest tag value.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// Soft-delete retention bounds and default, in days.
pub const MIN_RETENTION_DAYS: u32 = 7;
pub const MAX_RETENTION_DAYS: u32 = 90;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Largest page a list call returns (`maxresults` is 1..=25).
pub const MAX_PAGE_SIZE: usize = 25;
