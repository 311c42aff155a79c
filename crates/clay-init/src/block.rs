//! Finding partitions by PARTUUID: every disk the kernel knows is read for a GPT (with clay-gpt, the same code
//! that wrote it), and a wanted partition's number is matched to its node under `/dev`. Disks appear while their
//! drivers probe, so the scan repeats until every wanted partition is found or the wait runs out.

use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clay_gpt::Guid;

use crate::console::{say, Failure, Log};

const SYS_BLOCK: &str = "/sys/class/block";
/// Kernel block devices that never hold the image's partitions.
const SKIP: [&str; 6] = ["loop", "ram", "dm-", "zram", "sr", "fd"];
/// How often the disks are read again while waiting.
const POLL: Duration = Duration::from_millis(100);
/// When to say on the console that we are still waiting.
const PATIENCE: Duration = Duration::from_secs(5);
/// The default wait, long enough for USB disks under emulation; `clay.rootwait=SECONDS` changes it.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// One wanted partition: its PARTUUID and what it is for, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub uuid: Guid,
    pub role: &'a str,
}

/// A found partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// `/dev/vda2`.
    pub node: PathBuf,
    /// `major:minor`, as device-mapper tables take it.
    pub dev: String,
    pub size: u64,
}

fn read_trimmed(path: PathBuf) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// The whole disks the kernel has now, by name.
fn disks() -> Vec<String> {
    let Ok(entries) = fs::read_dir(SYS_BLOCK) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !SKIP.iter().any(|p| name.starts_with(p)))
        .filter(|name| !PathBuf::from(SYS_BLOCK).join(name).join("partition").exists())
        .collect();
    names.sort();
    names
}

/// The partitions of `disk` whose PARTUUID is in `wanted`, by wanted index.
fn scan_disk(disk: &str, wanted: &[Wanted<'_>], found: &mut [Option<Partition>]) {
    let sys = PathBuf::from(SYS_BLOCK).join(disk);
    let Some(sectors) = read_trimmed(sys.join("size")).and_then(|s| s.parse::<u64>().ok()) else { return };
    let size = sectors * 512;
    let mut head = vec![0u8; clay_gpt::READ_LEN];
    if size < head.len() as u64 {
        return;
    }
    let Ok(mut file) = File::open(PathBuf::from("/dev").join(disk)) else { return };
    if file.read_exact(&mut head).is_err() {
        return;
    }
    let Ok(table) = clay_gpt::read_gpt(&head, size) else { return };
    for part in &table.partitions {
        let Some(index) = wanted.iter().position(|w| w.uuid == part.guid) else { continue };
        if found[index].is_some() {
            continue;
        }
        // The partition's node: the child of the disk whose `partition` file holds this number.
        let Ok(children) = fs::read_dir(&sys) else { continue };
        for child in children.filter_map(Result::ok) {
            let number = read_trimmed(child.path().join("partition"));
            if number.as_deref() != Some(part.number.to_string().as_str()) {
                continue;
            }
            let Some(dev) = read_trimmed(child.path().join("dev")) else { continue };
            let node = PathBuf::from("/dev").join(child.file_name());
            if node.exists() {
                found[index] = Some(Partition { node, dev, size: part.len() });
            }
        }
    }
}

/// Waits until every wanted partition is found, or fails naming the missing ones and the disks that were seen.
pub fn wait_for(log: &mut Log, wanted: &[Wanted<'_>], wait: Duration) -> Result<Vec<Partition>, Failure> {
    let started = Instant::now();
    let mut told = false;
    loop {
        let mut found = vec![None; wanted.len()];
        let disks = disks();
        for disk in &disks {
            scan_disk(disk, wanted, &mut found);
        }
        if found.iter().all(Option::is_some) {
            let found: Vec<Partition> = found.into_iter().flatten().collect();
            for (w, p) in wanted.iter().zip(&found) {
                log.step(format_args!("found the {} partition {} at {}", w.role, w.uuid, p.node.display()));
            }
            return Ok(found);
        }
        let missing: Vec<String> = wanted
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(w, _)| format!("the {} partition (PARTUUID {})", w.role, w.uuid))
            .collect();
        if started.elapsed() >= wait {
            let seen = if disks.is_empty() { "no disks at all".to_owned() } else { disks.join(", ") };
            return Err(Failure::new(
                format!("cannot find {}", missing.join(" and ")),
                format_args!(
                    "not on any disk after {} s (seen: {seen}); is the disk attached, and is its driver in the \
                     kernel? clay.rootwait=SECONDS waits longer",
                    wait.as_secs()
                ),
            ));
        }
        if !told && started.elapsed() >= PATIENCE {
            say(format_args!("waiting for {}", missing.join(" and ")));
            told = true;
        }
        std::thread::sleep(POLL);
    }
}
