//! Which PostgreSQL versions this machine can rehearse on, and from where:
//! server binaries for the local backend, images in the Docker engine for
//! the docker backend. `run --pg-version` checks every version against this
//! before anything runs, and lists it when a version cannot be had.

use std::ops::RangeInclusive;

use super::pg_bin::{self, PgBin};

/// The majors pgrehearse rehearses on: 14 brought pg_locks.waitstart, which
/// the lock timings need; 18 is the newest it knows.
pub const SUPPORTED: RangeInclusive<u32> = 14..=18;

/// What the offline image script builds, per major.
pub fn offline_image(major: u32) -> String {
    format!("pgrehearse/postgres:{major}")
}

/// The official image of a major.
pub fn official_image(major: u32) -> String {
    format!("postgres:{major}")
}

/// The server binaries and Docker images found on this machine.
#[derive(Debug, Clone, Default)]
pub struct Available {
    /// One set of binaries per major, PGREHEARSE_PG_BIN's alone when set.
    pub local: Vec<PgBin>,
    /// Did a Docker engine answer?
    pub engine: bool,
    /// Every `repo:tag` the engine holds.
    pub images: Vec<String>,
}

impl Available {
    /// Look: binaries on disk, images in the engine (if one answers).
    pub async fn look() -> Available {
        let local = match std::env::var_os("PGREHEARSE_PG_BIN") {
            Some(_) => pg_bin::find_binaries(None).into_iter().collect(),
            None => pg_bin::installed(),
        };
        let (engine, images) = engine_images().await;
        Available {
            local,
            engine,
            images,
        }
    }

    pub fn local(&self, major: u32) -> Option<&PgBin> {
        self.local.iter().find(|b| b.major == major)
    }

    pub fn has_image(&self, image: &str) -> bool {
        let full = if image.contains(':') {
            image.to_string()
        } else {
            format!("{image}:latest")
        };
        self.images.contains(&full)
    }

    /// The engine's image for `major`: the offline build first, then the
    /// official image, when the engine holds it.
    pub fn image(&self, major: u32) -> Option<String> {
        [offline_image(major), official_image(major)]
            .into_iter()
            .find(|i| self.has_image(i))
    }

    /// Every major that can be had, and how: "15 (local
    /// /usr/lib/postgresql/15/bin; docker pgrehearse/postgres:15), 17
    /// (docker pgrehearse/postgres:17)", or "none".
    pub fn describe(&self) -> String {
        let mut majors: Vec<u32> = self.local.iter().map(|b| b.major).collect();
        majors.extend(SUPPORTED.filter(|m| self.image(*m).is_some()));
        majors.sort_unstable();
        majors.dedup();
        if majors.is_empty() {
            return "none".into();
        }
        majors
            .iter()
            .map(|m| {
                let mut how = Vec::new();
                if let Some(b) = self.local(*m) {
                    how.push(format!("local {}", b.dir.display()));
                }
                if let Some(i) = self.image(*m) {
                    how.push(format!("docker {i}"));
                }
                format!("{m} ({})", how.join("; "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The major a tag names: `15`, `15.4`, `17-bookworm` → 15, 15, 17;
/// `latest` → none.
pub fn tag_major(image: &str) -> Option<u32> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let (_, tag) = last.rsplit_once(':')?;
    let digits: String = tag.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(feature = "docker")]
async fn engine_images() -> (bool, Vec<String>) {
    use std::time::Duration;
    if !super::docker::engine_answers().await {
        return (false, Vec::new());
    }
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() else {
        return (false, Vec::new());
    };
    let listed = tokio::time::timeout(
        Duration::from_secs(10),
        docker.list_images(None::<testcontainers::bollard::query_parameters::ListImagesOptions>),
    )
    .await;
    match listed {
        Ok(Ok(images)) => (true, images.into_iter().flat_map(|i| i.repo_tags).collect()),
        _ => (true, Vec::new()),
    }
}

#[cfg(not(feature = "docker"))]
async fn engine_images() -> (bool, Vec<String>) {
    (false, Vec::new())
}

#[cfg(test)]
impl Available {
    /// A machine with local 15 and the offline images of 15 and 17.
    pub(crate) fn example() -> Available {
        Available {
            local: vec![PgBin {
                dir: std::path::PathBuf::from("/usr/lib/postgresql/15/bin"),
                major: 15,
            }],
            engine: true,
            images: vec![offline_image(15), offline_image(17)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_their_major() {
        assert_eq!(tag_major("pgrehearse/postgres:15"), Some(15));
        assert_eq!(tag_major("postgres:17.2-bookworm"), Some(17));
        assert_eq!(tag_major("registry:5000/team/pg:16"), Some(16));
        assert_eq!(tag_major("postgres:latest"), None);
        assert_eq!(tag_major("postgres"), None);
        assert_eq!(tag_major("registry:5000/pg"), None);
    }

    #[test]
    fn describes_what_can_be_had_and_how() {
        let mut a = Available::example();
        a.images = vec![
            "pgrehearse/postgres:15".into(),
            "postgres:17".into(),
            "other:1".into(),
        ];
        assert_eq!(
            a.describe(),
            "15 (local /usr/lib/postgresql/15/bin; docker pgrehearse/postgres:15), \
             17 (docker postgres:17)"
        );
        assert_eq!(a.image(17).as_deref(), Some("postgres:17"));
        assert_eq!(a.image(16), None);
        assert!(a.has_image("other:1"));
        assert_eq!(Available::default().describe(), "none");
    }
}
