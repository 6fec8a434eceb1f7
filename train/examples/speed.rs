use candle::{Device, Tensor};
use ddaebm::NetworkConfig;
use ddaebm_train::trainer::{TrainConfig, Trainer};
use rand::SeedableRng;
fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let args: Vec<String> = std::env::args().collect();
    let bs: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(200);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let data = ddaebm_train::toy::sample(bs, &mut rng);
    let x = Tensor::from_vec(data, (bs, 2), &dev)?;
    let mut tr = Trainer::new(
        TrainConfig {
            batch_size: bs,
            ..Default::default()
        },
        {
            let mut c = NetworkConfig::toy(2);
            if let Some(w) = args.get(2) {
                let w: usize = w.parse().unwrap();
                c.head_widths = vec![w, w];
            }
            c
        },
        &dev,
    )?;
    for _ in 0..20 {
        tr.step(&x)?;
    }
    let t = std::time::Instant::now();
    let n = 200;
    for _ in 0..n {
        tr.step(&x)?;
    }
    println!(
        "batch {bs}: {:.1} it/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}
