//! The `eventbus` binary: parse flags, set up logging and signals, serve.

use std::process::ExitCode;

use clap::Parser;
use eventbus::config::{Cli, Command};
use eventbus::server::Server;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        None => cli.serve,
    };
    eventbus::telemetry::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("eventbus: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventbus: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: eventbus::config::ServeArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let listen = args.listen;
    let server = Server::build(args).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let signals = stop.clone();
    tokio::spawn(async move {
        // Untracked on purpose: it only cancels the token and ends with the process.
        wait_for_signal().await;
        tracing::info!("signal received");
        signals.cancel();
    });
    server.serve(listener, stop).await?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
