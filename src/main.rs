//! The pgrehearse binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    pgrehearse::cli::main()
}
