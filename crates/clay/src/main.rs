//! `clay`: turns container images and root filesystems into bootable operating systems.
//!
//! A thin binary over the library crates: arguments are parsed here, validated into ready-to-use options, and
//! handed to one command module each. Errors print as one sentence (plus their causes) and exit non-zero.

mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "clay", version, about = "Turn container images and root filesystems into bootable operating systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at start-up: boxing the large `build` arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Build bootable artifacts (a Unified Kernel Image, ...) from a root filesystem.
    Build(commands::build::BuildArgs),
    /// Boot an image in QEMU with its serial console on this terminal.
    Run(commands::run::RunArgs),
    /// Show what is inside an image: sections, command line, kernel, OS.
    Inspect(commands::inspect::InspectArgs),
    /// Secure Boot keys: `clay keys generate DIR` makes a PK, KEK and db set to enroll in firmware.
    Keys(commands::keys::KeysArgs),
    /// Sign the UKI of an image built elsewhere (a .efi, or the UKI in a raw disk or an ISO) for Secure Boot.
    Sign(commands::sign::SignArgs),
    /// Check that an image's UKI is signed by a certificate (or one it issued).
    Verify(commands::sign::VerifyArgs),
    /// Push an image to a registry: a .containerdisk.tar as the image it holds, a UKI, disk or ISO as an OCI
    /// artifact.
    Push(commands::push::PushArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // From the start, so that an interrupt at any point stops the programs clay started (a credential helper, the
    // KVM probe) and removes what it made.
    output::install_handler();
    output::on_interrupt_say(match cli.command {
        Command::Build(_) | Command::Keys(_) | Command::Sign(_) => "no output was written",
        Command::Run(_) => "the virtual machine was stopped",
        Command::Inspect(_) | Command::Verify(_) | Command::Push(_) => "",
    });
    let result = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Keys(args) => commands::keys::run(args),
        Command::Sign(args) => commands::sign::sign(args),
        Command::Verify(args) => commands::sign::verify(args),
        Command::Push(args) => commands::push::run(args),
    };
    // A child stopped by the signal handler fails, or is ignored; either way the handler ends the run, not this.
    output::park_if_interrupted();
    match result {
        Ok(code) => code,
        Err(err) => {
            let mut message = format!("clay: error: {err}");
            for cause in err.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
