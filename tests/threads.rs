//! One thread setting sizes both the network's threads and the model's own pool for the work
//! around it (the README's "a model uses at most that many cores at once").

mod common;

use nnunet_rt::{LoadOptions, Model};

#[test]
fn one_setting_sizes_the_network_and_the_models_pool() {
    if !common::ort_available() {
        return;
    }
    let dir = common::fixtures().join("models/resenc_ct");
    for threads in [1, 3] {
        let options = LoadOptions { intra_threads: Some(threads), folds: Some(vec!["0".into()]), ..Default::default() };
        let model = Model::load(&dir, &options).unwrap();
        assert_eq!(model.threads(), threads, "the model's pool");
        assert_eq!(model.runtime_info().unwrap().threads, Some(threads), "the network's threads");
    }
    let model = Model::load(&dir, &LoadOptions { folds: Some(vec!["0".into()]), ..Default::default() }).unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(model.threads(), cores, "default: one per core");
    assert_eq!(model.runtime_info().unwrap().threads, None, "the provider's default: one per core");
}
