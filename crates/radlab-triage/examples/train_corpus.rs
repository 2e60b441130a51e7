//! The library's corpus training, outside the radlab binary, for trying designs:
//! `cargo run --release -p radlab-triage --example train_corpus -- CORPUS EPOCHS OUT.safetensors REPORT.md`
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let config = radlab_triage::train::TrainConfig {
        epochs: a[2].parse().unwrap(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let run =
        radlab_triage::train::train_on_corpus(std::path::Path::new(&a[1]), &config, &mut |l| {
            eprintln!("{:.0}s {l}", t.elapsed().as_secs_f64())
        })
        .unwrap();
    std::fs::write(&a[3], run.net.to_safetensors().unwrap()).unwrap();
    std::fs::write(
        &a[4],
        radlab_triage::train::report(&run, &config, "example"),
    )
    .unwrap();
    eprintln!(
        "{:.0}s valid {:.3} orientation {:.3}",
        t.elapsed().as_secs_f64(),
        run.held_out.valid_accuracy(),
        run.held_out.orientation_accuracy()
    );
}
