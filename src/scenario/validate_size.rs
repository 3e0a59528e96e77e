//! `[postgres] size = { cpus = 4, memory = "16GB" }`, validated into a
//! [`ServerSize`] whose parts remember where they were written (for the
//! messages of the machine check, which runs later, at provisioning).

use super::diag::Diags;
use super::model::SizeSection;
use crate::sizing::{parse_memory, ServerSize, MAX_CPUS};

/// `sec` keeps no span of its own (toml gives none to a table that dotted
/// keys create, `size.cpus = 4`): an empty one is located in the text.
pub(super) fn size(d: &mut Diags, sec: &SizeSection) -> Option<ServerSize> {
    if sec.cpus.is_none() && sec.memory.is_none() {
        d.err(
            super::span::table_span(d.text, "postgres.size"),
            "postgres.size",
            "is empty; expected cpus and/or memory, e.g. { cpus = 4, memory = \"16GB\" }",
        );
        return None;
    }
    let at = |d: &Diags, field: &str, span: std::ops::Range<usize>| {
        format!(
            "postgres.size.{field} ({}:{})",
            d.file.display(),
            d.line_of(span)
        )
    };
    let cpus = sec.cpus.as_ref().and_then(|c| {
        let n = d.int_in(c, "postgres.size.cpus", 1, i64::from(MAX_CPUS))?;
        Some((n as u32, at(d, "cpus", c.span())))
    });
    let memory = sec
        .memory
        .as_ref()
        .and_then(|m| match parse_memory(m.get_ref()) {
            Ok(bytes) => Some((bytes, at(d, "memory", m.span()))),
            Err(e) => {
                d.err(m.span(), "postgres.size.memory", e);
                None
            }
        });
    if sec.cpus.is_some() && cpus.is_none() || sec.memory.is_some() && memory.is_none() {
        return None;
    }
    let (cpus, cpus_from) = cpus.map_or((None, String::new()), |(c, f)| (Some(c), f));
    let (memory, memory_from) = memory.map_or((None, String::new()), |(m, f)| (Some(m), f));
    Some(ServerSize {
        cpus,
        memory,
        cpus_from,
        memory_from,
    })
}
