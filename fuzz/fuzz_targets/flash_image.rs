// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the opening of a flash pool (`docs/flash.md`): the decoders of the volume
//! records and entries, and `flash::recover`, which rebuilds the index and the journal
//! from whatever the entries say.
//!
//! Input: one mode byte, then the bytes of the entry blocks of a pool of 1,024 slots,
//! then those of the volume table (what is missing is zero). Record 0 is always a valid
//! volume of 2^40 blocks unless the input overwrites it, so that entries can name one.
//! The superblock is always valid: its own decoder is covered by property tests. Mode bit 0 set: the target rewrites the
//! checksum of every record and every entry whose "in use" bit is set, so the fuzzer
//! reaches the checks of their contents without forging CRCs. Bits 1..3: the journal's
//! records (1 to 8), few enough that stale entries exceed them and recovery runs
//! phases.
//!
//! Beyond "no panic", when recovery accepts the image it checks: the index maps, for
//! every block, the slot of its newest entry; every other valid entry is stale; and a
//! phase run right after leaves every live entry with the same block and dirty state
//! (rewritten above every commit number on the device, or untouched), and zeroes every
//! stale one.

#![no_main]

use std::collections::HashMap;

use fvp_logic::cache::{Cache, Key, SlotId};
use fvp_logic::crc32c::Crc32c;
use fvp_logic::flash::{
    check_entry, decode_entry, decode_record, encode_record, recover, Entry, Geometry, Index, Journal, Superblock,
    VolumeRecord, BLOCK, ENTRIES_PER_BLOCK, ENTRY_BYTES, RECORD_BYTES, VOLUME_RECORDS, VOLUME_TABLE_BLOCKS,
};
use fvp_logic::vec_stores::VecStores;
use libfuzzer_sys::fuzz_target;

const SLOTS: u64 = 1024;

fn geometry() -> Geometry {
    let entry_blocks = SLOTS.div_ceil(ENTRIES_PER_BLOCK);
    Geometry { device_blocks: Geometry::ENTRY_START + entry_blocks + SLOTS, slots: SLOTS }
}

/// Rewrites a record's or entry's trailing CRC the way the encoders compute it.
fn fix_crcs(seed: u32, table: &mut [u8], entries: &mut [u8]) {
    for index in 0..VOLUME_RECORDS {
        let r = &mut table[index as usize * RECORD_BYTES..(index as usize + 1) * RECORD_BYTES];
        if r[0] & 1 != 0 {
            let crc = Crc32c::new()
                .update(&seed.to_le_bytes())
                .update(&index.to_le_bytes())
                .update(&r[..RECORD_BYTES - 4])
                .finish();
            r[RECORD_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
        }
    }
    for slot in 0..SLOTS {
        let e = &mut entries[slot as usize * ENTRY_BYTES..(slot as usize + 1) * ENTRY_BYTES];
        if e[18] & 1 != 0 {
            let crc = Crc32c::new().update(&seed.to_le_bytes()).update(&slot.to_le_bytes()).update(&e[..28]).finish();
            e[28..].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

fn entry_at(entries: &[u8], slot: SlotId) -> &[u8] {
    &entries[slot as usize * ENTRY_BYTES..(slot as usize + 1) * ENTRY_BYTES]
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let sb = Superblock { uuid: [0x5a; 16], name: [0; 32], geometry: geometry() };
    let seed = sb.seed();
    let table_len = VOLUME_TABLE_BLOCKS as usize * BLOCK;
    let entries_len = sb.geometry.entry_blocks() as usize * BLOCK;
    let mut table = vec![0u8; table_len];
    let mut entries = vec![0u8; entries_len];
    let volume0 = VolumeRecord::new(b"/dev/fuzz", 8 << 40).unwrap();
    encode_record(seed, 0, Some(&volume0), &mut table[..RECORD_BYTES]);
    let m = rest.len().min(entries_len);
    entries[..m].copy_from_slice(&rest[..m]);
    let rest = &rest[m..];
    let n = rest.len().min(table_len);
    if n > 0 {
        table[..n].copy_from_slice(&rest[..n]);
    }
    if mode & 1 != 0 {
        fix_crcs(seed, &mut table, &mut entries);
    }

    // Volume records, as the kernel reads them.
    let mut records: HashMap<u16, VolumeRecord> = HashMap::new();
    for index in 0..VOLUME_RECORDS {
        match decode_record(seed, index, &table[index as usize * RECORD_BYTES..(index as usize + 1) * RECORD_BYTES]) {
            Ok(Some(r)) => {
                assert!(!r.identity().is_empty());
                records.insert(index as u16, r);
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    let blocks = |v: u16| records.get(&v).map(VolumeRecord::blocks);
    let scanned = entries.clone();
    let entry = |slot: SlotId| -> Result<Option<Entry>, _> {
        match decode_entry(seed, u64::from(slot), entry_at(&scanned, slot)) {
            Some(e) => check_entry(u64::from(slot), &e, blocks).map(|()| Some(e)),
            None => Ok(None),
        }
    };

    let records_cap = usize::from((mode >> 1) & 7) + 1;
    let mut cache = Cache::<VecStores>::new(1);
    cache.set_holding();
    cache.grow(SLOTS as u32).unwrap();
    let mut journal = Journal::<VecStores>::new(SLOTS, records_cap).unwrap();
    let run_phase = |j: &mut Journal<VecStores>, c: &mut Cache<VecStores>, image: &mut Vec<u8>| {
        let Some(_) = j.begin_phase().unwrap() else { return };
        let mut cursor = 0;
        while let Some(b) = j.next_phase_block(&mut cursor) {
            j.encode_block(b, seed, &*c, &mut image[b as usize * BLOCK..(b as usize + 1) * BLOCK]);
        }
        let mut freed = Vec::new();
        j.end_phase(true, &*c, |s| freed.push(s)).unwrap();
        for s in freed {
            assert!(c.unhold(s));
        }
    };
    let mut image = entries.clone();
    let Ok(r) = recover(SLOTS, &mut cache, &mut journal, entry, |j, c| run_phase(j, c, &mut image)) else {
        return;
    };

    // The newest entry of each block, computed independently.
    let mut newest: HashMap<Key, (SlotId, Entry)> = HashMap::new();
    let mut valid = 0u64;
    for slot in 0..SLOTS as SlotId {
        let Some(e) = decode_entry(seed, u64::from(slot), entry_at(&scanned, slot)) else { continue };
        valid += 1;
        match newest.get(&e.key) {
            Some((_, o)) if o.seq > e.seq => {}
            _ => {
                newest.insert(e.key, (slot, e));
            }
        }
    }
    assert_eq!(r.live, newest.len() as u64);
    assert_eq!(r.live + r.stale, valid);
    assert_eq!(r.dirty, newest.values().filter(|(_, e)| e.dirty).count() as u64);
    for (key, (slot, e)) in &newest {
        assert_eq!(cache.live(*slot), Some((*key, e.dirty)));
    }

    // One phase more: every live entry rewritten above everything, the rest zeroed
    // (some stale ones may need two phases: one to release, one to zero).
    for _ in 0..2 {
        run_phase(&mut journal, &mut cache, &mut image);
    }
    for slot in 0..SLOTS as SlotId {
        let now = decode_entry(seed, u64::from(slot), entry_at(&image, slot));
        match cache.live(slot) {
            Some((key, dirty)) => {
                let e = now.expect("a live entry vanished");
                assert_eq!((e.key, e.dirty), (key, dirty));
                // Rewritten with its block, or untouched.
                let before = decode_entry(seed, u64::from(slot), entry_at(&scanned, slot));
                assert!(e.seq > r.max_seq || Some(e) == before);
            }
            None => assert_eq!(now, None, "slot {slot} not zeroed"),
        }
    }
    assert_eq!(journal.records(), 0);
});
