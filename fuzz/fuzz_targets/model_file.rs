//! Opens arbitrary bytes as a model file, exactly as `Model::open` does after memory-mapping,
//! and when that succeeds, scores two rows and samples one. Errors are expected; a panic, an
//! abort, a sanitizer report or an allocation over libFuzzer's limit is a bug.
#![no_main]

use candle::Device;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let device = Device::Cpu;
    let Ok(contents) = ddaebm::format::read_model_bytes(data, &device) else {
        return;
    };
    let Ok(model) = ddaebm::Model::from_contents(contents, &device) else {
        return;
    };
    let rows: Vec<f32> = (0..2 * model.input_dim())
        .map(|i| (i % 7) as f32 * 0.5 - 1.5)
        .collect();
    let _ = model.screen(&rows, 2);
    let _ = model.pvalues(&rows, 2);
    let _ = model.sample(1, 0);
});
