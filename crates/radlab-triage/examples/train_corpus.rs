//! The library's corpus training of the triage network outside the radlab binary (the same
//! calls as `radlab triage train`, so the same weights), judged with the shipped left-right
//! network: for trying designs without building radlab.
//! `cargo run --release -p radlab-triage --example train_corpus -- CORPUS EPOCHS OUT.safetensors REPORT.md`
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let config = radlab_triage::train::TrainConfig {
        epochs: a[2].parse().expect("epochs"),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let corpus =
        radlab_triage::train::Corpus::load(std::path::Path::new(&a[1]), config.seed).unwrap();
    let (net, _) = radlab_triage::train::train_on_corpus(&corpus, &config, &mut |l| {
        eprintln!("{:.0}s {l}", t.elapsed().as_secs_f64())
    })
    .unwrap();
    let weights = net.to_safetensors().unwrap();
    std::fs::write(&a[3], &weights).unwrap();
    let id = radlab_triage::model_id(&weights, radlab_triage::laterality::BUILTIN_WEIGHTS);
    let mut model = radlab_triage::builtin().unwrap();
    model.triage = net.inference().unwrap();
    let ev =
        radlab_triage::train::evaluate_on_corpus(&corpus, Box::new(model), id.clone()).unwrap();
    std::fs::write(&a[4], radlab_triage::train::report(&ev, &id)).unwrap();
    eprintln!(
        "{:.0}s valid {:.3} orientation {:.3}",
        t.elapsed().as_secs_f64(),
        ev.held_out.valid_accuracy(),
        ev.held_out.orientation_accuracy()
    );
}
