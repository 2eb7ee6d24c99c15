// SPDX-License-Identifier: GPL-2.0

//! Flash pool devices from user space: `fvpctl pool check --flash` (like
//! `cache_check`) reads them with the decoders the kernel uses (`fvp_logic::flash`,
//! `docs/flash.md`), and `fvpctl pool create --flash` formats them.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use fvp_logic::cache::Key;
use fvp_logic::flash::{
    check_entry, decode_entry, decode_record, newer, Entry, FormatError, Geometry, Superblock, VolumeRecord, BLOCK,
    ENTRIES_PER_BLOCK, ENTRY_BYTES, RECORD_BYTES, VOLUME_RECORDS, VOLUME_TABLE_BLOCKS,
};
use serde::Serialize;

/// Bytes at the start of a device that `signature` looks at.
pub const PROBE_BYTES: usize = 72 * 1024;

/// What else a device holds, judged by its first [`PROBE_BYTES`] bytes: the signatures
/// of common filesystems, partition tables, volume managers and caches. Used to refuse
/// formatting over them, and to say what a device is when it is not a pool.
pub fn signature(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    const BCACHE: [u8; 16] =
        [0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81];
    const MD: [u8; 4] = [0xfc, 0x4e, 0x2b, 0xa9];
    let table: [(bool, &'static str); 16] = [
        (at(0, b"FVPFLASH") || at(BLOCK, b"FVPFLASH"), "an fvp flash pool"),
        (at(0, b"LUKS\xba\xbe") || at(16384, b"SKUL\xba\xbe"), "a LUKS volume"),
        (at(0, b"XFSB"), "an XFS filesystem"),
        (at(0, b"hsqs"), "a squashfs filesystem"),
        (at(1080, &[0x53, 0xef]), "an ext2/3/4 filesystem"),
        (at(0x10040, b"_BHRfS_M"), "a btrfs filesystem"),
        (at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE"), "a swap area"),
        ((0..4).any(|s| at(s * 512, b"LABELONE")), "an LVM physical volume"),
        (at(4096 + 24, &BCACHE), "a bcache device"),
        (at(0, &MD) || at(4096, &MD), "an MD RAID member"),
        (at(32769, b"CD001"), "an ISO 9660 filesystem"),
        (at(3, b"NTFS    "), "an NTFS filesystem"),
        (at(3, b"EXFAT   "), "an exFAT filesystem"),
        (at(82, b"FAT32   ") || at(54, b"FAT16   ") || at(54, b"FAT12   "), "a FAT filesystem"),
        (at(512, b"EFI PART") || at(4096, b"EFI PART"), "a GPT partition table"),
        (at(510, &[0x55, 0xaa]), "an MBR partition table or boot sector"),
    ];
    table.iter().find(|(hit, _)| *hit).map(|(_, what)| *what)
}

/// Why a device was not formatted.
#[derive(Debug)]
pub enum FormatRefusal {
    /// It holds something (named); `--force` formats anyway.
    Holds(&'static str),
    /// Too small, or too large, for a pool.
    Geometry(FormatError),
    Io(io::Error),
}

impl From<io::Error> for FormatRefusal {
    fn from(e: io::Error) -> Self {
        FormatRefusal::Io(e)
    }
}

/// Zero blocks written at once while formatting.
const ZERO_CHUNK_BLOCKS: u64 = 256;

/// Formats `dev` as an empty flash pool named `name` with `uuid`, unless it holds a
/// filesystem, a partition table, a pool or the like (then `force` is needed). The
/// superblocks are zeroed first and written last, after the volume table and every
/// entry were zeroed and synced: an interrupted format leaves no pool.
pub fn format<D: Read + Write + Seek>(
    dev: &mut D,
    name: [u8; fvp_logic::abi::NAME_LEN],
    uuid: [u8; 16],
    force: bool,
    sync: &mut dyn FnMut(&mut D) -> io::Result<()>,
) -> Result<Superblock, FormatRefusal> {
    let device_bytes = dev.seek(SeekFrom::End(0))?;
    let geometry = Geometry::for_device(device_bytes / BLOCK as u64).map_err(FormatRefusal::Geometry)?;
    let mut head = vec![0u8; PROBE_BYTES.min(usize::try_from(device_bytes).unwrap_or(PROBE_BYTES))];
    dev.seek(SeekFrom::Start(0))?;
    dev.read_exact(&mut head)?;
    if let Some(what) = signature(&head) {
        if !force {
            return Err(FormatRefusal::Holds(what));
        }
    }
    let zeros = vec![0u8; BLOCK * ZERO_CHUNK_BLOCKS as usize];
    let zero = |dev: &mut D, first: u64, count: u64| -> io::Result<()> {
        dev.seek(SeekFrom::Start(first * BLOCK as u64))?;
        let mut left = count;
        while left > 0 {
            let n = left.min(ZERO_CHUNK_BLOCKS);
            dev.write_all(&zeros[..n as usize * BLOCK])?;
            left -= n;
        }
        Ok(())
    };
    zero(dev, 0, 2)?;
    sync(dev)?;
    zero(dev, Geometry::VOLUME_TABLE_START, geometry.data_start() - Geometry::VOLUME_TABLE_START)?;
    sync(dev)?;
    let sb = Superblock { uuid, name, geometry };
    let mut block = [0u8; BLOCK];
    sb.encode(&mut block);
    dev.seek(SeekFrom::Start(0))?;
    dev.write_all(&block)?;
    dev.write_all(&block)?;
    sync(dev)?;
    Ok(sb)
}

/// Problems listed one by one; beyond, only counted.
const PROBLEMS_LISTED: usize = 20;
/// Entry blocks read at once.
const CHUNK_BLOCKS: u64 = 256;

/// A recorded volume and what the pool holds of it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct VolumeUse {
    pub index: u32,
    pub identity: String,
    pub sectors: u64,
    pub cached: u64,
    pub dirty: u64,
}

/// What `check` found.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub device_bytes: u64,
    /// Per superblock copy: `None` if it checks, else why not.
    pub superblock_copies: [Option<String>; 2],
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub slots: u64,
    pub entry_blocks: u64,
    pub volumes: Vec<VolumeUse>,
    /// Newest entries, as the kernel would map them.
    pub cached: u64,
    pub dirty: u64,
    /// Older entries of blocks that have a newer one: zeroed by the next commit.
    pub stale: u64,
    /// Entries that are neither zero nor valid: torn writes of entries never
    /// committed, or damage (the two cannot be told apart).
    pub unreadable: u64,
    pub free: u64,
    pub max_seq: u64,
    /// When there is no pool: what the device seems to hold instead.
    pub holds: Option<&'static str>,
    /// What makes the pool unusable; empty when it would open.
    pub problems: Vec<String>,
    /// Problems beyond those listed.
    pub more_problems: usize,
}

impl CheckReport {
    fn new(device_bytes: u64) -> Self {
        CheckReport {
            device_bytes,
            superblock_copies: [None, None],
            name: None,
            uuid: None,
            slots: 0,
            entry_blocks: 0,
            volumes: Vec::new(),
            cached: 0,
            dirty: 0,
            stale: 0,
            unreadable: 0,
            free: 0,
            max_seq: 0,
            holds: None,
            problems: Vec::new(),
            more_problems: 0,
        }
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < PROBLEMS_LISTED {
            self.problems.push(text);
        } else {
            self.more_problems += 1;
        }
    }

    /// Whether the pool would open.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn read_blocks<R: Read + Seek>(dev: &mut R, first: u64, count: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.resize((count as usize) * BLOCK, 0);
    dev.seek(SeekFrom::Start(first * BLOCK as u64))?;
    dev.read_exact(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a flash pool's metadata and says whether it would open and what it holds.
/// I/O errors are returned as such; everything wrong with the contents is a problem in
/// the report.
pub fn check<R: Read + Seek>(dev: &mut R) -> io::Result<CheckReport> {
    let device_bytes = dev.seek(SeekFrom::End(0))?;
    let mut report = CheckReport::new(device_bytes);
    let device_blocks = device_bytes / BLOCK as u64;
    if device_blocks < 2 {
        report.problem(FormatError::TooSmall.message().to_string());
        return Ok(report);
    }
    let mut buf = Vec::new();
    read_blocks(dev, 0, 2, &mut buf)?;
    let (a, b) = buf.split_at(BLOCK);
    for (i, copy) in [a, b].into_iter().enumerate() {
        report.superblock_copies[i] = Superblock::decode(copy).err().map(|e| e.message().to_string());
    }
    let sb = match Superblock::choose(a, b) {
        Ok(sb) => sb,
        Err(e) => {
            report.problem(e.message().to_string());
            if e == FormatError::NotAPool {
                let len = PROBE_BYTES.min(usize::try_from(device_bytes).unwrap_or(PROBE_BYTES));
                let mut head = vec![0u8; len];
                dev.seek(SeekFrom::Start(0))?;
                dev.read_exact(&mut head)?;
                report.holds = signature(&head);
            }
            return Ok(report);
        }
    };
    report.name = Some(String::from_utf8_lossy(sb.name.split(|&c| c == 0).next().unwrap_or(&[])).into_owned());
    report.uuid = Some(hex(&sb.uuid));
    report.slots = sb.geometry.slots;
    report.entry_blocks = sb.geometry.entry_blocks();
    if let Err(e) = sb.fits(device_blocks) {
        report.problem(format!(
            "{}: formatted for {} blocks, the device has {device_blocks}",
            e.message(),
            sb.geometry.device_blocks
        ));
        return Ok(report);
    }
    let seed = sb.seed();

    // Volume records.
    read_blocks(dev, Geometry::VOLUME_TABLE_START, VOLUME_TABLE_BLOCKS, &mut buf)?;
    let mut records: HashMap<u16, VolumeRecord> = HashMap::new();
    for index in 0..VOLUME_RECORDS {
        let at = index as usize * RECORD_BYTES;
        match decode_record(seed, index, &buf[at..at + RECORD_BYTES]) {
            Ok(Some(rec)) => {
                records.insert(index as u16, rec);
            }
            Ok(None) => {}
            Err(e) => report.problem(format!("volume record {index}: {}", e.message())),
        }
    }

    // Entries: the newest of each block is what the kernel maps.
    let mut newest: HashMap<Key, (u64, Entry)> = HashMap::new();
    let blocks_of = |v: u16| records.get(&v).map(VolumeRecord::blocks);
    let entry_blocks = sb.geometry.entry_blocks();
    let mut first = 0;
    while first < entry_blocks {
        let count = CHUNK_BLOCKS.min(entry_blocks - first);
        read_blocks(dev, sb.geometry.entry_block(first), count, &mut buf)?;
        for i in 0..count * ENTRIES_PER_BLOCK {
            let slot = first * ENTRIES_PER_BLOCK + i;
            if slot >= sb.geometry.slots {
                break;
            }
            let bytes = &buf[i as usize * ENTRY_BYTES..(i as usize + 1) * ENTRY_BYTES];
            let Some(e) = decode_entry(seed, slot, bytes) else {
                if bytes.iter().any(|&x| x != 0) {
                    report.unreadable += 1;
                } else {
                    report.free += 1;
                }
                continue;
            };
            report.max_seq = report.max_seq.max(e.seq);
            if let Err(err) = check_entry(slot, &e, blocks_of) {
                report.problem(format!(
                    "slot {slot}: {} (volume record {}, block {})",
                    err.message(),
                    e.key.volume(),
                    e.key.block()
                ));
                continue;
            }
            match newest.get(&e.key) {
                None => {
                    newest.insert(e.key, (slot, e));
                }
                Some(&(other, o)) => match newer(&e, &o, slot) {
                    Ok(true) => {
                        newest.insert(e.key, (slot, e));
                        report.stale += 1;
                    }
                    Ok(false) => report.stale += 1,
                    Err(err) => report.problem(format!("slots {other} and {slot}: {}", err.message())),
                },
            }
        }
        first += count;
    }
    let mut uses: HashMap<u16, (u64, u64)> = HashMap::new();
    for (_, e) in newest.values() {
        let u = uses.entry(e.key.volume()).or_default();
        u.0 += 1;
        report.cached += 1;
        if e.dirty {
            u.1 += 1;
            report.dirty += 1;
        }
    }
    let mut indexes: Vec<_> = records.keys().copied().collect();
    indexes.sort_unstable();
    for index in indexes {
        let rec = &records[&index];
        let (cached, dirty) = uses.get(&index).copied().unwrap_or_default();
        report.volumes.push(VolumeUse {
            index: u32::from(index),
            identity: String::from_utf8_lossy(rec.identity()).into_owned(),
            sectors: rec.sectors,
            cached,
            dirty,
        });
    }
    Ok(report)
}

/// The report as text.
pub fn check_text(path: &str, r: &CheckReport) -> String {
    use crate::units::format_bytes;
    let mut s = String::new();
    let verdict = if r.ok() { "ok" } else { "DAMAGED" };
    match (&r.name, &r.uuid) {
        (Some(name), Some(uuid)) => {
            s += &format!("flash pool {name:?} on {path}: {verdict}\n");
            s += &format!("  uuid {uuid}, device {}\n", format_bytes(r.device_bytes));
            s += &format!(
                "  {} slots ({} of data), {} entry blocks\n",
                r.slots,
                format_bytes(r.slots * BLOCK as u64),
                r.entry_blocks
            );
        }
        _ => match r.holds {
            Some(what) => s += &format!("{path}: not a flash pool: it holds {what}\n"),
            None => s += &format!("{path}: not a flash pool, or both its superblocks are damaged\n"),
        },
    }
    for (i, c) in r.superblock_copies.iter().enumerate() {
        s += &format!("  superblock copy {i}: {}\n", c.as_deref().unwrap_or("ok"));
    }
    if r.name.is_some() {
        s += &format!("  volumes recorded: {}\n", r.volumes.len());
        for v in &r.volumes {
            s += &format!(
                "    {:>3}  {}  {} sectors  {} blocks cached, {} dirty\n",
                v.index, v.identity, v.sectors, v.cached, v.dirty
            );
        }
        s += &format!(
            "  entries: {} cached ({} dirty, {} clean), {} stale, {} unreadable, {} free\n",
            r.cached,
            r.dirty,
            r.cached - r.dirty,
            r.stale,
            r.unreadable,
            r.free
        );
    }
    if !r.ok() {
        s += "  problems:\n";
        for p in &r.problems {
            s += &format!("    {p}\n");
        }
        if r.more_problems > 0 {
            s += &format!("    ... and {} more\n", r.more_problems);
        }
    }
    s.truncate(s.trim_end().len());
    s
}

/// The report as JSON.
pub fn check_json(path: &str, r: &CheckReport) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        path: &'a str,
        ok: bool,
        #[serde(flatten)]
        report: &'a CheckReport,
    }
    serde_json::to_string_pretty(&Out { path, ok: r.ok(), report: r }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvp_logic::abi::NAME_LEN;
    use fvp_logic::cache::SlotId;
    use fvp_logic::flash::{encode_entry, encode_record, record_location, Index, Journal, RECORDS_DEFAULT};
    use fvp_logic::vec_stores::VecStores;
    use std::io::Cursor;

    fn pool_name() -> [u8; NAME_LEN] {
        let mut n = [0u8; NAME_LEN];
        n[..6].copy_from_slice(b"flash0");
        n
    }

    #[test]
    fn format_makes_an_empty_pool_that_checks() {
        // Garbage everywhere (no known signature): the metadata must come out zeroed.
        let mut dev = Cursor::new(vec![0xa5u8; 8 << 20]);
        let sb = format(&mut dev, pool_name(), [7; 16], false, &mut |_| Ok(())).unwrap();
        let report = check(&mut dev).unwrap();
        assert!(report.ok(), "{report:?}");
        let bytes = dev.into_inner();
        let meta = &bytes[2 * BLOCK..sb.geometry.data_start() as usize * BLOCK];
        assert!(meta.iter().all(|&b| b == 0), "volume table or entries not zeroed");
        assert_eq!(sb.geometry, Geometry::for_device((8 << 20) / BLOCK as u64).unwrap());
    }

    #[test]
    fn format_refuses_a_device_in_use_unless_forced() {
        let mut bytes = vec![0u8; 8 << 20];
        bytes[1080] = 0x53;
        bytes[1081] = 0xef;
        let mut dev = Cursor::new(bytes);
        match format(&mut dev, pool_name(), [1; 16], false, &mut |_| Ok(())) {
            Err(FormatRefusal::Holds(what)) => assert!(what.contains("ext2/3/4"), "{what}"),
            other => panic!("formatted over ext4: {other:?}"),
        }
        format(&mut dev, pool_name(), [1; 16], true, &mut |_| Ok(())).unwrap();
        // A pool is refused too, until forced.
        match format(&mut dev, pool_name(), [2; 16], false, &mut |_| Ok(())) {
            Err(FormatRefusal::Holds(what)) => assert!(what.contains("fvp flash pool"), "{what}"),
            other => panic!("formatted over a pool: {other:?}"),
        }
        let mut tiny = Cursor::new(vec![0u8; 64 << 10]);
        assert!(matches!(
            format(&mut tiny, pool_name(), [1; 16], true, &mut |_| Ok(())),
            Err(FormatRefusal::Geometry(_))
        ));
    }

    struct Map(HashMap<SlotId, (Key, bool)>);
    impl Index for Map {
        fn live(&self, slot: SlotId) -> Option<(Key, bool)> {
            self.0.get(&slot).copied()
        }

        fn slot_of(&self, key: Key) -> Option<SlotId> {
            self.0.iter().find(|(_, (k, _))| *k == key).map(|(s, _)| *s)
        }
    }

    const DEVICE_BLOCKS: u64 = 2048;

    /// A pool image with one volume: `writes` blocks written (dirty), committed.
    fn image(writes: u64) -> (Vec<u8>, Superblock) {
        let mut name = [0u8; NAME_LEN];
        name[..4].copy_from_slice(b"fast");
        let sb = Superblock { uuid: [3; 16], name, geometry: Geometry::for_device(DEVICE_BLOCKS).unwrap() };
        let mut img = vec![0u8; DEVICE_BLOCKS as usize * BLOCK];
        let mut block = [0u8; BLOCK];
        sb.encode(&mut block);
        img[..BLOCK].copy_from_slice(&block);
        img[BLOCK..2 * BLOCK].copy_from_slice(&block);
        let rec = VolumeRecord::new(b"/dev/disk/by-id/virtio-back0", 8 * 1000).unwrap();
        let (b, off) = record_location(0);
        let at = b as usize * BLOCK + off;
        encode_record(sb.seed(), 0, Some(&rec), &mut img[at..at + RECORD_BYTES]);
        // Entries through the journal, as the kernel will write them.
        let mut j = Journal::<VecStores>::new(sb.geometry.slots, RECORDS_DEFAULT).unwrap();
        let mut idx = Map(HashMap::new());
        for i in 0..writes {
            let slot = i as SlotId;
            j.begin_write(slot).unwrap();
            j.landed(slot).unwrap();
            idx.0.insert(slot, (Key::new(0, i).unwrap(), i % 2 == 0));
        }
        if j.begin_phase().unwrap().is_none() {
            return (img, sb);
        }
        let mut cursor = 0;
        while let Some(b) = j.next_phase_block(&mut cursor) {
            let at = sb.geometry.entry_block(b) as usize * BLOCK;
            j.encode_block(b, sb.seed(), &idx, &mut img[at..at + BLOCK]);
        }
        j.end_phase(true, &idx, |_| {}).unwrap();
        (img, sb)
    }

    fn entry_at(sb: &Superblock, slot: u64) -> usize {
        sb.geometry.entry_block(slot / ENTRIES_PER_BLOCK) as usize * BLOCK + (slot % ENTRIES_PER_BLOCK) as usize * 32
    }

    #[test]
    fn a_committed_pool_checks_and_reports_its_blocks() {
        let (img, _) = image(300);
        let r = check(&mut Cursor::new(img)).unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.cached, r.dirty, r.stale, r.unreadable), (300, 150, 0, 0));
        assert_eq!(r.free, r.slots - 300);
        assert_eq!(
            r.volumes,
            vec![VolumeUse {
                index: 0,
                identity: "/dev/disk/by-id/virtio-back0".into(),
                sectors: 8000,
                cached: 300,
                dirty: 150
            }]
        );
        let text = check_text("img", &r);
        assert!(text.contains("flash pool \"fast\" on img: ok"), "{text}");
        assert!(text.contains("300 cached (150 dirty, 150 clean)"), "{text}");
        assert!(check_json("img", &r).contains("\"ok\": true"));
    }

    #[test]
    fn one_damaged_superblock_copy_is_reported_but_opens() {
        let (mut img, _) = image(10);
        img[100] ^= 0xff;
        let r = check(&mut Cursor::new(img)).unwrap();
        assert!(r.ok());
        assert!(r.superblock_copies[0].is_some());
        assert!(r.superblock_copies[1].is_none());
    }

    #[test]
    fn damaged_superblocks_are_refused() {
        let (mut img, _) = image(10);
        img[100] ^= 0xff;
        img[BLOCK + 100] ^= 0xff;
        let r = check(&mut Cursor::new(img)).unwrap();
        assert!(!r.ok());
        assert!(r.problems[0].contains("superblock damaged"), "{:?}", r.problems);
        let r = check(&mut Cursor::new(vec![0u8; 64 * BLOCK])).unwrap();
        assert_eq!(r.problems, vec![FormatError::NotAPool.message().to_string()]);
        assert!(check_text("zero", &r).contains("not a flash pool"));
    }

    #[test]
    fn a_shrunken_device_is_refused() {
        let (mut img, _) = image(10);
        img.truncate((DEVICE_BLOCKS as usize - 1) * BLOCK);
        let r = check(&mut Cursor::new(img)).unwrap();
        assert!(!r.ok());
        assert!(r.problems[0].contains("formatted for 2048 blocks"), "{:?}", r.problems);
    }

    #[test]
    fn entries_naming_unknown_volumes_or_blocks_beyond_are_problems() {
        let (mut img, sb) = image(10);
        let e = Entry { key: Key::new(7, 1).unwrap(), dirty: true, seq: 2 };
        let at = entry_at(&sb, 500);
        encode_entry(sb.seed(), 500, Some(&e), &mut img[at..at + 32]);
        let e = Entry { key: Key::new(0, 1000).unwrap(), dirty: true, seq: 2 };
        let at = entry_at(&sb, 501);
        encode_entry(sb.seed(), 501, Some(&e), &mut img[at..at + 32]);
        let r = check(&mut Cursor::new(img)).unwrap();
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[0].contains("slot 500") && r.problems[0].contains("not in use"));
        assert!(r.problems[1].contains("slot 501") && r.problems[1].contains("beyond"));
    }

    #[test]
    fn stale_duplicate_and_torn_entries() {
        let (mut img, sb) = image(10);
        // An older copy of block 3 (stale), a same-numbered copy of block 4 (corrupt),
        // and a torn entry.
        let e = Entry { key: Key::new(0, 3).unwrap(), dirty: true, seq: 1 };
        let at = entry_at(&sb, 600);
        encode_entry(sb.seed(), 600, Some(&e), &mut img[at..at + 32]);
        let r = check(&mut Cursor::new(img.clone())).unwrap();
        assert!(r.ok());
        assert_eq!((r.cached, r.stale), (10, 1));
        let e = Entry { key: Key::new(0, 4).unwrap(), dirty: true, seq: 2 };
        let at = entry_at(&sb, 601);
        encode_entry(sb.seed(), 601, Some(&e), &mut img[at..at + 32]);
        let at = entry_at(&sb, 602);
        img[at + 5] = 1;
        let r = check(&mut Cursor::new(img)).unwrap();
        assert_eq!(r.unreadable, 1);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("same commit number"));
    }

    #[test]
    fn other_contents_are_recognised() {
        let mut head = vec![0u8; PROBE_BYTES];
        assert_eq!(signature(&head), None);
        head[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert_eq!(signature(&head), Some("an ext2/3/4 filesystem"));
        let mut head = vec![0u8; PROBE_BYTES];
        head[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(signature(&head), Some("an MBR partition table or boot sector"));
        head[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(signature(&head), Some("a GPT partition table"));
        let mut head = vec![0u8; PROBE_BYTES];
        head[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(signature(&head), Some("a btrfs filesystem"));
        let mut head = vec![0u8; 8192];
        head[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(signature(&head), Some("a swap area"), "a short head is fine");
        let (img, _) = image(1);
        assert_eq!(signature(&img[..PROBE_BYTES]), Some("an fvp flash pool"));
        // A device holding a filesystem is named in the report.
        let mut img = vec![0u8; 64 * BLOCK];
        img[0..4].copy_from_slice(b"XFSB");
        let r = check(&mut Cursor::new(img)).unwrap();
        assert_eq!(r.holds, Some("an XFS filesystem"));
        assert!(check_text("d", &r).contains("d: not a flash pool: it holds an XFS filesystem"));
    }

    #[test]
    fn problems_beyond_the_list_are_counted() {
        let (mut img, sb) = image(0);
        for slot in 0..30 {
            let e = Entry { key: Key::new(9, slot).unwrap(), dirty: false, seq: 2 };
            let at = entry_at(&sb, slot);
            encode_entry(sb.seed(), slot, Some(&e), &mut img[at..at + 32]);
        }
        let r = check(&mut Cursor::new(img)).unwrap();
        assert_eq!((r.problems.len(), r.more_problems), (PROBLEMS_LISTED, 10));
        assert!(check_text("img", &r).contains("... and 10 more"));
    }
}
