//! Generates the C++ side of the bridge (`nnunet_rt_cxx/src/lib.rs.h` and its `.cc`) and
//! compiles it into this crate's static library.

fn main() {
    cxx_build::CFG.include_prefix = "nnunet_rt_cxx";
    cxx_build::bridge("src/lib.rs").include("include").std("c++17").compile("nnunet-rt-cxx-bridge");
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=include/nnunet_rt_cxx/support.h");
}
