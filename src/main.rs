//! The `sso-operator` command line: `run`, `controller`, `server` and `crd`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// SAML single sign-on and SCIM 2.0 provisioning for Kubernetes.
#[derive(Parser)]
#[command(name = "sso-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller and the server in one process (the embedded default).
    Run,
    /// Run only the controller: reconciles IdentityProvider and ScimToken resources.
    Controller,
    /// Run only the server: SAML service provider, SCIM 2.0 and forward-auth endpoints.
    Server,
    /// Print both CustomResourceDefinitions as YAML, for `kubectl apply -f -`.
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match sso_operator::api::crds_yaml() {
            Ok(yaml) => {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(yaml.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: could not render the CRDs as YAML: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run | Command::Controller | Command::Server => {
            eprintln!(
                "error: this build of sso-operator only provides `crd`; the controller and server roles are not part of it yet"
            );
            ExitCode::from(2)
        }
    }
}
