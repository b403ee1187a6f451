//! Master-file entries made ready for the `domain` scanner: BIND-style TTL units, `$ORIGIN` check.
//!
//! The scanner takes TTLs as plain seconds only, while NSD, Knot and BIND all read `1h30m`, `2w`
//! or `90S` (in `$TTL`, in a record's TTL field and in the SOA timers). Each entry (one logical
//! record, parentheses joined) is rewritten here with those values in seconds; nothing else in
//! it changes, line feeds included, so error lines stay right.

use std::borrow::Cow;

/// One token of an entry: its byte range, and whether it was a quoted string.
struct Token {
    start: usize,
    end: usize,
    quoted: bool,
}

/// Splits an entry into tokens the way RFC 1035 §5.1 reads them: blanks and parentheses
/// separate, `;` starts a comment, quotes and `\` escapes keep their bytes together.
fn tokens(text: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' => i += 1,
            b';' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(text.len());
                out.push(Token {
                    start,
                    end: i,
                    quoted: true,
                });
            }
            _ => {
                let start = i;
                while i < text.len() && !b" \t\r\n();\"".contains(&text[i]) {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i = i.min(text.len());
                out.push(Token {
                    start,
                    end: i,
                    quoted: false,
                });
            }
        }
    }
    out
}

/// `1h30m`, `2W`, `90s`, `1h5` (a trailing number is seconds) → seconds; `None` for a plain
/// number (nothing to rewrite), anything else, or a value beyond 32 bits.
fn ttl_with_units(tok: &[u8]) -> Option<u32> {
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    let mut units = false;
    for &c in tok {
        match c {
            b'0'..=b'9' => num = Some(num.unwrap_or(0).checked_mul(10)? + u64::from(c - b'0')),
            _ => {
                let mult = match c.to_ascii_lowercase() {
                    b's' => 1,
                    b'm' => 60,
                    b'h' => 3600,
                    b'd' => 86_400,
                    b'w' => 604_800,
                    _ => return None,
                };
                total = total.checked_add(num.take()?.checked_mul(mult)?)?;
                units = true;
            }
        }
        if total > u64::from(u32::MAX) {
            return None;
        }
    }
    total = total.checked_add(num.unwrap_or(0))?;
    (units && total <= u64::from(u32::MAX)).then_some(total as u32)
}

fn is_class(tok: &[u8]) -> bool {
    ["IN", "CH", "CS", "HS", "ANY", "NONE"]
        .iter()
        .any(|c| tok.eq_ignore_ascii_case(c.as_bytes()))
}

/// The byte ranges of `entry` that hold TTLs written with units: the `$TTL` value, a record's
/// TTL field (before or after the class), the SOA's refresh, retry, expire and minimum.
fn ttl_fields(entry: &[u8]) -> Vec<(usize, usize, u32)> {
    let toks = tokens(entry);
    let text = |t: &Token| &entry[t.start..t.end];
    let mut found = Vec::new();
    let mut push = |t: &Token| {
        if !t.quoted
            && let Some(v) = ttl_with_units(text(t))
        {
            found.push((t.start, t.end, v));
        }
    };
    let Some(first) = toks.first() else {
        return found;
    };
    if entry.first() == Some(&b'$') {
        if text(first).eq_ignore_ascii_case(b"$TTL")
            && let Some(t) = toks.get(1)
        {
            push(t);
        }
        return found;
    }
    // An owner is there unless the entry starts with a blank (RFC 1035 §5.1).
    let mut i = usize::from(!matches!(entry.first(), Some(b' ' | b'\t')));
    // Up to two fields before the type: TTL and class, in either order.
    for _ in 0..2 {
        let Some(t) = toks.get(i) else { return found };
        let b = text(t);
        if is_class(b) || b.iter().all(u8::is_ascii_digit) {
            i += 1;
        } else if ttl_with_units(b).is_some() {
            push(t);
            i += 1;
        } else {
            break;
        }
    }
    if toks
        .get(i)
        .is_some_and(|t| text(t).eq_ignore_ascii_case(b"SOA"))
    {
        // MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM: the last four are times.
        for t in toks.iter().skip(i + 4).take(4) {
            push(t);
        }
    }
    found
}

/// True if some unit letter follows a digit: the only entries worth tokenizing for TTLs.
fn may_have_units(entry: &[u8]) -> bool {
    (entry.windows(2)).any(|w| {
        w[0].is_ascii_digit()
            && matches!(
                w[1],
                b's' | b'm' | b'h' | b'd' | b'w' | b'S' | b'M' | b'H' | b'D' | b'W'
            )
    })
}

/// `entry` with every TTL written with units replaced by its value in seconds.
pub fn with_ttls_in_seconds(entry: &[u8]) -> Cow<'_, [u8]> {
    if !may_have_units(entry) {
        return Cow::Borrowed(entry);
    }
    let fields = ttl_fields(entry);
    if fields.is_empty() {
        return Cow::Borrowed(entry);
    }
    let mut out = Vec::with_capacity(entry.len());
    let mut at = 0;
    for (start, end, secs) in fields {
        out.extend_from_slice(&entry[at..start]);
        out.extend_from_slice(secs.to_string().as_bytes());
        at = end;
    }
    out.extend_from_slice(&entry[at..]);
    Cow::Owned(out)
}

/// An `$INCLUDE` entry rewritten as `$INCLUDE FILE [ORIGIN]` on one line (quoted tokens
/// unquoted, their blanks and specials escaped; comments and parentheses dropped; as many line
/// feeds as it had), or why it is not one; `None` for any other entry. The `domain` scanner
/// (0.12) keeps a quoted token's closing quote in the file name (`file"`: no such file, where
/// BIND, NSD and Knot read it) and panics when the next token follows that quote without a
/// blank; the fuzzer found `$INCLUDE "x"y.`, `$INCLUDE"x"y`, `$IN\CLUDE ...`, `$INCLUDE """"x`.
pub fn include_entry(entry: &[u8]) -> Option<Result<Vec<u8>, &'static str>> {
    // An indented entry is a record of the last owner. A first token that starts the entry
    // is the directive only if it starts with `$` or an escape (`\$`, `\036`): every record
    // returns here untokenized (tokenizing each of a 1M-name zone's entries was 8% of the
    // parsing thread's time in `rampart check`); separators first are tokenized as before.
    match entry.first() {
        None | Some(b' ' | b'\t') => return None,
        Some(b'$' | b'\\' | b'\r' | b'\n' | b'(' | b')' | b';') => {}
        Some(_) => return None,
    }
    let toks = tokens(entry);
    let (directive, args) = toks.split_first()?;
    // The directive as the scanner reads it: `$IN\CLUDE` is `$INCLUDE` too.
    let word = unescaped(&entry[directive.start..directive.end]);
    if directive.quoted || !word.eq_ignore_ascii_case(b"$INCLUDE") {
        return None;
    }
    let plain = |t: &Token| {
        if !t.quoted {
            return entry[t.start..t.end].to_vec();
        }
        let closed = t.end > t.start + 1 && entry[t.end - 1] == b'"';
        escaped(&entry[t.start + 1..if closed { t.end - 1 } else { t.end }])
    };
    match args.len() {
        0 => return Some(Err("$INCLUDE without a file name")),
        1 | 2 => {}
        _ => {
            return Some(Err(
                "$INCLUDE takes a file name and an origin, nothing more",
            ));
        }
    }
    let mut out = b"$INCLUDE".to_vec();
    for (i, arg) in args.iter().enumerate() {
        let text = plain(arg);
        if text.is_empty() {
            return Some(Err(if i == 0 {
                "$INCLUDE with an empty file name"
            } else {
                "$INCLUDE with an empty origin"
            }));
        }
        out.push(b' ');
        out.extend_from_slice(&text);
    }
    let lines = entry.iter().filter(|&&b| b == b'\n').count().max(1);
    out.extend(std::iter::repeat_n(b'\n', lines));
    Some(Ok(out))
}

/// The inside of a quoted token as an unquoted one: its escapes as written, blanks and
/// specials escaped.
fn escaped(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' if i + 1 < inner.len() => {
                out.extend_from_slice(&inner[i..i + 2]);
                i += 2;
                continue;
            }
            c if b" \t\r\n();\"".contains(&c) => out.extend_from_slice(&[b'\\', c]),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// A token's bytes with its escapes (`\X`, `\DDD`) decoded.
fn unescaped(tok: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tok.len());
    let mut i = 0;
    while i < tok.len() {
        let digits = tok
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        match (tok[i], digits) {
            (b'\\', Some(d)) => {
                let n = d.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
                out.push(n.min(255) as u8);
                i += 4;
            }
            (b'\\', None) if i + 1 < tok.len() => {
                out.push(tok[i + 1]);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `$ORIGIN` must name an absolute domain (NSD and Knot reject a relative one; BIND would
/// append the current origin, a reading RFC 1035 §5.1 doesn't give).
pub fn relative_origin(entry: &[u8]) -> bool {
    if entry.first() != Some(&b'$') {
        return false;
    }
    let toks = tokens(entry);
    let [directive, name, ..] = toks.as_slice() else {
        return false;
    };
    entry.first() == Some(&b'$')
        && entry[directive.start..directive.end].eq_ignore_ascii_case(b"$ORIGIN")
        && !ends_with_unescaped_dot(&entry[name.start..name.end])
}

/// The TTL a `$TTL` entry sets, in seconds (the entry already through
/// [`with_ttls_in_seconds`]); `None` for any other entry or a value that is no number.
pub fn dollar_ttl(entry: &[u8]) -> Option<u32> {
    // Only directives start with `$`: every record entry returns here, untokenized (tokenizing
    // each of a 1M-name zone's entries was 7% of `rampart check`).
    if entry.first() != Some(&b'$') {
        return None;
    }
    let toks = tokens(entry);
    let [directive, value, ..] = toks.as_slice() else {
        return None;
    };
    if !entry[directive.start..directive.end].eq_ignore_ascii_case(b"$TTL") {
        return None;
    }
    std::str::from_utf8(&entry[value.start..value.end])
        .ok()?
        .parse()
        .ok()
}

fn ends_with_unescaped_dot(name: &[u8]) -> bool {
    let Some((&b'.', rest)) = name.split_last() else {
        return false;
    };
    // An odd number of backslashes before the dot escapes it.
    rest.iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> String {
        String::from_utf8(with_ttls_in_seconds(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn ttl_units_become_seconds_where_ttls_are() {
        assert_eq!(fix("$TTL 1h30m\n"), "$TTL 5400\n");
        assert_eq!(fix("$ttl 1W ; week\n"), "$ttl 604800 ; week\n");
        assert_eq!(fix("www 1d IN A 192.0.2.1\n"), "www 86400 IN A 192.0.2.1\n");
        assert_eq!(fix("www IN 90S A 192.0.2.1\n"), "www IN 90 A 192.0.2.1\n");
        assert_eq!(fix("  1h5 TXT \"1h\"\n"), "  3605 TXT \"1h\"\n");
        assert_eq!(
            fix("@ SOA ns hm (\n 1 2h 1h ; c\n 2w 5m )\n"),
            "@ SOA ns hm (\n 1 7200 3600 ; c\n 1209600 300 )\n"
        );
        // Owners, types and rdata that merely look like times stay.
        assert_eq!(fix("1h A 192.0.2.1\n"), "1h A 192.0.2.1\n");
        assert_eq!(fix("x TXT 1h\n"), "x TXT 1h\n");
        assert_eq!(fix("x 300 IN MX 10 1d\n"), "x 300 IN MX 10 1d\n");
        // Not a time: left for the scanner to reject.
        assert_eq!(fix("x 1x A 192.0.2.1\n"), "x 1x A 192.0.2.1\n");
        assert_eq!(fix("x 9999999w A 192.0.2.1\n"), "x 9999999w A 192.0.2.1\n");
    }

    #[test]
    fn origin_must_be_absolute() {
        assert!(relative_origin(b"$ORIGIN deep\n"));
        assert!(relative_origin(b"$ORIGIN a\\.\n"));
        assert!(!relative_origin(b"$ORIGIN deep.p.test.\n"));
        assert!(!relative_origin(b"$origin a\\\\.\n"));
        assert!(!relative_origin(b"www A 192.0.2.1\n"));
    }

    #[test]
    fn dollar_ttl_reads_the_directive_only() {
        assert_eq!(dollar_ttl(b"$TTL 60\n"), Some(60));
        assert_eq!(dollar_ttl(b"$ttl 3600 ; comment\n"), Some(3600));
        assert_eq!(dollar_ttl(b"www 60 A 192.0.2.1\n"), None);
        assert_eq!(dollar_ttl(b"$TTL\n"), None);
    }

    #[test]
    fn include_entries_are_rewritten_for_the_scanner() {
        let inc = |e: &[u8]| include_entry(e).map(|r| r.map(|v| String::from_utf8(v).unwrap()));
        let ok = |s: &str| Some(Ok(s.to_owned()));
        assert_eq!(inc(b"$INCLUDE \"a b\" x. ; c\n"), ok("$INCLUDE a\\ b x.\n"));
        assert_eq!(inc(b"$INCLUDE plain\n"), ok("$INCLUDE plain\n"));
        // The fuzzer's finds: a token right after a closing quote or the directive, the
        // directive escaped or after a parenthesis, an empty quoted name.
        assert_eq!(inc(b"$INCLUDE \"x\"y.\n"), ok("$INCLUDE x y.\n"));
        assert_eq!(inc(b"$INCLUDE\"x\"y.\n"), ok("$INCLUDE x y.\n"));
        assert_eq!(inc(b"$IN\\CLUDE \"x\"y.\n"), ok("$INCLUDE x y.\n"));
        assert_eq!(inc(b"($\\073NCLUDE \"x\"\ny.)\n"), ok("$INCLUDE x y.\n\n"));
        assert_eq!(inc(b"$include \"a\\\"b;\"\n"), ok("$INCLUDE a\\\"b\\;\n"));
        assert_eq!(
            inc(b"$INCLUDE \"\" x.\n"),
            Some(Err("$INCLUDE with an empty file name"))
        );
        assert_eq!(
            inc(b"$INCLUDE \"\"\"\"x\n"),
            Some(Err(
                "$INCLUDE takes a file name and an origin, nothing more"
            ))
        );
        assert_eq!(
            inc(b"$INCLUDE a b c\n"),
            Some(Err(
                "$INCLUDE takes a file name and an origin, nothing more"
            ))
        );
        assert_eq!(inc(b" $INCLUDE \"x\"\n"), None, "indented: a record");
        assert_eq!(inc(b"$ORIGIN \"x\".\n"), None);
        assert_eq!(inc(b"www TXT \"x\"\n"), None);
    }
}
