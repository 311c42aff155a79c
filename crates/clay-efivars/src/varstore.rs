//! OVMF's variable store flash image (`OVMF_VARS*.fd`): read its variables, replace them, write a new image.
//!
//! The image is an EDK II firmware volume (PI 1.8 Vol. 3 §3.2.1, FileSystemGuid gEfiSystemNvDataFvGuid) holding,
//! in OVMF's layout: the variable store (VARIABLE_STORE_HEADER with gEfiAuthenticatedVariableGuid, then
//! AUTHENTICATED_VARIABLE_HEADER + name + data records on 4-byte boundaries, then erased flash), an event log
//! area, the fault-tolerant write (FTW) working block and its spare area. Writing rewrites only the variable
//! store and empties the FTW write queue; the firmware volume header and the FTW header stay as in the template,
//! so their checksum and CRC stay valid.

use std::mem::size_of;

use clay_gpt::Guid;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::ondisk::{
    read_at, slice_at, u32_len, usize_from, utf16_name, AuthVariableHeader, FtwWorkingBlockHeader, FvBlockMapEntry,
    FvHeader, VarStoreHeader, ERASED, FV_SIGNATURE, VARIABLE_ALIGNMENT, VARIABLE_START_ID, VARSTORE_FORMATTED,
    VARSTORE_HEALTHY, VAR_ADDED, VAR_IN_DELETED_TRANSITION,
};
use crate::{guids, AuthVariable, EfiTime, EfiVarsError, Result};

/// One variable of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub guid: Guid,
    /// EFI_VARIABLE_* bits (see [`crate::attributes`]).
    pub attributes: u32,
    /// For the deprecated count-based authenticated variables; 0 otherwise.
    pub monotonic_count: u64,
    /// The time of the last authenticated write of a time-based authenticated variable; zero otherwise.
    pub timestamp: EfiTime,
    /// For the deprecated count-based authenticated variables; 0 otherwise.
    pub pubkey_index: u32,
    pub data: Vec<u8>,
}

impl Variable {
    /// A variable without authentication data.
    pub fn new(name: &str, guid: Guid, attributes: u32, data: Vec<u8>) -> Variable {
        Variable {
            name: name.to_owned(),
            guid,
            attributes,
            monotonic_count: 0,
            timestamp: EfiTime::ZERO,
            pubkey_index: 0,
            data,
        }
    }

    /// Bytes this variable takes in the store, alignment padding included.
    fn stored_len(&self) -> usize {
        let name_len = self.name.encode_utf16().count().saturating_add(1).saturating_mul(2);
        size_of::<AuthVariableHeader>()
            .saturating_add(name_len)
            .saturating_add(self.data.len())
            .next_multiple_of(VARIABLE_ALIGNMENT)
    }
}

impl From<&AuthVariable> for Variable {
    /// The variable as the firmware stores it after accepting the authenticated write: its attributes without
    /// EFI_VARIABLE_APPEND_WRITE (which describes a write, not a variable), its timestamp and its data.
    fn from(auth: &AuthVariable) -> Variable {
        Variable {
            timestamp: auth.timestamp(),
            ..Variable::new(
                auth.name(),
                auth.guid(),
                auth.attributes() & !crate::attributes::APPEND_WRITE,
                auth.data().to_vec(),
            )
        }
    }
}

/// An OVMF variable store image and the variables it holds.
#[derive(Clone, Debug)]
pub struct VarStore {
    image: Vec<u8>,
    /// Where the first variable header goes.
    variables_start: usize,
    /// One past the variable store's last byte.
    store_end: usize,
    /// The FTW write queue (after the working block header), when the volume has a working block.
    ftw_queue: Option<(usize, usize)>,
    variables: Vec<Variable>,
}

impl VarStore {
    /// Reads a variable store image: the empty template of a distribution's OVMF (e.g.
    /// `/usr/share/OVMF/OVMF_VARS_4M.fd`) or a store a VM has used. Checks the firmware volume header and its
    /// checksum, the variable store header (which must be the authenticated-variable format, as OVMF's Secure Boot
    /// builds use) and the FTW working block's CRC, then collects the live variables.
    pub fn parse(image: &[u8]) -> Result<VarStore> {
        let not_store = |reason: String| EfiVarsError::NotVarStore(reason);
        let fv: FvHeader = read_at(image, 0, "firmware volume header")?;
        if fv.signature != FV_SIGNATURE {
            return Err(not_store("the image does not start with a firmware volume header (`_FVH`)".into()));
        }
        if fv.file_system_guid != guids::SYSTEM_NV_DATA_FV {
            return Err(not_store(format!(
                "its firmware volume is of type {} instead of {} (gEfiSystemNvDataFvGuid)",
                fv.file_system_guid,
                guids::SYSTEM_NV_DATA_FV
            )));
        }
        let fv_len = usize::try_from(fv.fv_length.get()).unwrap_or(usize::MAX);
        if fv_len > image.len() {
            return Err(not_store(format!("its firmware volume is {fv_len} bytes but the image {}", image.len())));
        }
        let header_len = usize::from(fv.header_length.get());
        let header = slice_at(image, 0, header_len, "firmware volume header")?;
        if header_len < size_of::<FvHeader>() + size_of::<FvBlockMapEntry>() || header_len % 2 != 0 {
            return Err(not_store(format!("its firmware volume HeaderLength {header_len} is invalid")));
        }
        let sum =
            header.chunks_exact(2).fold(0u16, |sum, pair| sum.wrapping_add(u16::from_le_bytes([pair[0], pair[1]])));
        if sum != 0 {
            return Err(EfiVarsError::BadFvChecksum { sum });
        }
        let block: FvBlockMapEntry = read_at(image, size_of::<FvHeader>(), "firmware volume block map")?;
        let block_len = usize_from(block.length.get());

        let store: VarStoreHeader = read_at(image, header_len, "variable store header")?;
        if store.signature != guids::AUTHENTICATED_VARIABLE {
            return Err(not_store(format!(
                "its variable store has signature {} instead of {} (gEfiAuthenticatedVariableGuid)",
                store.signature,
                guids::AUTHENTICATED_VARIABLE
            )));
        }
        if store.format != VARSTORE_FORMATTED || store.state != VARSTORE_HEALTHY {
            return Err(not_store(format!(
                "its variable store is not formatted and healthy (format {:#04x}, state {:#04x})",
                store.format, store.state
            )));
        }
        let store_end = header_len.saturating_add(usize_from(store.size.get()));
        let variables_start = (header_len + size_of::<VarStoreHeader>()).next_multiple_of(VARIABLE_ALIGNMENT);
        if store_end > fv_len || variables_start > store_end {
            return Err(not_store(format!("its variable store size {} does not fit the volume", store.size.get())));
        }

        let ftw_queue = find_ftw_queue(image, store_end, fv_len, block_len)?;
        let variables = read_variables(image, variables_start, store_end)?;
        Ok(VarStore { image: image.to_vec(), variables_start, store_end, ftw_queue, variables })
    }

    /// The live variables, in store order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The variable `name` of vendor `guid`.
    pub fn get(&self, name: &str, guid: Guid) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name && v.guid == guid)
    }

    /// Adds `variable`, or replaces the variable of the same name and GUID in its place.
    pub fn set(&mut self, variable: Variable) -> Result<&mut VarStore> {
        utf16_name(&variable.name)?;
        match self.variables.iter_mut().find(|v| v.name == variable.name && v.guid == variable.guid) {
            Some(existing) => *existing = variable,
            None => self.variables.push(variable),
        }
        Ok(self)
    }

    /// Removes the variable `name` of vendor `guid` and returns it.
    pub fn remove(&mut self, name: &str, guid: Guid) -> Option<Variable> {
        let index = self.variables.iter().position(|v| v.name == name && v.guid == guid)?;
        Some(self.variables.remove(index))
    }

    /// Bytes the variable store holds for variable records.
    pub fn capacity(&self) -> usize {
        self.store_end - self.variables_start
    }

    /// Bytes the current variables take.
    pub fn used(&self) -> usize {
        self.variables.iter().map(Variable::stored_len).fold(0, usize::saturating_add)
    }

    /// The new image: the template with its variable store holding exactly [`variables`](Self::variables), in
    /// order, each with State VAR_ADDED, and the rest of the store and the FTW write queue erased. The same
    /// variables always give the same bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let needed = self.used();
        if needed > self.capacity() {
            return Err(EfiVarsError::StoreFull { needed, available: self.capacity() });
        }
        let mut image = self.image.clone();
        image[self.variables_start..self.store_end].fill(ERASED);
        let mut offset = self.variables_start;
        for variable in &self.variables {
            let record = encode_variable(variable)?;
            image[offset..offset + record.len()].copy_from_slice(&record);
            offset += variable.stored_len();
        }
        if let Some((start, end)) = self.ftw_queue {
            // A stale pending write in the queue would be replayed over the new store at the next boot.
            image[start..end].fill(ERASED);
        }
        Ok(image)
    }
}

/// One variable record, without its alignment padding (which stays erased).
fn encode_variable(variable: &Variable) -> Result<Vec<u8>> {
    let mut name = utf16_name(&variable.name)?;
    name.extend_from_slice(&[0, 0]);
    let header = AuthVariableHeader {
        start_id: U16::new(VARIABLE_START_ID),
        state: VAR_ADDED,
        reserved: 0,
        attributes: U32::new(variable.attributes),
        monotonic_count: U64::new(variable.monotonic_count),
        timestamp: variable.timestamp.to_raw(),
        pubkey_index: U32::new(variable.pubkey_index),
        name_size: U32::new(u32_len(name.len(), "variable name")?),
        data_size: U32::new(u32_len(variable.data.len(), "variable data")?),
        vendor_guid: variable.guid,
    };
    let mut record = Vec::with_capacity(size_of::<AuthVariableHeader>() + name.len() + variable.data.len());
    record.extend_from_slice(header.as_bytes());
    record.extend_from_slice(&name);
    record.extend_from_slice(&variable.data);
    Ok(record)
}

/// The variables between `start` and `end`, up to the first slot without a variable header, as EDK II's variable
/// driver walks them. Deleted records are skipped; a record in deleted transition counts only when no live record
/// of the same name and GUID replaced it (EDK II's rule after an interrupted update).
fn read_variables(image: &[u8], start: usize, end: usize) -> Result<Vec<Variable>> {
    let mut live = Vec::new();
    let mut in_transition = Vec::new();
    let mut offset = start;
    while offset + size_of::<AuthVariableHeader>() <= end {
        let header: AuthVariableHeader = read_at(image, offset, "variable header")?;
        if header.start_id.get() != VARIABLE_START_ID {
            break;
        }
        let name_size = usize_from(header.name_size.get());
        let data_size = usize_from(header.data_size.get());
        let name_offset = offset + size_of::<AuthVariableHeader>();
        let record_end = name_offset.saturating_add(name_size).saturating_add(data_size);
        if record_end > end {
            return Err(EfiVarsError::VariableOverrun { offset, end });
        }
        let state = header.state;
        if state == VAR_ADDED || state == VAR_ADDED & VAR_IN_DELETED_TRANSITION {
            let name = decode_name(&image[name_offset..name_offset + name_size], name_offset)?;
            let variable = Variable {
                name,
                guid: header.vendor_guid,
                attributes: header.attributes.get(),
                monotonic_count: header.monotonic_count.get(),
                timestamp: EfiTime::from_raw(&header.timestamp),
                pubkey_index: header.pubkey_index.get(),
                data: image[name_offset + name_size..record_end].to_vec(),
            };
            if state == VAR_ADDED {
                live.push(variable);
            } else {
                in_transition.push(variable);
            }
        }
        offset = record_end.next_multiple_of(VARIABLE_ALIGNMENT);
    }
    for variable in in_transition {
        if !live.iter().any(|v| v.name == variable.name && v.guid == variable.guid) {
            live.push(variable);
        }
    }
    Ok(live)
}

/// A stored name: UTF-16LE ending in its NUL terminator.
fn decode_name(bytes: &[u8], offset: usize) -> Result<String> {
    let bad = || EfiVarsError::BadStoredName { offset };
    if bytes.len() < 4 || bytes.len() % 2 != 0 {
        return Err(bad());
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
    match units.split_last() {
        Some((0, name)) if !name.contains(&0) => String::from_utf16(name).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Finds the FTW working block after the variable store (it starts on a block boundary) and returns the range of
/// its write queue; checks the header CRC.
fn find_ftw_queue(image: &[u8], store_end: usize, fv_len: usize, block_len: usize) -> Result<Option<(usize, usize)>> {
    if block_len == 0 {
        return Ok(None);
    }
    let mut offset = store_end.next_multiple_of(block_len);
    while offset + size_of::<FtwWorkingBlockHeader>() <= fv_len {
        let header: FtwWorkingBlockHeader = read_at(image, offset, "FTW working block header")?;
        if header.signature == guids::FTW_WORKING_BLOCK {
            let mut erased = header;
            erased.crc = U32::new(u32::MAX);
            erased.state = ERASED;
            let computed = crc32fast::hash(erased.as_bytes());
            if computed != header.crc.get() {
                return Err(EfiVarsError::BadFtwCrc { offset, stored: header.crc.get(), computed });
            }
            let start = offset + size_of::<FtwWorkingBlockHeader>();
            let queue_len = usize::try_from(header.write_queue_size.get()).unwrap_or(usize::MAX);
            let end = start.saturating_add(queue_len);
            if end > fv_len {
                return Err(EfiVarsError::NotVarStore(format!(
                    "its FTW write queue of {queue_len} bytes at offset {start} runs past the volume"
                )));
            }
            return Ok(Some((start, end)));
        }
        offset += block_len;
    }
    Ok(None)
}
