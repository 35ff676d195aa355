//! The `rustle-deploy` binary: everything lives in [`rustle_deploy::commands`].

fn main() {
    std::process::exit(rustle_deploy::commands::main());
}
