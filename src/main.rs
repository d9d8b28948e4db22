//! The `eventbus` binary: parse flags, set up logging and signals, serve.

use std::process::ExitCode;

use eventbus::command_line::{Action, Cli, LoadError};
use eventbus::server::Server;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = match Cli::load_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(LoadError::Clap(e)) => e.exit(),
        Err(LoadError::File(msg)) => {
            eprintln!("eventbus: {msg}");
            return ExitCode::from(2);
        }
    };
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
    let result = match cli.into_action() {
        Action::Serve(args) => {
            eventbus::telemetry::init(&args.log_format);
            rt.block_on(serve(*args))
        }
        Action::Client(command) => rt.block_on(command.run()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventbus: {}", eventbus::client::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: eventbus::config::ServeArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let listen = args.listen;
    // A server error's message already includes its causes: printed as
    // a chain, each cause would appear twice.
    let server = Server::build(args)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
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
