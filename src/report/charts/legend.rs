//! The legend as a panel right of the plot, so it never covers data: a
//! mark and a label per entry, long labels wrapped, headings to group them.

use plotters::prelude::*;

use super::frame::{err, Area, FONT};

/// How an entry is drawn.
#[derive(Clone, Copy)]
pub(crate) enum Mark {
    /// A line of this width.
    Line(RGBColor, u32),
    /// A dashed line of this width.
    Dashed(RGBColor, u32),
    Dot(RGBColor),
    /// A filled box.
    Fill(RGBColor),
    /// An outlined box (something waiting).
    Outline(RGBColor),
    /// No mark: a group heading.
    Heading,
    /// No mark: an explanation, in grey.
    Note,
}

#[derive(Default)]
pub(crate) struct Legend {
    entries: Vec<(Mark, String)>,
}

const LINE_H: i32 = 16;
const TEXT_X: i32 = 36;

impl Legend {
    pub fn add(&mut self, mark: Mark, label: impl Into<String>) -> &mut Legend {
        self.entries.push((mark, label.into()));
        self
    }

    pub fn heading(&mut self, label: impl Into<String>) -> &mut Legend {
        self.add(Mark::Heading, label)
    }

    pub fn note(&mut self, text: impl Into<String>) -> &mut Legend {
        self.add(Mark::Note, text)
    }

    /// Draw into `area` (the panel), from its top.
    pub fn draw<DB: DrawingBackend>(&self, area: &Area<'_, DB>) -> anyhow::Result<()> {
        let width_chars = ((area.dim_in_pixel().0 as i32 - TEXT_X - 6) / 7).max(10) as usize;
        let mut y = 8;
        for (k, (mark, label)) in self.entries.iter().enumerate() {
            if let Mark::Heading = mark {
                if k > 0 {
                    y += 6;
                }
                area.draw(&Text::new(
                    label.clone(),
                    (4, y),
                    (FONT, 13, FontStyle::Bold).into_font().color(&BLACK),
                ))
                .map_err(err)?;
                y += LINE_H + 2;
                continue;
            }
            draw_mark(area, *mark, y + 7)?;
            let (x, color, chars) = match mark {
                Mark::Note => (8, RGBColor(100, 100, 100), width_chars + 4),
                _ => (TEXT_X, RGBColor(40, 40, 40), width_chars),
            };
            for line in wrap(label, chars) {
                area.draw(&Text::new(
                    line,
                    (x, y),
                    (FONT, 13).into_font().color(&color),
                ))
                .map_err(err)?;
                y += LINE_H;
            }
            y += 3;
        }
        Ok(())
    }
}

fn draw_mark<DB: DrawingBackend>(area: &Area<'_, DB>, mark: Mark, y: i32) -> anyhow::Result<()> {
    let (x0, x1) = (8, 28);
    match mark {
        Mark::Line(c, w) => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(w))),
        Mark::Dashed(c, w) => area
            .draw(&PathElement::new(
                vec![(x0, y), (x0 + 7, y)],
                c.stroke_width(w),
            ))
            .and_then(|_| {
                area.draw(&PathElement::new(
                    vec![(x1 - 7, y), (x1, y)],
                    c.stroke_width(w),
                ))
            }),
        Mark::Dot(c) => area.draw(&Circle::new(((x0 + x1) / 2, y), 3, c.filled())),
        Mark::Fill(c) => area.draw(&Rectangle::new([(x0, y - 6), (x1, y + 6)], c.filled())),
        Mark::Outline(c) => area.draw(&Rectangle::new(
            [(x0, y - 6), (x1, y + 6)],
            c.stroke_width(2),
        )),
        Mark::Heading | Mark::Note => Ok(()),
    }
    .map_err(err)
}

/// Words on lines of at most `width` characters (a longer word gets its
/// own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_labels_wrap_at_word_boundaries() {
        assert_eq!(
            super::wrap("held on a relation the step creates (blocks nobody)", 24),
            ["held on a relation the", "step creates (blocks", "nobody)"]
        );
        assert_eq!(super::wrap("short", 24), ["short"]);
    }
}
