//! The `rustle-deploy` binary: everything lives in [`rustle_deploy::cli`].

fn main() {
    std::process::exit(rustle_deploy::cli::main());
}
