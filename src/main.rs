use clap::Parser as _;
use switchboard::cli::{Cli, Command};
use switchboard::config::Settings;
use switchboard::startup::Application;
use switchboard::store::Store;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The numbers commands print results on stdout: no log lines among them; the
    // load generator is another program, with its own.
    if !matches!(cli.command, Command::Numbers(_) | Command::Loadtest(_)) {
        switchboard::telemetry::init();
    }
    match cli.command {
        Command::Serve => {
            let settings = Settings::load(cli.config.as_deref())?;
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "switchboard listening");
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let settings = Settings::load(cli.config.as_deref())?;
            let store = Store::connect(&settings.database_url, &settings.node_id).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
        }
        Command::Loadtest(alias) => switchboard::cli::exec_loadtest(alias)?,
        Command::Numbers(args) => {
            let status = match switchboard::cli::numbers::run(args).await {
                Ok(status) => status,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    1
                }
            };
            std::process::exit(status);
        }
    }
    Ok(())
}
