//! `--pg-version 15,17,18`: one [`Variation`] per version, each with the
//! server that can give it — local binaries, or an image in the Docker
//! engine — decided before anything runs. A version pgrehearse does not know
//! (`9`, `99`, `abc`) or that this machine cannot give is exit 3, naming
//! every such version, why, and what is available instead.

use crate::backend::available::{offline_image, tag_major, Available, SUPPORTED};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::options::ServerOptions;
use crate::scenario::Scenario;

use super::Variation;

/// The variations of `scenario` for `versions` (as given, well-formed).
pub fn variations(
    versions: &[String],
    server: &ServerOptions,
    scenario: &Scenario,
    available: &Available,
) -> Result<Vec<Variation>> {
    let mut unknown = Vec::new();
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for v in versions {
        let Some(major) = v.parse::<u32>().ok().filter(|m| SUPPORTED.contains(m)) else {
            unknown.push(v.as_str());
            continue;
        };
        // An image from the scenario or PGREHEARSE_IMAGE serves the version
        // its tag names; --image with a single version serves that one.
        let explicit = server
            .image
            .as_ref()
            .filter(|_| versions.len() == 1 && !server.image_from_env);
        let tagged = [server.image.as_ref(), scenario.postgres.image.as_ref()]
            .into_iter()
            .flatten()
            .find(|i| tag_major(i) == Some(major));
        match source(major, server.backend, explicit.or(tagged), available) {
            Ok((backend, image)) => out.push(Variation {
                label: major.to_string(),
                server: ServerOptions {
                    backend,
                    image,
                    version: Some(major.to_string()),
                    ..server.clone()
                },
            }),
            Err(why) => missing.push(format!("{major}: {why}")),
        }
    }
    if unknown.is_empty() && missing.is_empty() {
        return Ok(out);
    }
    // One line to say it, one per version, then what there is instead.
    let mut msg = format!(
        "--pg-version {}: {} of {} cannot be rehearsed on here",
        versions.join(","),
        unknown.len() + missing.len(),
        versions.len()
    );
    if !unknown.is_empty() {
        let what = match unknown.len() {
            1 => "is not a PostgreSQL major version",
            _ => "are not PostgreSQL major versions",
        };
        msg.push_str(&format!(
            "\n  {} {what} pgrehearse rehearses on ({} to {}: the lock timings need \
             pg_locks.waitstart, new in 14)",
            unknown.join(", "),
            SUPPORTED.start(),
            SUPPORTED.end()
        ));
    }
    for m in &missing {
        msg.push_str(&format!("\n  {m}"));
    }
    msg.push_str(&format!(
        "\nAvailable on this machine: {}",
        available.describe()
    ));
    Err(Error::NoPostgres(msg))
}

/// Where `major` comes from on `backend`: (backend, image), or why it
/// cannot be had. `auto` prefers local binaries, then an image the engine
/// already holds (nothing is pulled).
fn source(
    major: u32,
    backend: BackendKind,
    image: Option<&String>,
    available: &Available,
) -> std::result::Result<(BackendKind, Option<String>), String> {
    let local = available.local(major);
    let image = match image {
        Some(i) if available.has_image(i) => Some(i.clone()),
        Some(_) => None,
        None => available.image(major),
    };
    let no_local = || match std::env::var_os("PGREHEARSE_PG_BIN") {
        Some(dir) => format!(
            "PGREHEARSE_PG_BIN={} is not PostgreSQL {major}",
            std::path::Path::new(&dir).display()
        ),
        None => format!("no local binaries under /usr/lib/postgresql/{major}/bin"),
    };
    let no_image = || {
        if available.engine {
            format!(
                "no image {} in the Docker engine; build it with \
                 .ci/build-postgres-image.sh {major}",
                offline_image(major)
            )
        } else {
            "no Docker engine answered".to_string()
        }
    };
    match backend {
        BackendKind::Local => local
            .map(|_| (BackendKind::Local, None))
            .ok_or_else(|| format!("{} (install postgresql-{major})", no_local())),
        BackendKind::Docker => image
            .map(|i| (BackendKind::Docker, Some(i)))
            .ok_or_else(no_image),
        BackendKind::Auto => match (local, image) {
            (Some(_), _) => Ok((BackendKind::Local, None)),
            (None, Some(i)) => Ok((BackendKind::Docker, Some(i))),
            (None, None) => Err(format!("{} and {}", no_local(), no_image())),
        },
        BackendKind::Url => Err("the url backend rehearses on its own server".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Available {
        Available::example()
    }

    fn server(backend: BackendKind, image: Option<&str>, from_env: bool) -> ServerOptions {
        ServerOptions {
            backend,
            image: image.map(str::to_string),
            database_url: None,
            version: None,
            image_from_env: from_env,
            reuse: false,
        }
    }

    fn scenario() -> Scenario {
        crate::scenario::load_str(
            std::path::Path::new("s.toml"),
            include_bytes!("../../tests/fixtures/good/tiny.toml"),
            &Default::default(),
        )
        .unwrap()
    }

    fn plan(
        versions: &[&str],
        s: ServerOptions,
    ) -> Result<Vec<(String, BackendKind, Option<String>)>> {
        let v: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        Ok(variations(&v, &s, &scenario(), &machine())?
            .into_iter()
            .map(|v| (v.label, v.server.backend, v.server.image))
            .collect())
    }

    #[test]
    fn auto_prefers_local_binaries_then_the_engines_image() {
        let got = plan(&["15", "17"], server(BackendKind::Auto, None, false)).unwrap();
        assert_eq!(
            got,
            [
                ("15".into(), BackendKind::Local, None),
                (
                    "17".into(),
                    BackendKind::Docker,
                    Some("pgrehearse/postgres:17".into())
                )
            ]
        );
    }

    #[test]
    fn an_image_from_the_environment_serves_only_its_own_version() {
        let env = server(BackendKind::Docker, Some("pgrehearse/postgres:15"), true);
        let got = plan(&["15", "17"], env).unwrap();
        assert_eq!(got[0].2.as_deref(), Some("pgrehearse/postgres:15"));
        assert_eq!(got[1].2.as_deref(), Some("pgrehearse/postgres:17"));
        // --image with one version is taken as is.
        let flag = server(BackendKind::Docker, Some("pgrehearse/postgres:15"), false);
        assert_eq!(
            plan(&["17"], flag).unwrap()[0].2.as_deref(),
            Some("pgrehearse/postgres:15")
        );
    }

    #[test]
    fn unknown_and_unavailable_versions_are_named_with_what_is_available() {
        let e = plan(
            &["9", "15", "abc", "18"],
            server(BackendKind::Auto, None, false),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        let m = e.to_string();
        assert!(
            m.contains("9, abc are not PostgreSQL major versions"),
            "{m}"
        );
        assert!(
            m.contains(
                "18: no local binaries under /usr/lib/postgresql/18/bin and no image \
                 pgrehearse/postgres:18 in the Docker engine; build it with \
                 .ci/build-postgres-image.sh 18"
            ),
            "{m}"
        );
        assert!(
            m.contains("Available on this machine: 15 (local /usr/lib/postgresql/15/bin; docker pgrehearse/postgres:15), 17 (docker pgrehearse/postgres:17)"),
            "{m}"
        );
        let e = plan(&["17"], server(BackendKind::Local, None, false)).unwrap_err();
        assert!(e.to_string().contains("17: no local binaries"), "{e}");
    }
}
