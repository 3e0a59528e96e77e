//! The view model every report is built as, and every renderer formats:
//! a document of sections holding paragraphs, banners, tables of rows and
//! cells, chart references, callouts and notes. A report (a run's summary;
//! later `compare` and `sweep`) decides *what* to say once, here; markdown
//! and HTML only decide *how* it looks.
//!
//! - `compare` (two runs side by side): a verdict [`Block::Banner`], a
//!   per-step [`Table`] whose columns carry a `group` ("A", "B") so HTML
//!   draws a two-level header and markdown titles them "A p99", two
//!   [`Block::Chart`]s (the overlaid latency and locks charts).
//! - `sweep` (one scenario over sizes): a section per figure with a
//!   [`Table`] (a row per size), a [`Block::Paragraph`] for the fit
//!   sentence, and a [`Block::Chart`].

/// Inline text: runs of plain, strong, code, links and badges.
pub type Text = Vec<Inline>;

#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Plain(String),
    Strong(Text),
    Code(String),
    Link {
        text: String,
        href: String,
    },
    /// A short word that carries a tone: markdown prefixes an emoji, HTML
    /// colours it.
    Badge(Tone, String),
}

/// How good or bad something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Neutral,
    Pass,
    Fail,
    Critical,
    Warning,
    Info,
}

impl Tone {
    /// The tone's name, as HTML classes spell it.
    pub fn name(self) -> &'static str {
        match self {
            Tone::Neutral => "none",
            Tone::Pass => "pass",
            Tone::Fail => "fail",
            Tone::Critical => "critical",
            Tone::Warning => "warning",
            Tone::Info => "info",
        }
    }
}

/// One report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    pub title: String,
    /// Under the title, before the first section: verdict, context.
    pub lead: Vec<Block>,
    pub sections: Vec<Section>,
    /// How the figures were obtained, at the very end.
    pub notes: Vec<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Anchor (HTML id).
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Section {
    pub fn new(id: &str, title: &str) -> Section {
        Section {
            id: id.to_string(),
            title: title.to_string(),
            blocks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Paragraph(Text),
    /// Secondary context (backend, sizes, seed).
    Meta(Text),
    /// A quotation (the scenario's description).
    Quote(Text),
    /// A verdict or an alarm, shown prominently in its tone.
    Banner(Tone, Text),
    Table(Table),
    Chart(ChartRef),
    Callout(Callout),
    /// Links on one line (markdown) or as a list (HTML).
    Links(Vec<(String, String)>),
}

/// A table. A cell's `detail` is a second line: HTML shows it under the
/// cell, markdown lists the details after the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub title: String,
    /// Columns that share a group ("A", "B") are headed together.
    pub group: Option<String>,
    /// Right-aligned figures.
    pub numeric: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// A failed row is highlighted.
    pub tone: Tone,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    pub text: Text,
    pub detail: Option<Text>,
}

impl Table {
    /// Columns by title; a title ending in `>` is numeric (the `>` is
    /// dropped), e.g. `["step", "duration>"]`.
    pub fn new(titles: &[&str]) -> Table {
        Table {
            columns: titles
                .iter()
                .map(|t| Column {
                    title: t.trim_end_matches('>').to_string(),
                    group: None,
                    numeric: t.ends_with('>'),
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row of cells.
    pub fn row(&mut self, cells: Vec<Cell>) -> &mut Row {
        self.rows.push(Row {
            cells,
            tone: Tone::Neutral,
        });
        self.rows.last_mut().expect("pushed")
    }
}

impl Cell {
    pub fn with_detail(mut self, detail: Text) -> Cell {
        self.detail = Some(detail);
        self
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell {
            text: plain(s),
            detail: None,
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::from(s.to_string())
    }
}

impl From<Text> for Cell {
    fn from(text: Text) -> Cell {
        Cell { text, detail: None }
    }
}

/// A chart drawn next to the report: `{name}.svg` shown, `{name}.png` too.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartRef {
    pub name: String,
    pub caption: String,
}

/// A boxed item with a tone: a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Callout {
    pub tone: Tone,
    /// The tone in words ("critical").
    pub label: String,
    pub number: usize,
    pub title: String,
    /// Labelled lines ("Where", "Seen", "Instead").
    pub fields: Vec<(String, Text)>,
    /// An SQL example.
    pub sql: Option<String>,
}

/// Plain text.
pub fn plain(s: impl Into<String>) -> Text {
    vec![Inline::Plain(s.into())]
}

/// Strong text.
pub fn strong(s: impl Into<String>) -> Inline {
    Inline::Strong(plain(s))
}

#[cfg(test)]
pub(crate) mod sample {
    //! A document with one of everything, as `compare` will build it: a
    //! verdict, a per-step table with A and B columns, two charts.
    use super::*;

    pub(crate) fn compare_like() -> Document {
        let mut t = Table::new(&["step", "p99>", "p99>"]);
        t.columns[1].group = Some("A".into());
        t.columns[2].group = Some("B".into());
        t.row(vec![
            Cell::from("create index").with_detail(vec![Inline::Code("CREATE INDEX `i`".into())]),
            "1017.7 ms".into(),
            "4.1 ms".into(),
        ])
        .tone = Tone::Fail;
        let mut sec = Section::new("steps", "Steps");
        sec.blocks.push(Block::Table(t));
        for name in ["latency", "locks"] {
            sec.blocks.push(Block::Chart(ChartRef {
                name: name.into(),
                caption: "A | B <overlaid>".into(),
            }));
        }
        Document {
            title: "pgrehearse compare: naive vs safe".into(),
            lead: vec![Block::Banner(
                Tone::Pass,
                vec![
                    Inline::Strong(vec![Inline::Badge(Tone::Pass, "B is safer".into())]),
                    Inline::Plain(": longest blocking hold 1199 ms → 0 ms".into()),
                ],
            )],
            sections: vec![sec],
            notes: vec![plain("a note")],
        }
    }
}
