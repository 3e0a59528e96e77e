//! Markdown (GitHub flavoured) for a [`Document`]: summary.md, also appended
//! to $GITHUB_STEP_SUMMARY. Only formatting: what to say is decided when
//! the document is built.

use super::view::{Block, Callout, ChartRef, Document, Inline, Table, Text, Tone};

pub(crate) fn render(doc: &Document) -> String {
    let mut o = format!("# {}\n\n", doc.title);
    for b in &doc.lead {
        block(&mut o, b);
    }
    for s in &doc.sections {
        o.push_str(&format!("## {}\n\n", s.title));
        for b in &s.blocks {
            block(&mut o, b);
        }
    }
    if !doc.notes.is_empty() {
        o.push_str("---\n\n");
        for n in &doc.notes {
            o.push_str(&format!("_{}_\n\n", text(n)));
        }
    }
    o.truncate(o.trim_end().len());
    o.push('\n');
    o
}

fn icon(tone: Tone) -> &'static str {
    match tone {
        Tone::Neutral => "",
        Tone::Pass => "✅ ",
        Tone::Fail => "❌ ",
        Tone::Critical => "🔴 ",
        Tone::Warning => "🟠 ",
        Tone::Info => "🔵 ",
    }
}

fn text(t: &Text) -> String {
    t.iter().map(inline).collect()
}

fn inline(i: &Inline) -> String {
    match i {
        Inline::Plain(s) => s.clone(),
        Inline::Strong(t) => format!("**{}**", text(t)),
        Inline::Code(s) => code_span(s),
        Inline::Link { text, href } => format!("[{text}]({href})"),
        Inline::Badge(tone, s) => format!("{}{s}", icon(*tone)),
    }
}

/// `s` as one code span, shown as it is: on one line (a blank line in a
/// function body would end the paragraph, and the span with it, leaving
/// the rest to render as Markdown and HTML), fenced by one backtick more
/// than the longest run of them inside (CommonMark), padded where it
/// starts or ends with one.
fn code_span(s: &str) -> String {
    let flat = s.replace("\r\n", " ").replace(['\r', '\n'], " ");
    let longest = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if flat.starts_with('`') || flat.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{flat}{pad}{fence}")
}

fn block(o: &mut String, b: &Block) {
    match b {
        Block::Paragraph(t) | Block::Meta(t) | Block::Banner(_, t) => {
            o.push_str(&format!("{}\n\n", text(t)))
        }
        Block::Quote(t) => o.push_str(&format!("> {}\n\n", text(t))),
        Block::Table(t) => table(o, t),
        Block::Chart(c) => chart(o, c),
        Block::Callout(c) => callout(o, c),
        Block::Links(links) => {
            let v: Vec<String> = links
                .iter()
                .map(|(text, href)| format!("[{text}]({href})"))
                .collect();
            o.push_str(&format!("{}\n\n", v.join(" · ")));
        }
    }
}

/// Table cells must not break the table.
fn cell(t: &Text) -> String {
    text(t).replace('|', "\\|").replace('\n', " ")
}

fn table(o: &mut String, t: &Table) {
    let titles: Vec<String> = t
        .columns
        .iter()
        .map(|c| match &c.group {
            Some(g) => format!("{g} {}", c.title),
            None => c.title.clone(),
        })
        .collect();
    let aligns: Vec<&str> = t
        .columns
        .iter()
        .map(|c| if c.numeric { "---:" } else { "---" })
        .collect();
    o.push_str(&format!(
        "| {} |\n|{}|\n",
        titles.join(" | "),
        aligns.join("|")
    ));
    for r in &t.rows {
        let cells: Vec<String> = r.cells.iter().map(|c| cell(&c.text)).collect();
        o.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    o.push('\n');
    // Second lines of cells, as a list under the table, named by the row's
    // first cell.
    let mut details = String::new();
    for r in &t.rows {
        for d in r.cells.iter().filter_map(|c| c.detail.as_ref()) {
            let name = r.cells.first().map(|c| cell(&c.text)).unwrap_or_default();
            details.push_str(&format!("- **{name}**: {}\n", text(d)));
        }
    }
    if !details.is_empty() {
        o.push_str(&details);
        o.push('\n');
    }
}

fn chart(o: &mut String, c: &ChartRef) {
    o.push_str(&format!(
        "**{0}** ([PNG]({0}.png) · [SVG]({0}.svg)): {1}\n\n",
        c.name, c.caption
    ));
}

fn callout(o: &mut String, c: &Callout) {
    o.push_str(&format!(
        "### {}. {}{} — {}\n\n",
        c.number,
        icon(c.tone),
        c.label,
        c.title
    ));
    for (k, v) in &c.fields {
        o.push_str(&format!("- **{k}:** {}\n", text(v)));
    }
    o.push('\n');
    if let Some(sql) = &c.sql {
        o.push_str(&format!("```sql\n{sql}\n```\n\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::code_span;
    use crate::report::view::sample::compare_like;

    #[test]
    fn grouped_columns_details_charts_and_badges() {
        let md = super::render(&compare_like());
        assert!(md.starts_with("# pgrehearse compare: naive vs safe\n\n**✅ B is safer**: longest blocking hold 1199 ms → 0 ms\n\n## Steps\n\n"), "{md}");
        assert!(md.contains("| step | A p99 | B p99 |\n|---|---:|---:|\n| create index | 1017.7 ms | 4.1 ms |\n\n- **create index**: `` CREATE INDEX `i` ``\n"), "{md}");
        assert!(
            md.contains("**locks** ([PNG](locks.png) · [SVG](locks.svg)): A | B <overlaid>"),
            "{md}"
        );
        assert!(md.ends_with("---\n\n_a note_\n"), "{md}");
    }

    #[test]
    fn code_spans_hold_any_sql_whole() {
        // A blank line inside a function body, backticks, a closing tag.
        let sql = "CREATE FUNCTION g() RETURNS int AS $$\nBEGIN\n\n  RETURN 1; -- ``x``\nEND $$; COMMENT ON TABLE t IS '</code>'";
        let span = code_span(sql);
        assert!(!span.contains('\n'), "{span}");
        assert!(
            span.starts_with("```CREATE") && span.ends_with("'</code>'```"),
            "{span}"
        );
        assert!(span.contains("-- ``x``"), "{span}");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("plain"), "`plain`");
    }
}
