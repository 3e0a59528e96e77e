//! Postgres table-level lock modes as a type, with the documented conflict
//! matrix, and what each mode takes away from the application.

use crate::record::Blocks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

use LockMode::*;

impl LockMode {
    /// Every mode, weakest first: the variants once more, since Rust lists
    /// an enum's variants only through a derive crate we do not need.
    pub const ALL: [LockMode; 8] = [
        AccessShare,
        RowShare,
        RowExclusive,
        ShareUpdateExclusive,
        Share,
        ShareRowExclusive,
        Exclusive,
        AccessExclusive,
    ];

    /// Parse pg_locks.mode ("AccessExclusiveLock") or the SQL spelling
    /// ("ACCESS EXCLUSIVE").
    pub fn parse(s: &str) -> Option<LockMode> {
        let norm: String = s
            .trim()
            .trim_end_matches("Lock")
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        let norm = norm.strip_suffix("lock").unwrap_or(&norm).to_string();
        Some(match norm.as_str() {
            "accessshare" => AccessShare,
            "rowshare" => RowShare,
            "rowexclusive" => RowExclusive,
            "shareupdateexclusive" => ShareUpdateExclusive,
            "share" => Share,
            "sharerowexclusive" => ShareRowExclusive,
            "exclusive" => Exclusive,
            "accessexclusive" => AccessExclusive,
            _ => return None,
        })
    }

    /// The pg_locks spelling.
    pub fn pg_name(self) -> &'static str {
        match self {
            AccessShare => "AccessShareLock",
            RowShare => "RowShareLock",
            RowExclusive => "RowExclusiveLock",
            ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            Share => "ShareLock",
            ShareRowExclusive => "ShareRowExclusiveLock",
            Exclusive => "ExclusiveLock",
            AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The conflict matrix from the PostgreSQL documentation (13.3.1).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        let (a, b) = (self as usize, other as usize);
        const M: [[bool; 8]; 8] = {
            const F: bool = false;
            const T: bool = true;
            [
                [F, F, F, F, F, F, F, T], // AccessShare
                [F, F, F, F, F, F, T, T], // RowShare
                [F, F, F, F, T, T, T, T], // RowExclusive
                [F, F, F, T, T, T, T, T], // ShareUpdateExclusive
                [F, F, T, T, F, T, T, T], // Share
                [F, F, T, T, T, T, T, T], // ShareRowExclusive
                [F, T, T, T, T, T, T, T], // Exclusive
                [T, T, T, T, T, T, T, T], // AccessExclusive
            ]
        };
        M[a][b]
    }

    /// What holding this mode on a table takes from the application: plain
    /// SELECT needs AccessShare, INSERT/UPDATE/DELETE need RowExclusive.
    pub fn blocks(self) -> Blocks {
        if self.conflicts_with(AccessShare) {
            Blocks::ReadsWrites
        } else if self.conflicts_with(RowExclusive) {
            Blocks::Writes
        } else {
            Blocks::None
        }
    }
}

/// Is `relation` marked in locks.csv as created by its step (`(new)`,
/// `(new, dropped)`)?
pub fn marked_new(relation: &str) -> bool {
    relation.ends_with(" (new)") || relation.ends_with(" (new, dropped)")
}

/// A relation's name without the mark its step gave it in locks.csv
/// (`audit (new)` → `audit`): app waits name it as the app saw it.
pub fn unmarked(relation: &str) -> &str {
    [" (new, dropped)", " (new)", " (dropped)"]
        .iter()
        .find_map(|m| relation.strip_suffix(m))
        .unwrap_or(relation)
}

/// What a pg_locks row blocks: relation locks by the matrix; other lock types
/// (transactionid, virtualxid, object, advisory) block nothing the app does
/// by themselves.
pub fn blocks_of(locktype: &str, mode: &str) -> Blocks {
    if locktype != "relation" {
        return Blocks::None;
    }
    LockMode::parse(mode)
        .map(LockMode::blocks)
        .unwrap_or(Blocks::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relation_unmarked_is_its_name() {
        assert_eq!(unmarked("audit (new)"), "audit");
        assert_eq!(unmarked("public.t_idx (new, dropped)"), "public.t_idx");
        assert_eq!(unmarked("old (dropped)"), "old");
        assert_eq!(unmarked("orders"), "orders");
    }

    #[test]
    fn matrix_is_symmetric() {
        for a in LockMode::ALL {
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn blocks_follow_the_matrix() {
        assert_eq!(AccessExclusive.blocks(), Blocks::ReadsWrites);
        assert_eq!(Share.blocks(), Blocks::Writes);
        assert_eq!(ShareRowExclusive.blocks(), Blocks::Writes);
        assert_eq!(Exclusive.blocks(), Blocks::Writes);
        assert_eq!(ShareUpdateExclusive.blocks(), Blocks::None);
        assert_eq!(RowExclusive.blocks(), Blocks::None);
        assert_eq!(AccessShare.blocks(), Blocks::None);
    }

    #[test]
    fn parses_both_spellings() {
        for m in LockMode::ALL {
            assert_eq!(LockMode::parse(m.pg_name()), Some(m));
        }
        assert_eq!(LockMode::parse("ACCESS EXCLUSIVE"), Some(AccessExclusive));
        assert_eq!(
            LockMode::parse("share row exclusive"),
            Some(ShareRowExclusive)
        );
        assert_eq!(LockMode::parse("bogus"), None);
    }
}
