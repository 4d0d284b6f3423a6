//! The load generator (`switchboard loadtest`).

#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// Bridged calls to hold at once.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
}

pub async fn run(_args: LoadtestArgs) -> anyhow::Result<()> {
    anyhow::bail!("the load generator is being written")
}
