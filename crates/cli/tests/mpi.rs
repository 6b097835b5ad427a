//! MPI runs on loopback (`cargo test -p fieldflow --features mpi --test mpi`,
//! run by `cargo xtask test`): `mpirun -n 2` must produce the very files one
//! process produces (docs/MPI.md).
#![cfg(feature = "mpi")]

use fieldflow_io::{EnsembleReader, ModelFile};
use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_fieldflow");

/// Runs `fieldflow args…` directly (ranks = 0) or under `mpirun -n ranks`.
fn fieldflow(ranks: usize, args: &[&str]) {
    let mut cmd = if ranks == 0 {
        Command::new(EXE)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "--oversubscribe", "-n", &ranks.to_string(), EXE]);
        c
    };
    let out = cmd
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .output()
        .expect("mpirun (openmpi-bin) must be installed for the MPI tests");
    assert!(
        out.status.success(),
        "fieldflow {args:?} on {ranks} ranks failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn train_on_two_ranks_equals_one_process_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    // The tutorial flow on 4×4, RKL, a batch of 3 chunks (32 + 32 + 16 rows)
    // so the ranks get unequal shares.
    let cfg = write(
        dir.path(),
        "train.toml",
        r#"
seed = 3
checkpoint_every = 4
[phi4]
lattice = [4, 4]
m2 = -4.0
lambda = 8.0
[train]
loss = { preset = "rkl" }
batch_size = 80
steps = 6
lr = 1e-3
seed = 3
metrics_every = 3
eval_batch = 64
"#,
    );
    let one = dir.path().join("one.h5").display().to_string();
    let two = dir.path().join("two.h5").display().to_string();
    fieldflow(0, &["train", "--config", &cfg, "--out", &one, "--quiet"]);
    // The run itself checks that both ranks end with identical parameters.
    fieldflow(2, &["train", "--config", &cfg, "--out", &two, "--quiet"]);
    let (a, b) = (ModelFile::read(&one).unwrap(), ModelFile::read(&two).unwrap());
    assert_eq!(a.state.params.len(), 12_960, "the tutorial flow");
    assert_eq!(bits(&a.state.params), bits(&b.state.params), "parameters");
    assert_eq!(bits(&a.state.adam_m), bits(&b.state.adam_m), "Adam m");
    assert_eq!(bits(&a.state.adam_v), bits(&b.state.adam_v), "Adam v");
    assert_eq!(
        a.metrics.keys().collect::<Vec<_>>(),
        b.metrics.keys().collect::<Vec<_>>()
    );
    for (k, v) in &a.metrics {
        assert_eq!(bits(v), bits(&b.metrics[k]), "metric {k}");
    }
}

#[test]
fn generate_on_two_ranks_writes_the_one_process_file() {
    let dir = tempfile::tempdir().unwrap();
    // 5 chains over 2 ranks (3 + 2), two blocks.
    let cfg = write(
        dir.path(),
        "gen.toml",
        r#"
seed = 7
chains = 5
n_therm = 20
n_cfg = 7
thin = 2
block = 4
[phi4]
lattice = [4, 4]
m2 = -4.0
lambda = 8.0
"#,
    );
    let one = dir.path().join("one.h5").display().to_string();
    let two = dir.path().join("two.h5").display().to_string();
    fieldflow(0, &["generate", "--config", &cfg, "--out", &one, "--quiet"]);
    fieldflow(2, &["generate", "--config", &cfg, "--out", &two, "--quiet"]);
    let (a, b) = (EnsembleReader::open(&one).unwrap(), EnsembleReader::open(&two).unwrap());
    assert_eq!((a.n_chains(), a.n_cfg()), (5, 7));
    assert_eq!((b.n_chains(), b.n_cfg()), (5, 7));
    let flat = |r: &EnsembleReader| bits(&r.configs_flat().unwrap().iter().copied().collect::<Vec<_>>());
    assert_eq!(flat(&a), flat(&b), "configs");
    for name in ["log_p", "delta_h", "acceptance"] {
        let s = |r: &EnsembleReader| bits(&r.series(name).unwrap().iter().copied().collect::<Vec<_>>());
        assert_eq!(s(&a), s(&b), "series {name}");
    }
    assert_eq!(a.series_u8("accepted").unwrap(), b.series_u8("accepted").unwrap());
    let (ca, cb) = (a.checkpoint().unwrap().unwrap(), b.checkpoint().unwrap().unwrap());
    assert_eq!(ca.chains, cb.chains, "chain states");
    assert_eq!(
        bits(&ca.state.iter().copied().collect::<Vec<_>>()),
        bits(&cb.state.iter().copied().collect::<Vec<_>>())
    );
    assert_eq!(a.header().config, b.header().config);
}

#[test]
fn sample_on_two_ranks_writes_the_one_process_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let cfg = write(
        dir.path(),
        "mog.toml",
        "seed = 3\n[target]\nkind = \"mog4\"\n[data]\nexact = true\nn_train = 200\nn_heldout = 200\n\
[train]\nloss = { preset = \"fkl\" }\nbatch_size = 64\nsteps = 20\nlr = 3e-3\nmetrics_every = 10\n",
    );
    fieldflow(0, &["train", "--config", &cfg, "--out", &p("m.h5"), "--quiet"]);
    // 5 chains over 2 ranks (2 + 3); 1100 samples per chain = two blocks of
    // the fixed block size 1000.
    for method in ["is", "imh", "hybrid", "isir", "global-local", "neutra"] {
        let sample = |ranks: usize, out: &str| {
            let args = [
                "sample",
                "--model",
                &p("m.h5"),
                "--method",
                method,
                "--chains",
                "5",
                "--n",
                "1100",
                "--seed",
                "9",
                "--out",
                out,
                "--quiet",
            ];
            fieldflow(ranks, &args);
        };
        let (one, two) = (p(&format!("{method}_one.h5")), p(&format!("{method}_two.h5")));
        sample(0, &one);
        sample(2, &two);
        let (a, b) = (EnsembleReader::open(&one).unwrap(), EnsembleReader::open(&two).unwrap());
        assert_eq!((a.n_chains(), a.n_cfg()), (5, 1100));
        assert_eq!((b.n_chains(), b.n_cfg()), (5, 1100));
        let flat = |r: &EnsembleReader| bits(&r.configs_flat().unwrap().iter().copied().collect::<Vec<_>>());
        assert_eq!(flat(&a), flat(&b), "{method}: configs");
        for name in ["log_p", "log_q", "log_w", "local_acceptance"] {
            let s = |r: &EnsembleReader| bits(&r.series(name).unwrap().iter().copied().collect::<Vec<_>>());
            assert_eq!(s(&a), s(&b), "{method}: series {name}");
        }
        assert_eq!(a.series_u8("accepted").unwrap(), b.series_u8("accepted").unwrap());
        let (ca, cb) = (a.checkpoint().unwrap().unwrap(), b.checkpoint().unwrap().unwrap());
        assert_eq!(ca.chains, cb.chains, "{method}: chain states");
        assert_eq!(
            bits(&ca.state.iter().copied().collect::<Vec<_>>()),
            bits(&cb.state.iter().copied().collect::<Vec<_>>())
        );
        assert_eq!(a.header().config, b.header().config);
    }
}
