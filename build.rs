//! Gives the shared library the name programs linked against it record: `libnnunet_rt.so.0` on
//! Linux (it changes when the C ABI does; `cargo xtask dist` ships the file as
//! `libnnunet_rt.so.<version>` with the links `libnnunet_rt.so.0` and `libnnunet_rt.so`), and
//! `@rpath/libnnunet_rt.0.dylib` on macOS. Windows DLLs have no such name.
//!
//! A program linked with `-L target/debug -lnnunet_rt` then asks the loader for
//! `libnnunet_rt.so.0`, which cargo does not write: on Linux this script puts that link beside
//! the library in the profile folder (`target/<profile>/`, the folder above `build/`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnnunet_rt.so.0");
            soname_link();
        }
        Ok("macos") => println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libnnunet_rt.0.dylib"),
        _ => {}
    }
}

/// `target/<profile>/libnnunet_rt.so.0 -> libnnunet_rt.so` (OUT_DIR is
/// `target/<profile>/build/nnunet-rt-<hash>/out`). Best effort: a build never fails for it.
#[cfg(unix)]
fn soname_link() {
    let Some(out_dir) = std::env::var_os("OUT_DIR") else { return };
    let Some(profile_dir) = std::path::Path::new(&out_dir).ancestors().nth(3) else { return };
    if profile_dir.join("build").is_dir() {
        let link = profile_dir.join("libnnunet_rt.so.0");
        if std::fs::read_link(&link).is_err() {
            let _ = std::os::unix::fs::symlink("libnnunet_rt.so", &link);
        }
    }
}

#[cfg(not(unix))]
fn soname_link() {}
