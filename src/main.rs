//! The `switchback` command: run the switch, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchback::{config, driver};

// The switch allocates and frees small buffers for every SIP message on every
// worker thread; glibc's per-thread arenas grow and trim their heaps under
// that pattern (page clearing and faults were ~10 % of a REGISTER's CPU).
// mimalloc keeps freed pages per thread and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchback",
    version,
    about = "A SIP-native web-callback softswitch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch (on the embedded default configuration without --config).
    Run {
        /// The main configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log every SIP message sent and received, overriding the configuration.
        #[arg(long)]
        trace_sip: bool,
    },
    /// Validate a configuration and report every error with file, line and key.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBACK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(cfg) => {
                // Warnings on stderr, like errors; the file is still usable.
                for w in &cfg.warnings {
                    eprintln!("{w}");
                }
                if let Ok(hard) = driver::limits::open_files_hard_limit() {
                    if let Some(w) = driver::limits::descriptor_warning(&cfg, hard) {
                        eprintln!("{}: warning: {w}", file.display());
                    }
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, trace_sip } => match run(config, trace_sip) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchback: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(path: Option<PathBuf>, trace_sip: bool) -> anyhow::Result<()> {
    let (mut cfg, dir) = match &path {
        Some(p) => (
            config::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
            p.parent().map(PathBuf::from).unwrap_or_default(),
        ),
        None => (config::embedded_default(), PathBuf::from(".")),
    };
    cfg.general.log_sip_messages |= trace_sip;
    for w in &cfg.warnings {
        tracing::warn!(file = %w.file, line = w.line, key = %w.key, "{}", w.message);
    }
    if let Err(e) = driver::limits::disable_transparent_huge_pages() {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off (latency may spike)");
    }
    match driver::limits::raise_open_files() {
        Ok(limit) => {
            tracing::info!(limit, "open files");
            if let Some(w) = driver::limits::descriptor_warning(&cfg, limit) {
                tracing::warn!("{w}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // The driver's event loop runs as a task on the runtime's workers, not on
    // this thread: the workers hand it an event per registration or call
    // step, and waking a task on a busy worker costs far less than waking a
    // parked thread (a futex call and a context switch per event).
    let driver = async move {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        // Event lines gather here and go out once per batch (one write).
        let lines = std::sync::Mutex::new(String::new());
        let line = |text: std::fmt::Arguments| {
            use std::fmt::Write;
            let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
            let _ = l.write_fmt(text);
            l.push('\n');
        };
        driver::run(
            cfg,
            dir,
            shutdown,
            |listeners, http| {
                for l in listeners {
                    println!("listening {} {} {}", l.profile, l.transport, l.address);
                }
                if let Some(a) = http {
                    println!("http {a}");
                }
                println!("ready");
            },
            |event| line(format_args!("event {event}")),
            |desktop| line(format_args!("event {desktop}")),
            || {
                let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                if !l.is_empty() {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(l.as_bytes());
                    let _ = out.flush();
                    l.clear();
                }
            },
        )
        .await
    };
    runtime
        .block_on(async move { tokio::spawn(driver).await })
        .context("the driver task failed")??;
    println!("stopped");
    Ok(())
}
