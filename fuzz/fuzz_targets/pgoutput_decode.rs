//! Feeds arbitrary bytes to the pgoutput decoder: it must return an error or a message, never
//! panic, hang or allocate out of proportion to the input. Seed the corpus from the captured
//! fixtures with `fuzz/seed-corpus.sh`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runs_replicator::source::pgoutput::decode;

fuzz_target!(|data: &[u8]| {
    let _ = decode(&Bytes::copy_from_slice(data));
});
