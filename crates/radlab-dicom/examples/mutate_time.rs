//! Flip random bytes of corpus files with a fixed seed and time the parse of each mutant.
//! `cargo run --example mutate_time -p radlab-dicom -- SEED COUNT THRESHOLD_MS FILE...`
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args[1].parse().unwrap();
    let count: usize = args[2].parse().unwrap();
    let threshold_ms: u128 = args[3].parse().unwrap();
    let files = &args[4..];
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let out = std::env::var("MUTANT_DIR").ok();
    let mut worst = 0u128;
    for i in 0..count {
        let path = &files[(next() as usize) % files.len()];
        let mut bytes = std::fs::read(path).unwrap();
        // Mutate within the header region (first 4 KiB or the file) mostly.
        let span = bytes.len().min(4096);
        let flips = if std::env::var_os("NO_MUTATE").is_some() {
            0
        } else {
            1 + (next() % 4) as usize
        };
        for _ in 0..flips {
            let at = (next() as usize) % span;
            bytes[at] = next() as u8;
        }
        let t = Instant::now();
        let r = radlab_dicom::DicomFile::from_bytes(&bytes);
        let ms = t.elapsed().as_millis();
        worst = worst.max(ms);
        if ms >= threshold_ms {
            let name = format!("mutant-{seed}-{i}.dcm");
            println!(
                "{i} {ms} ms {path} ok={} {}",
                r.is_ok(),
                r.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
            );
            if let Some(dir) = &out {
                std::fs::write(format!("{dir}/{name}"), &bytes).unwrap();
            }
        }
    }
    println!("done {count}, worst {worst} ms");
}
