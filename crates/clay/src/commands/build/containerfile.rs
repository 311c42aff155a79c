//! `--containerfile`: build the image with the container engine the machine has (podman, buildah or docker), save
//! it as an archive in a private directory, and read that like any other image source.
//!
//! The engine runs the Containerfile's steps in its own sandbox, as the user asked; clay itself still executes
//! nothing from the image. The image is tagged with a name of its own and removed from the engine's store once
//! saved, so repeated builds leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clay_source::SourceSpec;

use super::status;
use crate::output::{status_of, ScratchDir, UndoOnInterrupt};

/// Engines in the order they are tried; `CLAY_CONTAINER_ENGINE` picks one by name.
const ENGINES: [Engine; 3] = [Engine::Podman, Engine::Buildah, Engine::Docker];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Podman,
    Buildah,
    Docker,
}

impl Engine {
    fn program(self) -> &'static str {
        match self {
            Engine::Podman => "podman",
            Engine::Buildah => "buildah",
            Engine::Docker => "docker",
        }
    }

    /// The command that saves `tag` to `archive`, and the source spelling that reads the archive back.
    fn save(self, tag: &str, archive: &Path) -> (Vec<String>, SourceSpec) {
        let file = archive.display().to_string();
        match self {
            Engine::Podman => (
                vec![
                    "save".into(),
                    "--quiet".into(),
                    "--format".into(),
                    "oci-archive".into(),
                    "-o".into(),
                    file,
                    tag.into(),
                ],
                SourceSpec::OciArchive { path: archive.to_owned(), tag: None },
            ),
            Engine::Buildah => (
                vec!["push".into(), "--quiet".into(), tag.into(), format!("oci-archive:{file}")],
                SourceSpec::OciArchive { path: archive.to_owned(), tag: None },
            ),
            Engine::Docker => (
                vec!["save".into(), "-o".into(), file, tag.into()],
                SourceSpec::DockerArchive { path: archive.to_owned(), image: None },
            ),
        }
    }
}

/// What `--containerfile` needs.
#[derive(Debug)]
pub struct ContainerfileBuild<'a> {
    pub file: &'a Path,
    pub target: Option<&'a str>,
    /// The build context; the Containerfile's directory when not given.
    pub context: Option<&'a Path>,
    pub platform: Option<&'a str>,
}

/// A built and saved image: the source to read, and the private directory holding its archive.
#[derive(Debug)]
pub struct Built {
    pub spec: SourceSpec,
    pub _dir: ScratchDir,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn choose_engine() -> Result<Engine> {
    if let Ok(name) = std::env::var("CLAY_CONTAINER_ENGINE") {
        return ENGINES.into_iter().find(|e| e.program() == name).with_context(|| {
            format!("CLAY_CONTAINER_ENGINE is `{name}`, but clay knows only podman, buildah and docker")
        });
    }
    ENGINES.into_iter().find(|e| on_path(e.program())).context(
        "--containerfile needs a container engine, and none of podman, buildah or docker is installed; install one \
         (apt-get install podman)",
    )
}

fn run(engine: Engine, args: &[String], what: &str) -> Result<()> {
    // The engine's own output is the build log the user wants to see; it goes to stderr so stdout stays clean.
    let status = status_of(Command::new(engine.program()).args(args).stdin(Stdio::null()).stdout(std::io::stderr()))
        .with_context(|| format!("cannot run {}", engine.program()))?;
    if !status.success() {
        bail!("{} {what} failed ({status}); its messages are above", engine.program());
    }
    Ok(())
}

/// Builds the Containerfile and saves the image; the engine's store keeps nothing of it.
pub fn build(b: &ContainerfileBuild<'_>) -> Result<Built> {
    if !b.file.is_file() {
        bail!("the Containerfile `{}` does not exist", b.file.display());
    }
    let context: PathBuf = match b.context {
        Some(c) => c.to_owned(),
        None => b.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned(),
    };
    if !context.is_dir() {
        bail!("the build context `{}` is not a directory", context.display());
    }
    let engine = choose_engine()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tag = format!("localhost/clay-build-{}-{nanos}", std::process::id());
    let mut args: Vec<String> =
        vec!["build".into(), "-f".into(), b.file.display().to_string(), "-t".into(), tag.clone()];
    if let Some(target) = b.target {
        args.extend(["--target".into(), target.into()]);
    }
    if let Some(platform) = b.platform {
        args.extend(["--platform".into(), platform.into()]);
    }
    args.push(context.display().to_string());
    status(&format!("building {} with {}", b.file.display(), engine.program()));
    let rmi: Vec<String> = vec!["rmi".into(), "-f".into(), tag.clone()];
    // Interrupted from here on, the image is removed from the engine's store all the same.
    let undo = UndoOnInterrupt::register([vec![engine.program().to_owned()], rmi.clone()].concat());
    // A build that fails tags nothing.
    run(engine, &args, "build")?;

    // Saved or not, the image then leaves the store.
    let saved = ScratchDir::create("clay-image-").and_then(|dir| {
        let (save, spec) = engine.save(&tag, &dir.path().join("image.tar"));
        run(engine, &save, "save")?;
        Ok(Built { spec, _dir: dir })
    });
    let removed = run(engine, &rmi, "rmi");
    drop(undo);
    if removed.is_err() {
        super::warn(&format!("could not remove the image {tag} from {}'s store", engine.program()));
    }
    saved
}
