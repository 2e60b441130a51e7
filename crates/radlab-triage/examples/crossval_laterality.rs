//! Cross-validation of the left-right network by patient: the frontal radiographs of the
//! corpus's training part (or, with `all`, of the whole corpus) dealt into FOLDS folds by
//! family ([`folds_by_group`]); for each fold, the network trained as `radlab triage train`
//! trains it on the other folds, then asked the side of each of the fold's radiographs,
//! whole and cut to its top 50, 60 and 70% (films of the upper chest). Judges a change to
//! the network's design without looking at the held-out fifth (the default, `train`).
//! With SEEDS above 1, each fold trains that many networks (seeds counting up from
//! `radlab triage train`'s), and each is judged alone, then their mean as one (an ensemble).
//! `cargo run --release -p radlab-triage --example crossval_laterality -- CORPUS FOLDS [EPOCHS] [train|all] [SEEDS]`
use radlab_triage::dataset::{Class, folds_by_group};
use radlab_triage::laterality::{self, sides};
use radlab_triage::model::LATERALITY;
use radlab_triage::train::{Corpus, TrainConfig, UPPER_CHEST_SHARES};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: crossval_laterality CORPUS FOLDS [EPOCHS] [train|all] [SEEDS]");
        std::process::exit(2);
    }
    let folds: usize = a[2].parse().expect("FOLDS: a number");
    let config = TrainConfig {
        epochs: a
            .get(3)
            .map_or(laterality::EPOCHS, |e| e.parse().expect("EPOCHS")),
        ..Default::default()
    };
    let whole = a.get(4).is_some_and(|p| p == "all");
    let seeds: usize = a.get(5).map_or(1, |s| s.parse().expect("SEEDS: a number"));
    let t = std::time::Instant::now();
    let corpus = Corpus::load(std::path::Path::new(&a[1]), config.seed).expect("the corpus");
    let part: Vec<usize> = if whole {
        (0..corpus.examples.len()).collect()
    } else {
        corpus.train.clone()
    };
    let frontal: Vec<usize> = part
        .iter()
        .copied()
        .filter(|&i| corpus.prepared[i].class == Class::Frontal)
        .collect();
    let examples: Vec<_> = frontal
        .iter()
        .map(|&i| corpus.examples[i].clone())
        .collect();
    let fold_of = folds_by_group(&examples, folds, config.seed);
    println!(
        "{} frontal radiographs of the {} part, {folds} folds by patient, {} epochs, {seeds} seed(s)",
        frontal.len(),
        if whole { "whole corpus" } else { "training" },
        config.epochs
    );
    let shares: Vec<f64> = std::iter::once(1.0).chain(UPPER_CHEST_SHARES).collect();
    // Judges: each seed alone, then (with more than one) their mean.
    let judges = if seeds > 1 { seeds + 1 } else { 1 };
    let mut right = vec![vec![0usize; shares.len()]; judges];
    for f in 0..folds {
        let learn: Vec<usize> = frontal
            .iter()
            .zip(&fold_of)
            .filter(|(_, k)| **k != f)
            .map(|(i, _)| *i)
            .collect();
        let judge: Vec<usize> = frontal
            .iter()
            .zip(&fold_of)
            .filter(|(_, k)| **k == f)
            .map(|(i, _)| *i)
            .collect();
        let learned = corpus.subset(&learn);
        let models: Vec<_> = (0..seeds)
            .map(|s| {
                let config = TrainConfig {
                    seed: config.seed + s as u64,
                    ..config
                };
                let net = laterality::train(&learned, &config, &mut |_, _| {})
                    .and_then(|n| n.to_safetensors())
                    .expect("training");
                laterality::Builtin::from_safetensors(radlab_triage::BUILTIN_WEIGHTS, &net)
                    .expect("the weights")
            })
            .collect();
        let mut line = format!("fold {f}: {} learned, {} judged", learn.len(), judge.len());
        for (s, &share) in shares.iter().enumerate() {
            let uprights: Vec<_> = judge
                .iter()
                .filter_map(|&i| corpus.prepared[i].detail.as_ref())
                .map(|d| d.top(share).scaled_to_fit(LATERALITY.side))
                .collect();
            // p(mirrored) of each radiograph as stored, by each network.
            let each: Vec<Vec<f32>> = models
                .iter()
                .map(|m| {
                    sides(&m.laterality, &uprights)
                        .expect("sides")
                        .into_iter()
                        .map(|(p, _)| p)
                        .collect()
                })
                .collect();
            let mut by: Vec<Vec<f32>> = each.clone();
            if seeds > 1 {
                by.push(
                    (0..judge.len())
                        .map(|k| each.iter().map(|e| e[k]).sum::<f32>() / seeds as f32)
                        .collect(),
                );
            }
            for (j, ps) in by.iter().enumerate() {
                let mut ok = 0;
                for (&i, &p) in judge.iter().zip(ps) {
                    if p < 0.5 {
                        ok += 1;
                    } else if share == 1.0 && j + 1 == by.len() {
                        println!("  wrong: {} p(mirrored) {p:.3}", corpus.examples[i].path);
                    }
                }
                right[j][s] += ok;
                if j + 1 == by.len() {
                    line += &format!("; top {:.0}%: {ok}", share * 100.0);
                }
            }
        }
        println!("{line} ({:.0} s)", t.elapsed().as_secs_f64());
    }
    for (j, right) in right.iter().enumerate() {
        let who = if j < seeds {
            format!("seed {}", config.seed + j as u64)
        } else {
            format!("mean of {seeds} seeds")
        };
        for (s, share) in shares.iter().enumerate() {
            println!(
                "pooled, {who}, top {:.0}%: {} of {} sides right ({:.1}%)",
                share * 100.0,
                right[s],
                frontal.len(),
                100.0 * right[s] as f64 / frontal.len().max(1) as f64
            );
        }
    }
}
