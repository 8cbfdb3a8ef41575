//! `rr-proxy`: flags → validated config → bind → run. Exit codes: 0 after `--help` and after a
//! drain (SIGTERM or SIGINT), 1 when the proxy cannot start, stops on an error, or a second
//! signal cut the drain short, 2 for a bad command line.

use std::io::Write;
use std::process::ExitCode;

use rr_proxy::logging;
use rr_proxy::proxy::control::Stop;
use rr_proxy::proxy::{self, config, Listeners};

fn main() -> ExitCode {
    let env_backends = std::env::var("BACKEND_SERVERS").ok();
    let mut cfg = match config::from_args(std::env::args().skip(1), env_backends) {
        Ok(config::Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(config::Command::Run(cfg)) => *cfg,
        Err(e) => {
            eprintln!("rr-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(Some(&log_filter(&cfg)), cfg.log_format);
    if let Some(limit) = rr_proxy::net::limit::raise_open_files(cfg.descriptors_wanted()) {
        if let Some(changed) = cfg.fit_descriptors(limit) {
            log::warn!(
                "the open-file limit (ulimit -n {limit}) does not hold a backend connection \
                 for every client: {changed}"
            );
        }
    }
    let listeners = match Listeners::bind(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rr-proxy: cannot listen on {e}");
            return ExitCode::from(1);
        }
    };
    // Tests and scripts read these lines to learn the ports (`--listen 127.0.0.1:0` works).
    let addr = listeners.traffic.local_addr().map_or(cfg.listen, |a| a);
    println!("listening on {addr}");
    if let Some(Ok(admin)) = listeners.admin.as_ref().map(|a| a.local_addr()) {
        println!("admin on {admin}");
    }
    let _ = std::io::stdout().flush();
    match proxy::run(listeners, cfg) {
        Ok(Stop::Drained | Stop::DrainTimedOut) => ExitCode::SUCCESS,
        // A second signal cut the drain short: requests may have been lost.
        Ok(Stop::Forced) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rr-proxy: {e}");
            ExitCode::from(1)
        }
    }
}

/// The log filter: `--log-level`, else a valid `RUST_LOG`, else `warn`; with `--access-log`,
/// the `access` target at `info` on top.
fn log_filter(cfg: &config::Config) -> String {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| logging::check_level(v).is_ok());
    let base = cfg
        .log_level
        .clone()
        .or(env)
        .unwrap_or_else(|| "warn".into());
    if cfg.access_log {
        format!("{base},{}=info", logging::ACCESS_TARGET)
    } else {
        base
    }
}
