// mimalloc: the request path allocates many small, short-lived buffers (JSON, rows); glibc
// malloc showed up as ~15% of CPU in profiles of the read benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    herald::cli::main()
}
