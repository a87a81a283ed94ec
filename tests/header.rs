//! The committed C header is exactly what cbindgen generates from src/ffi, and its version
//! macros match Cargo.toml. `BLESS=1 cargo test --test header` rewrites it.

use std::path::Path;

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

#[test]
fn header_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/nnunet_rt.h");
    let generated = generate();
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/nnunet_rt.h is out of date with src/ffi; regenerate it with `BLESS=1 cargo test --test header` and commit it"
    );
}

#[test]
fn version_macros_match_cargo_toml() {
    let header = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/nnunet_rt.h")).unwrap();
    let macro_value = |name: &str| -> u32 {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} missing"));
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let parse = |v: &str| v.parse::<u32>().unwrap();
    let (major, minor, patch) = (
        parse(env!("CARGO_PKG_VERSION_MAJOR")),
        parse(env!("CARGO_PKG_VERSION_MINOR")),
        parse(env!("CARGO_PKG_VERSION_PATCH")),
    );
    assert_eq!(macro_value("NNRT_VERSION_MAJOR"), major);
    assert_eq!(macro_value("NNRT_VERSION_MINOR"), minor);
    assert_eq!(macro_value("NNRT_VERSION_PATCH"), patch);
    assert_eq!(macro_value("NNRT_VERSION_NUMBER"), major * 10000 + minor * 100 + patch);
    assert_eq!(macro_value("NNRT_ABI_VERSION"), nnunet_rt::ffi::nnrt_abi_version());
}
