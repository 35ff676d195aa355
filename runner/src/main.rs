//! The `rustle-runner` binary: argument handling lives in [`rustle_runner::cli`].

fn main() {
    std::process::exit(rustle_runner::cli::main(
        std::env::args_os().skip(1).collect(),
    ));
}
