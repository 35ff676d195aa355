//! Writes every target's seeds into `<dir>/<target>/`, where `cargo xtask fuzz` keeps each
//! target's corpus: `seeds <dir>`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: seeds <corpus directory>");
        return ExitCode::FAILURE;
    };
    for (target, _) in rustle_fuzz::TARGETS {
        let out = dir.join(target);
        if let Err(e) = std::fs::create_dir_all(&out) {
            eprintln!("seeds: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        for (name, data) in rustle_fuzz::seeds::all(target) {
            // One flat name per seed, stable across runs so that a rerun overwrites.
            let file: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = out.join(format!("seed-{file}"));
            if let Err(e) = std::fs::write(&path, data) {
                eprintln!("seeds: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
