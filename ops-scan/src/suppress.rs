//! Suppression comments: `// ops-scan: allow(rule)` on a finding's line, or alone on the line
//! above it, with an optional reason after the parentheses. Several rules may be listed:
//! `allow(unfinished-session, forgotten-session)`.

use std::collections::HashMap;

use crate::rules::Rule;

/// One `allow(...)` comment.
#[derive(Clone, Debug)]
pub(crate) struct Allow {
    pub(crate) rules: Vec<Rule>,
    pub(crate) reason: Option<String>,
    /// Whether the comment is alone on its line, so it covers the next line.
    pub(crate) own_line: bool,
}

/// A rule name in an `allow(...)` that names no rule.
#[derive(Clone, Debug)]
pub(crate) struct UnknownRule {
    pub(crate) line: usize,
    pub(crate) name: String,
}

/// The `allow` comments of a file, by 1-based line.
#[derive(Debug, Default)]
pub(crate) struct Allows {
    by_line: HashMap<usize, Allow>,
    pub(crate) unknown: Vec<UnknownRule>,
}

impl Allows {
    /// Reads the `// ops-scan: allow(...)` comments of a source file.
    pub(crate) fn read(source: &str) -> Allows {
        let mut allows = Allows::default();
        for (index, text) in source.lines().enumerate() {
            let line = index + 1;
            let Some(at) = comment_start(text) else {
                continue;
            };
            let comment = text[at..].trim_start_matches('/').trim_start();
            let Some(rest) = comment.strip_prefix("ops-scan:") else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix("allow(") else {
                continue;
            };
            let Some((list, after)) = rest.split_once(')') else {
                continue;
            };
            let mut rules = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match Rule::from_name(name) {
                    Some(rule) => rules.push(rule),
                    None => allows.unknown.push(UnknownRule {
                        line,
                        name: name.to_owned(),
                    }),
                }
            }
            let reason = after
                .trim()
                .trim_start_matches(['-', ':', '—'])
                .trim()
                .to_owned();
            allows.by_line.insert(
                line,
                Allow {
                    rules,
                    reason: (!reason.is_empty()).then_some(reason),
                    own_line: text[..at].trim().is_empty(),
                },
            );
        }
        allows
    }

    /// The comment that allows `rule` at `line`, if any: on the line itself, or alone on the
    /// line above.
    pub(crate) fn allowing(&self, rule: Rule, line: usize) -> Option<&Allow> {
        let here = self
            .by_line
            .get(&line)
            .filter(|allow| allow.rules.contains(&rule));
        here.or_else(|| {
            let above = self.by_line.get(&line.checked_sub(1)?)?;
            (above.own_line && above.rules.contains(&rule)).then_some(above)
        })
    }
}

/// Where the line's `//` comment starts, skipping `//` inside string literals (an even number
/// of unescaped quotes before it).
fn comment_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_allows_with_reasons() {
        let source = concat!(
            "let s = db.session().await?; // ops-scan: allow(unfinished-session) -- the test leaks on purpose\n",
            "// ops-scan: allow(forgotten-session, raw_transaction_sql)\n",
            "std::mem::forget(s);\n",
            "x(); // ops-scan: allow(nonsense)\n",
            "let s = \"// ops-scan: allow(unfinished-session)\";\n",
        );
        let allows = Allows::read(source);
        let first = allows
            .allowing(Rule::UnfinishedSession, 1)
            .expect("same line");
        assert_eq!(first.reason.as_deref(), Some("the test leaks on purpose"));
        assert!(allows.allowing(Rule::ForgottenSession, 3).is_some());
        assert!(allows.allowing(Rule::RawTransactionSql, 3).is_some());
        assert!(allows.allowing(Rule::ForgottenSession, 1).is_none());
        // A trailing comment covers its own line only.
        assert!(allows.allowing(Rule::UnfinishedSession, 2).is_none());
        assert_eq!(allows.unknown.len(), 1);
        assert_eq!(allows.unknown[0].name, "nonsense");
        // Inside a string literal it is not a comment.
        assert!(allows.allowing(Rule::UnfinishedSession, 5).is_none());
    }
}
