//! Writes the corpus's triage examples, area-scaled so their longest side is 64, 96 and
//! 128 (not letterboxed), with their class, family and held-out flag, to one binary file
//! for exploring network designs elsewhere (e.g. in PyTorch).
//!
//! `cargo run --release -p radlab-triage --example dump_examples -- CORPUS OUT`
//!
//! Format, little endian: u32 count; then per example: u8 class, u8 held out, u16 path
//! length, path bytes, then for each side in (64, 96, 128): u16 width, u16 height, pixels.
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = std::path::Path::new(&args[1]);
    let examples = radlab_triage::dataset::from_manifest(root).expect("manifest");
    let (_, test) = radlab_triage::dataset::split_by_group(&examples, 0.2, 2026);
    let mut out = Vec::new();
    out.extend((examples.len() as u32).to_le_bytes());
    for (i, e) in examples.iter().enumerate() {
        let grey = radlab_triage::preprocess::load_grey(&root.join(&e.path)).expect("load");
        out.push(e.class.index() as u8);
        out.push(u8::from(test.contains(&i)));
        out.extend((e.path.len() as u16).to_le_bytes());
        out.extend(e.path.as_bytes());
        for side in [64u32, 96, 128] {
            let s = grey.scaled_to_fit(side);
            out.extend((s.width as u16).to_le_bytes());
            out.extend((s.height as u16).to_le_bytes());
            out.extend(&s.pixels);
        }
    }
    std::fs::File::create(&args[2])
        .unwrap()
        .write_all(&out)
        .unwrap();
}
