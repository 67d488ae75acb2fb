//! Bar charts as inline SVG, drawn by the server: columns for a profile over hours or days,
//! rows for ranked values (calls, networks). One bar can be marked: the alert's hour, its
//! new call. Labels are log values and go through [`Html::text`] like everything else.

use super::html::Html;

/// One bar: what it counts, how much, and whether the alert points at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub marked: bool,
}

/// Longest label drawn beside a row; the whole label is the row's tooltip.
/// About what `LABEL_WIDTH` holds at the page's font size, so a label never runs into its bar.
const LABEL_CHARS: usize = 52;
const ROW_HEIGHT: f64 = 18.0;
const LABEL_WIDTH: f64 = 380.0;
const ROW_BAR_WIDTH: f64 = 220.0;

/// Columns, one per bar, labelled underneath (hours of the day, days of the week); the
/// marked column is drawn in the mark colour with `mark` written over it.
pub fn columns(page: &mut Html, caption: &str, bars: &[Bar], mark: &str) {
    let (width, height, top, bottom) = (24.0 * bars.len() as f64, 150.0, 18.0, 18.0);
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0);
    open(page, caption, width, height);
    let column = width / bars.len().max(1) as f64;
    for (i, bar) in bars.iter().enumerate() {
        let h = (height - top - bottom) * bar.value / max;
        let x = i as f64 * column;
        page.raw("<g").raw(if bar.marked { " class=\"marked\">" } else { ">" });
        page.raw("<title>").text(format!("{}: {}", bar.label, bar.value)).raw("</title>");
        rect(page, bar.marked, x + 2.0, height - bottom - h, column - 4.0, h);
        page.raw("<text text-anchor=\"middle\" x=\"").text(fmt(x + column / 2.0)).raw("\" y=\"");
        page.text(fmt(height - 4.0)).raw("\">").text(&bar.label).raw("</text>");
        if bar.marked {
            page.raw("<text class=\"marktext\" text-anchor=\"middle\" x=\"").text(fmt(x + column / 2.0));
            page.raw("\" y=\"12\">").text(mark).raw("</text>");
        }
        page.raw("</g>");
    }
    page.raw("</svg>");
}

/// Rows, one per bar, label on the left and the bar's value after it; the marked row's label
/// is drawn in the mark colour with `mark` after its value.
pub fn rows(page: &mut Html, caption: &str, bars: &[Bar], mark: &str) {
    let width = LABEL_WIDTH + ROW_BAR_WIDTH + 120.0;
    let height = ROW_HEIGHT * bars.len().max(1) as f64 + 4.0;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0);
    open(page, caption, width, height);
    if bars.is_empty() {
        page.raw("<text x=\"0\" y=\"14\">none</text>");
    }
    for (i, bar) in bars.iter().enumerate() {
        let y = i as f64 * ROW_HEIGHT;
        let w = (ROW_BAR_WIDTH * bar.value / max).max(1.0);
        page.raw("<g").raw(if bar.marked { " class=\"marked\">" } else { ">" });
        page.raw("<title>").text(format!("{}: {}", bar.label, bar.value)).raw("</title>");
        page.raw(if bar.marked { "<text class=\"marktext\" x=\"0\" y=\"" } else { "<text x=\"0\" y=\"" });
        page.text(fmt(y + 13.0)).raw("\">").text(shortened(&bar.label)).raw("</text>");
        rect(page, bar.marked, LABEL_WIDTH, y + 3.0, w, ROW_HEIGHT - 6.0);
        page.raw("<text x=\"").text(fmt(LABEL_WIDTH + w + 4.0)).raw("\" y=\"").text(fmt(y + 13.0)).raw("\">");
        page.text(bar.value);
        if bar.marked {
            page.raw(" ").text(mark);
        }
        page.raw("</text></g>");
    }
    page.raw("</svg>");
}

fn open(page: &mut Html, caption: &str, width: f64, height: f64) {
    page.raw("<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"").text(fmt(width));
    page.raw("\" height=\"").text(fmt(height)).raw("\" viewBox=\"0 0 ").text(fmt(width)).raw(" ");
    page.text(fmt(height)).raw("\" aria-label=\"").text(caption).raw("\"><title>").text(caption).raw("</title>");
}

fn rect(page: &mut Html, marked: bool, x: f64, y: f64, w: f64, h: f64) {
    page.raw(if marked { "<rect class=\"bar mark\" x=\"" } else { "<rect class=\"bar\" x=\"" }).text(fmt(x));
    page.raw("\" y=\"").text(fmt(y)).raw("\" width=\"").text(fmt(w.max(0.0))).raw("\" height=\"");
    page.text(fmt(h.max(0.0))).raw("\"/>");
}

/// SVG coordinates with one decimal: enough on a screen, and short.
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn shortened(label: &str) -> String {
    match label.char_indices().nth(LABEL_CHARS) {
        Some((end, _)) => format!("{}…", &label[..end]),
        None => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> Vec<Bar> {
        vec![
            Bar { label: "s3 GetObject".into(), value: 40.0, marked: false },
            Bar { label: "<script>x</script>".into(), value: 0.0, marked: true },
        ]
    }

    #[test]
    fn rows_mark_one_bar_and_escape_labels() {
        let mut page = Html::new();
        rows(&mut page, "calls \"of\" x", &bars(), "new call");
        let svg = page.into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert_eq!(svg.matches("class=\"marked\"").count(), 1, "{svg}");
        assert!(
            svg.contains("<text class=\"marktext\" x=\"0\" y=\"31.0\">&lt;script&gt;x&lt;/script&gt;</text>"),
            "{svg}"
        );
        assert!(svg.contains("aria-label=\"calls &quot;of&quot; x\""), "{svg}");
        // The longest bar spans the bar area; an empty one still shows.
        assert!(svg.contains("width=\"220.0\" height=\"12.0\""), "{svg}");
        assert!(svg.contains("width=\"1.0\" height=\"12.0\""), "{svg}");
    }

    #[test]
    fn columns_scale_to_the_highest_and_label_the_mark() {
        let mut page = Html::new();
        columns(&mut page, "hours", &bars(), "alert");
        let svg = page.into_string();
        assert!(
            svg.contains("<text class=\"marktext\" text-anchor=\"middle\" x=\"36.0\" y=\"12\">alert</text>"),
            "{svg}"
        );
        assert!(svg.contains("height=\"114.0\""), "{svg}");
    }
}
