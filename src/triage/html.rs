//! HTML output where every value is escaped by construction: [`Html::raw`] takes only a
//! `&'static str` (markup written in this crate's source), and everything else goes through
//! [`Html::text`], which calls [`escape`], the one escaping function every page uses.

use std::borrow::Cow;
use std::fmt::{Display, Write as _};

/// Makes any value safe inside HTML text, a quoted attribute or inline SVG: `& < > " '`
/// become character references, and control and bidirectional characters are first made
/// visible (`text::escape_control`), so a log value can neither open an element nor
/// reorder what is shown around it.
pub fn escape(value: &str) -> Cow<'_, str> {
    let visible = crate::text::escape_control(value);
    if !visible.contains(['&', '<', '>', '"', '\'']) {
        return visible;
    }
    let mut out = String::with_capacity(visible.len() + 16);
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A page being written.
#[derive(Default)]
pub struct Html(String);

impl Html {
    pub fn new() -> Html {
        Html::default()
    }

    /// Markup from the source: a `&'static str` cannot hold a value read at run time.
    pub fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.0.push_str(markup);
        self
    }

    /// Any value (log text, a number, a URL built from log text): escaped.
    pub fn text(&mut self, value: impl Display) -> &mut Html {
        let mut formatted = String::new();
        let _ = write!(formatted, "{value}");
        self.0.push_str(&escape(&formatted));
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        let cases: &[(&str, &str)] = &[
            ("arn:aws:iam::1:role/ci", "arn:aws:iam::1:role/ci"),
            ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
            ("\" onmouseover='x' a=\"", "&quot; onmouseover=&#39;x&#39; a=&quot;"),
            ("a&amp;b", "a&amp;amp;b"),
            ("evil\u{202e}gpj.exe\n<b>", "evil\\u{202e}gpj.exe\\u{a}&lt;b&gt;"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape(raw), *want, "{raw:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn text_escapes_and_raw_does_not() {
        let mut page = Html::new();
        page.raw("<p title=\"").text("\"><img src=x>").raw("\">").text(3.5).raw("</p>");
        assert_eq!(page.into_string(), "<p title=\"&quot;&gt;&lt;img src=x&gt;\">3.5</p>");
    }
}
