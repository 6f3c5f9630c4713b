//! `troupe`: the Troupe server binary. It only wires the other crates: the CLI here, the start
//! and shutdown of one process in `app`, and the embedded `nats-server` in `nats_child`. HTTP is
//! `troupe-gateway`'s, the engine `troupe-actors`', timers `troupe-scheduler`'s, state
//! `troupe-store`'s.

mod app;
mod nats_child;
mod pieces_cli;

use clap::{Parser, Subcommand};

// sled and serde allocate a lot of short-lived buffers; glibc malloc was the top cost in
// profiles (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "troupe", version, about = "Troupe: an actor-based execution platform for automation flows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway, the scheduler and the workers (configured through AP_* variables).
    Serve,
    /// Manage the npm pieces of the running Troupe.
    Pieces {
        #[command(subcommand)]
        command: PiecesCommand,
    },
}

#[derive(Subcommand)]
enum PiecesCommand {
    /// Install a piece from the npm registry with its dependencies: `<name>[@<version>]`.
    Add { spec: String },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sled=warn,async_nats=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // A panic inside a step is caught and fails that run; log it as one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    let config = match troupe_store::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("troupe: {e}");
            std::process::exit(2);
        }
    };
    match cli.command {
        Command::Serve => {
            let system = actix_rt::System::with_tokio_rt(|| {
                tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
            });
            if let Err(e) = system.block_on(app::run(config)) {
                eprintln!("troupe: {e:#}");
                std::process::exit(1);
            }
        }
        Command::Pieces { command: PiecesCommand::Add { spec } } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            if let Err(e) = rt.block_on(pieces_cli::add(&config, &spec)) {
                eprintln!("troupe: {e:#}");
                std::process::exit(1);
            }
        }
    }
}
