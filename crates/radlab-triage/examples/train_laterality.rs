//! The left-right network's training outside the radlab binary (the same calls as
//! `radlab triage train`), judged with the shipped triage network: for trying designs.
//! `cargo run --release -p radlab-triage --example train_laterality -- CORPUS EPOCHS OUT.safetensors [PER_CLASS]`
use radlab_triage::dataset::Class;
use radlab_triage::laterality::{Builtin, sides};
use radlab_triage::train::{Corpus, TrainConfig, evaluate, train_laterality_on_corpus};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mut config = TrainConfig {
        epochs: a[2].parse().expect("epochs"),
        ..Default::default()
    };
    if let Some(n) = a.get(4) {
        config.per_class = n.parse().expect("per class");
    }
    let t = std::time::Instant::now();
    let corpus = Corpus::load(std::path::Path::new(&a[1]), config.seed).unwrap();
    let weights = if config.epochs == 0 {
        std::fs::read(&a[3]).unwrap()
    } else {
        let net = train_laterality_on_corpus(&corpus, &config, &mut |l| {
            eprintln!("{:.0}s {l}", t.elapsed().as_secs_f64())
        })
        .unwrap();
        let w = net.to_safetensors().unwrap();
        std::fs::write(&a[3], &w).unwrap();
        w
    };
    let model = Builtin::from_safetensors(radlab_triage::BUILTIN_WEIGHTS, &weights).unwrap();
    for (name, part) in [("held out", &corpus.test), ("training", &corpus.train)] {
        let frontal: Vec<usize> = part
            .iter()
            .copied()
            .filter(|&i| corpus.prepared[i].class == Class::Frontal)
            .collect();
        let uprights: Vec<_> = frontal
            .iter()
            .map(|&i| corpus.prepared[i].at_laterality_side())
            .collect();
        let s = sides(&model.laterality, &uprights).unwrap();
        let mut right = 0;
        for (&i, (p, q)) in frontal.iter().zip(&s) {
            let ok = *p < 0.5 && *q > 0.5;
            right += usize::from(ok);
            if !ok {
                eprintln!(
                    "  {name} wrong: {} p(mirrored) {p:.3} / mirrored {q:.3}",
                    corpus.examples[i].path
                );
            }
        }
        eprintln!(
            "{name}: left-right alone {right} of {} frontal",
            frontal.len()
        );
        // Films of the upper chest: the top share of each upright radiograph, full width.
        for share in [0.5, 0.6, 0.7, 0.8] {
            let tops: Vec<_> = frontal
                .iter()
                .filter_map(|&i| corpus.prepared[i].detail.as_ref())
                .map(|d| {
                    d.top(share)
                        .scaled_to_fit(radlab_triage::model::LATERALITY.side)
                })
                .collect();
            let s = sides(&model.laterality, &tops).unwrap();
            let right = s.iter().filter(|(p, q)| *p < 0.5 && *q > 0.5).count();
            eprintln!(
                "{name}: left-right alone, the top {:.0}% of each: {right} of {}",
                share * 100.0,
                tops.len()
            );
        }
        let ev = evaluate(&model, &corpus.subset(part)).unwrap();
        let ev0 = evaluate(&model.triage, &corpus.subset(part)).unwrap();
        eprintln!(
            "{name}: with it valid {:.3} orientation {:.4} ({} of {}); triage alone orientation {:.4}",
            ev.valid_accuracy(),
            ev.orientation_accuracy(),
            ev.orientation_right,
            ev.orientation_total,
            ev0.orientation_accuracy()
        );
        for m in &ev.orientation_mistakes {
            eprintln!(
                "  {name} orientation: {} wrong {} as stored {:?}",
                corpus.examples[part[m.example]].path, m.wrong, m.upright_seen_as
            );
        }
    }
    eprintln!("{:.0}s", t.elapsed().as_secs_f64());
}
