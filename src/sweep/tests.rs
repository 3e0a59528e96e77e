//! The sweep's answer from hand-made measurements (no server).

use super::collect::Unit;
use super::render::{count, human, shorten};

#[test]
fn people_units() {
    assert_eq!(count(400e6), "400M");
    assert_eq!(count(1.6e6), "1.6M");
    assert_eq!(count(32_000.0), "32k");
    assert_eq!(human(38.0 * 60_000.0, Unit::Ms), "38 min");
    assert_eq!(human(2_400.0, Unit::Ms), "2.4 s");
    assert_eq!(human(1.2e9, Unit::Bytes), "1.2 GB");
    assert_eq!(
        shorten("CREATE INDEX\n  i ON t (c)"),
        "CREATE INDEX i ON t (c)"
    );
}
