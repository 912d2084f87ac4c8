//! Action strings and Azure's wildcard patterns over them.
//!
//! An action is `{Provider}/{resourceType}/.../{verb}` (`Microsoft.KeyVault/vaults/read`). A
//! pattern is an action in which `*` stands for any run of characters, `/` included, so
//! `Microsoft.KeyVault/vaults/*/read` matches `Microsoft.KeyVault/vaults/secrets/read` and `*`
//! matches every action. Matching ignores ASCII case, as Azure's does.
//!
//! Every function here runs in time bounded by the product of its inputs' lengths, without
//! recursion, so a hostile pattern cannot exhaust the stack or backtrack exponentially.

/// Longest pattern [`patterns_may_overlap`] decides exactly; longer ones (which validation
/// refuses anyway) are assumed to overlap.
const MAX_OVERLAP_LEN: usize = 1024;

/// Whether `pattern` matches `action`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p = pattern.as_bytes();
    let s = action.as_bytes();
    let (mut pi, mut si) = (0, 0);
    // The last `*` seen, and where in `s` the run it consumes currently ends: on a mismatch
    // the star takes one more character and matching resumes after it. Stars before the last
    // one never need to take more, which is what keeps this linear in the number of retries.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((star_pi, star_si)) = star {
            star = Some((star_pi, star_si + 1));
            pi = star_pi + 1;
            si = star_si + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Whether every action `granted` (itself possibly a pattern) can match is matched by `holder`.
///
/// The approximation is sound, never wrongly true: `granted` is read as a literal string in
/// which a `*` of `holder` may consume anything, the `*`s of `granted` included, while a
/// literal character of `holder` matches only the same literal character of `granted`. When
/// that succeeds, the same alignment matches every expansion of `granted`'s stars, since each
/// expansion sits inside a run one of `holder`'s stars consumed. It may be wrongly false
/// (only for contrived pairs of patterns); and a grant that only several of the holder's
/// patterns cover together is not recognised: callers test one holder pattern at a time.
pub fn pattern_covers(holder: &str, granted: &str) -> bool {
    action_matches(holder, granted)
}

/// Whether some action could be matched by both patterns, decided exactly (ASCII case
/// ignored) for patterns up to 1024 bytes; for longer ones the answer is `true`, which is the
/// safe answer where this is used: to ask whether a `notActions` pattern could take away part
/// of a grant.
pub fn patterns_may_overlap(a: &str, b: &str) -> bool {
    let a = a.as_bytes();
    let b = b.as_bytes();
    if a.len() > MAX_OVERLAP_LEN || b.len() > MAX_OVERLAP_LEN {
        return true;
    }
    // Reachability over pairs (i, j): some string is matched by both a[..i] and b[..j]. A star
    // may be left (advance past it) or consume one character the other side produces.
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    seen[0] = true;
    while let Some((i, j)) = stack.pop() {
        if i == a.len() && j == b.len() {
            return true;
        }
        let a_star = a.get(i) == Some(&b'*');
        let b_star = b.get(j) == Some(&b'*');
        let mut next = [None; 4];
        if a_star {
            next[0] = Some((i + 1, j));
        }
        if b_star {
            next[1] = Some((i, j + 1));
        }
        match (a.get(i), b.get(j)) {
            // A star consumes the literal the other side produces.
            (Some(&b'*'), Some(&c)) if c != b'*' => next[2] = Some((i, j + 1)),
            (Some(&c), Some(&b'*')) if c != b'*' => next[2] = Some((i + 1, j)),
            (Some(&x), Some(&y)) if x != b'*' && y != b'*' && x.eq_ignore_ascii_case(&y) => {
                next[3] = Some((i + 1, j + 1))
            }
            _ => {}
        }
        for (ni, nj) in next.into_iter().flatten() {
            let slot = &mut seen[ni * width + nj];
            if !*slot {
                *slot = true;
                stack.push((ni, nj));
            }
        }
    }
    false
}

/// Longest action pattern a role definition may hold.
pub const MAX_PATTERN_LEN: usize = 256;

/// Checks one pattern of a custom role: non-empty, at most 256 characters, printable ASCII
/// without whitespace. Returns the reason it is refused.
pub(crate) fn pattern_problem(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        Some("is empty")
    } else if pattern.len() > MAX_PATTERN_LEN {
        Some("is longer than 256 characters")
    } else if !pattern.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be printable ASCII without whitespace")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching_table() {
        let cases = [
            ("*", "Microsoft.KeyVault/vaults/read", true),
            ("*", "", true),
            (
                "Microsoft.KeyVault/vaults/read",
                "microsoft.keyvault/VAULTS/READ",
                true,
            ),
            (
                "Microsoft.KeyVault/vaults/*/read",
                "Microsoft.KeyVault/vaults/secrets/read",
                true,
            ),
            (
                "Microsoft.KeyVault/vaults/*/read",
                "Microsoft.KeyVault/vaults/a/b/c/read",
                true,
            ),
            (
                "Microsoft.KeyVault/vaults/*/read",
                "Microsoft.KeyVault/vaults/read",
                false,
            ),
            (
                "Microsoft.KeyVault/vaults/*/read",
                "Microsoft.KeyVault/vaults/keys/write",
                false,
            ),
            (
                "Microsoft.KeyVault/vaults/secrets/*",
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                true,
            ),
            (
                "Microsoft.KeyVault/vaults/secrets/*",
                "Microsoft.KeyVault/vaults/secretsX/getSecret/action",
                false,
            ),
            (
                "Microsoft.KeyVault/vaults/secrets/*",
                "Microsoft.KeyVault/vaults/secrets",
                false,
            ),
            ("*/read", "Coffer/identity/read", true),
            ("*/read", "Coffer/identity/readx", false),
            (
                "Microsoft.Authorization/*",
                "microsoft.authorization/roleAssignments/write",
                true,
            ),
            (
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/roleAssignments/write",
                true,
            ),
            (
                "Microsoft.Authorization/*/Write",
                "Microsoft.KeyVault/vaults/write",
                false,
            ),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXcYYb", false),
            ("a**c", "ac", true),
            ("abc", "abcd", false),
            ("abcd", "abc", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, action, expected) in cases {
            assert_eq!(
                action_matches(pattern, action),
                expected,
                "{pattern} ~ {action}"
            );
        }
    }

    #[test]
    fn matching_hostile_patterns_stays_fast() {
        // Exponential with naive backtracking; instant here.
        let pattern = "*a".repeat(100) + "b";
        let action = "a".repeat(5000);
        assert!(!action_matches(&pattern, &action));
        assert!(!patterns_may_overlap(
            &("a".repeat(600) + "b"),
            &"*a".repeat(300)
        ));
    }

    #[test]
    fn pattern_covers_table() {
        let cases = [
            ("*", "*", true),
            ("*", "Microsoft.KeyVault/vaults/secrets/*", true),
            (
                "Microsoft.KeyVault/vaults/*",
                "Microsoft.KeyVault/vaults/secrets/*",
                true,
            ),
            (
                "Microsoft.KeyVault/vaults/*",
                "microsoft.keyvault/vaults/keys/read",
                true,
            ),
            (
                "Microsoft.KeyVault/vaults/secrets/*",
                "Microsoft.KeyVault/vaults/*",
                false,
            ),
            ("Microsoft.KeyVault/vaults/secrets/*", "*", false),
            ("*/read", "Microsoft.KeyVault/vaults/*/read", true),
            ("*/read", "Microsoft.KeyVault/vaults/*", false),
            (
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/*",
                false,
            ),
            (
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                true,
            ),
            (
                "Microsoft.Authorization/*",
                "Microsoft.Authorization/*/read",
                true,
            ),
            (
                "Microsoft.Authorization/*/read",
                "Microsoft.Authorization/*",
                false,
            ),
        ];
        for (holder, granted, expected) in cases {
            assert_eq!(
                pattern_covers(holder, granted),
                expected,
                "{holder} ⊇ {granted}"
            );
        }
    }

    #[test]
    fn overlap_table() {
        let cases = [
            ("*", "anything", true),
            ("Microsoft.Authorization/*/Write", "*", true),
            (
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/roleAssignments/write",
                true,
            ),
            (
                "Microsoft.Authorization/*/Write",
                "Microsoft.KeyVault/*",
                false,
            ),
            (
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/*/read",
                false,
            ),
            ("Microsoft.Authorization/*/Write", "*/read", false),
            ("*/write", "Microsoft.Authorization/*", true),
            ("a*", "*b", true),
            ("a*c", "b*", false),
            ("abc", "ABC", true),
            ("abc", "abd", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(patterns_may_overlap(a, b), expected, "{a} ∩ {b}");
            assert_eq!(patterns_may_overlap(b, a), expected, "{b} ∩ {a}");
        }
    }

    #[test]
    fn pattern_validation() {
        assert_eq!(pattern_problem("Microsoft.KeyVault/vaults/*"), None);
        assert!(pattern_problem("").is_some());
        assert!(pattern_problem("a b").is_some());
        assert!(pattern_problem("é").is_some());
        assert!(pattern_problem(&"a".repeat(257)).is_some());
        assert_eq!(pattern_problem(&"a".repeat(256)), None);
    }
}
