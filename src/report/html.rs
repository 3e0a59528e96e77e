//! HTML for a [`Document`]: one self-contained page (inline CSS, no script,
//! no CDN), charts linked relatively from the same directory. Only
//! formatting: what to say is decided when the document is built.

use super::view::{Block, Callout, ChartRef, Document, Inline, Table, Text};

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 28px 0 10px; border-bottom: 1px solid #d8dce3; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.meta, blockquote { color: #566074; font-size: 14px; }
blockquote { margin: 6px 0; padding-left: 12px; border-left: 3px solid #c9ced8; }
.verdict { padding: 14px 18px; border-radius: 6px; font-size: 17px; margin: 14px 0; }
.pass { background: #e3f4e6; border: 1px solid #7cc48b; }
.fail { background: #fde7e7; border: 1px solid #e08585; }
.none { background: #eef0f4; border: 1px solid #b9c0cc; }
table { border-collapse: collapse; background: #fff; font-size: 13.5px; margin: 6px 0 12px; }
th, td { border: 1px solid #d8dce3; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #eceff4; }
th.group { text-align: center; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #fff1f1; }
.chart { background: #fff; border: 1px solid #d8dce3; margin: 10px 0 18px; }
.chart img { width: 100%; height: auto; display: block; }
.chart p { margin: 4px 10px 8px; font-size: 13px; color: #566074; }
.finding { background: #fff; border: 1px solid #d8dce3; border-left: 6px solid #999; padding: 8px 14px; margin: 10px 0; }
.finding.critical { border-left-color: #c62828; }
.finding.warning { border-left-color: #ef8f00; }
.finding.info { border-left-color: #1f77b4; }
.sev { text-transform: uppercase; font-size: 12px; font-weight: bold; letter-spacing: .04em; }
pre { background: #f1f3f6; padding: 8px 10px; overflow-x: auto; font-size: 13px; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.tag-pass { color: #1b7f31; font-weight: bold; }
.tag-fail, .tag-critical { color: #c62828; font-weight: bold; }
.tag-warning { color: #b86e00; font-weight: bold; }
.note { color: #566074; font-size: 13px; }
.wide { overflow-x: auto; }
ul.files { columns: 3; font-size: 14px; }
"#;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn render(doc: &Document) -> String {
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str(&format!("<title>{}</title>\n", esc(&doc.title)));
    o.push_str(&format!("<style>{CSS}</style>\n</head>\n<body>\n<main>\n"));
    o.push_str(&format!("<h1>{}</h1>\n", esc(&doc.title)));
    for b in &doc.lead {
        block(&mut o, b);
    }
    for s in &doc.sections {
        o.push_str(&format!("<h2 id={}>{}</h2>\n", esc(&s.id), esc(&s.title)));
        for b in &s.blocks {
            block(&mut o, b);
        }
    }
    for n in &doc.notes {
        o.push_str(&format!("<p class=note>{}</p>\n", text(n)));
    }
    o.push_str("</main>\n</body>\n</html>\n");
    o
}

fn text(t: &Text) -> String {
    t.iter().map(inline).collect()
}

fn inline(i: &Inline) -> String {
    match i {
        Inline::Plain(s) => esc(s),
        Inline::Strong(t) => format!("<strong>{}</strong>", text(t)),
        Inline::Code(s) => format!("<code>{}</code>", esc(s)),
        Inline::Link { text, href } => format!("<a href=\"{}\">{}</a>", esc(href), esc(text)),
        Inline::Badge(tone, s) => format!("<span class=tag-{}>{}</span>", tone.name(), esc(s)),
    }
}

fn block(o: &mut String, b: &Block) {
    match b {
        Block::Paragraph(t) => o.push_str(&format!("<p>{}</p>\n", text(t))),
        Block::Meta(t) => o.push_str(&format!("<p class=meta>{}</p>\n", text(t))),
        Block::Quote(t) => o.push_str(&format!("<blockquote>{}</blockquote>\n", text(t))),
        Block::Banner(tone, t) => o.push_str(&format!(
            "<div class=\"verdict {}\">{}</div>\n",
            tone.name(),
            text(t)
        )),
        Block::Table(t) => table(o, t),
        Block::Chart(c) => chart(o, c),
        Block::Callout(c) => callout(o, c),
        Block::Links(links) => {
            o.push_str("<ul class=files>\n");
            for (t, href) in links {
                o.push_str(&format!(
                    "<li><a href=\"{}\">{}</a></li>\n",
                    esc(href),
                    esc(t)
                ));
            }
            o.push_str("</ul>\n");
        }
    }
}

fn table(o: &mut String, t: &Table) {
    o.push_str("<div class=wide><table>\n");
    // Grouped columns get a header row above their own, one cell per run
    // of the same group.
    if t.columns.iter().any(|c| c.group.is_some()) {
        o.push_str("<tr>");
        let mut i = 0;
        while i < t.columns.len() {
            let g = &t.columns[i].group;
            let n = t.columns[i..].iter().take_while(|c| &c.group == g).count();
            o.push_str(&format!(
                "<th colspan={n} class=group>{}</th>",
                esc(g.as_deref().unwrap_or(""))
            ));
            i += n;
        }
        o.push_str("</tr>\n");
    }
    o.push_str("<tr>");
    for c in &t.columns {
        o.push_str(&format!("<th>{}</th>", esc(&c.title)));
    }
    o.push_str("</tr>\n");
    for r in &t.rows {
        let class = if r.tone == super::view::Tone::Fail {
            " class=bad"
        } else {
            ""
        };
        o.push_str(&format!("<tr{class}>"));
        for (c, col) in r.cells.iter().zip(&t.columns) {
            let detail = c
                .detail
                .as_ref()
                .map(|d| format!("<br>{}", text(d)))
                .unwrap_or_default();
            let n = if col.numeric { " class=n" } else { "" };
            o.push_str(&format!("<td{n}>{}{detail}</td>", text(&c.text)));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table></div>\n");
}

fn chart(o: &mut String, c: &ChartRef) {
    o.push_str(&format!(
        "<figure class=chart id=chart-{0}><img src=\"{0}.svg\" alt=\"{0} chart\"><p>{1} <a href=\"{0}.png\">PNG</a> · <a href=\"{0}.svg\">SVG</a></p></figure>\n",
        esc(&c.name),
        esc(&c.caption)
    ));
}

fn callout(o: &mut String, c: &Callout) {
    o.push_str(&format!(
        "<div class=\"finding {}\"><span class=sev>{}</span><h3>{}. {}</h3>",
        c.tone.name(),
        esc(&c.label),
        c.number,
        esc(&c.title)
    ));
    for (k, v) in &c.fields {
        o.push_str(&format!("<p><strong>{}:</strong> {}</p>", esc(k), text(v)));
    }
    if let Some(sql) = &c.sql {
        o.push_str(&format!("<pre><code>{}</code></pre>", esc(sql)));
    }
    o.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use crate::report::view::sample::compare_like;

    #[test]
    fn grouped_columns_details_charts_and_badges() {
        let html = super::render(&compare_like());
        assert!(html.contains("<div class=\"verdict pass\"><strong><span class=tag-pass>B is safer</span></strong>: longest blocking hold"), "{html}");
        assert!(html.contains("<tr><th colspan=1 class=group></th><th colspan=1 class=group>A</th><th colspan=1 class=group>B</th></tr>\n<tr><th>step</th><th>p99</th><th>p99</th></tr>\n<tr class=bad><td>create index<br><code>CREATE INDEX `i`</code></td><td class=n>1017.7 ms</td><td class=n>4.1 ms</td></tr>"), "{html}");
        assert!(html.contains("<img src=\"locks.svg\" alt=\"locks chart\"><p>A | B &lt;overlaid&gt; <a href=\"locks.png\">PNG</a>"), "{html}");
        assert!(!html.contains("<script"));
    }
}
