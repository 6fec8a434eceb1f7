//! Parses arbitrary bytes as far as the metadata: the safetensors header and the ddaebm JSON
//! with its range checks, no tensors. Much faster than `model_file`, so it explores the JSON
//! side more deeply.
//!
//! Beyond "no panic", it checks one property: metadata that validates can be written out and
//! read back, and then validates again (a model that opens can always be re-saved).
#![no_main]

use ddaebm::ModelMetadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = ddaebm::format::read_metadata_bytes(data) else {
        return;
    };
    let json = serde_json::to_string(&metadata).expect("validated metadata serialises");
    let back: ModelMetadata = serde_json::from_str(&json).expect("serialised metadata parses");
    back.validate().expect("re-read metadata validates");
});
