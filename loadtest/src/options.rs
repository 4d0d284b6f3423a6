//! Command-line values parsed once, at the edge: the engine's and the peer relay's
//! URLs, and the CPUs the engine and the generator are pinned to.

use std::fmt;

/// `--engine-url`: `http://HOST[:PORT][/PREFIX]`, no query, no trailing slash. Also
/// the public URL the engine computes Twilio signatures over. Plain HTTP only: the
/// generator's WebSocket client speaks `ws://` (no TLS on the measured path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineUrl(String);

impl EngineUrl {
    pub fn parse(text: &str) -> Result<EngineUrl, String> {
        let url = url::Url::parse(text).map_err(|err| {
            format!("--engine-url {text:?} is not a URL ({err}); expected http://HOST:PORT")
        })?;
        if url.scheme() != "http" {
            return Err(format!(
                "--engine-url {text:?}: only http:// is supported (the load generator's \
                 WebSocket client speaks ws:// only), not {}://",
                url.scheme()
            ));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(format!("--engine-url {text:?} names no host"));
        };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "--engine-url {text:?}: no query, fragment or user; expected http://HOST:PORT"
            ));
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        Ok(EngineUrl(format!("http://{host}{port}{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EngineUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `--peer-url`: the Twilio Media Streams WebSocket of a relay that is not
/// switchboard (`ws://HOST:PORT/PATH`), with the port written out (the generator's
/// client connects to `HOST:PORT` as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl(String);

impl PeerUrl {
    pub fn parse(text: &str) -> Result<PeerUrl, String> {
        let url = url::Url::parse(text).map_err(|err| {
            format!("--peer-url {text:?} is not a URL ({err}); expected ws://HOST:PORT/PATH")
        })?;
        if url.scheme() != "ws" {
            return Err(format!(
                "--peer-url {text:?}: only ws:// is supported (the load generator's WebSocket \
                 client has no TLS), not {}://",
                url.scheme()
            ));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(format!("--peer-url {text:?} names no host"));
        };
        if url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!("--peer-url {text:?}: no fragment or user"));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        Ok(PeerUrl(format!("ws://{host}:{port}{}{query}", url.path())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A CPU index given to `--engine-cpu` or `--generator-cpu`.
pub fn parse_cpu(text: &str) -> Result<usize, String> {
    text.trim().parse::<usize>().map_err(|_| {
        format!("{text:?} is not a CPU number (one CPU, e.g. 0; see `nproc` or `lscpu`)")
    })
}

/// The CPUs this process may run on (its affinity mask, as `core_affinity` reads
/// it), sorted.
pub fn usable_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    cpus.sort_unstable();
    cpus
}

/// `--engine-cpu` and `--generator-cpu` against the CPUs this process may use:
/// each must be one of them, and they must differ (the point is to keep the two
/// processes off each other's core). `engine_local`: the engine is spawned here
/// (a running engine or peer relay is pinned by whoever starts it).
pub fn check_cpus(
    engine: Option<usize>,
    generator: Option<usize>,
    engine_spawned: bool,
    usable: &[usize],
) -> anyhow::Result<()> {
    let list = usable
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    for (flag, cpu) in [("--engine-cpu", engine), ("--generator-cpu", generator)] {
        if let Some(cpu) = cpu {
            anyhow::ensure!(
                usable.contains(&cpu),
                "{flag} {cpu}: this process may run on CPUs {list} only"
            );
        }
    }
    if let (Some(engine), Some(generator)) = (engine, generator) {
        anyhow::ensure!(
            engine != generator,
            "--engine-cpu and --generator-cpu are both {engine}: give them different CPUs"
        );
    }
    anyhow::ensure!(
        engine.is_none() || engine_spawned,
        "--engine-cpu pins the engine this program spawns; start a running engine or peer \
         relay under `taskset -c N` yourself"
    );
    Ok(())
}

/// Pins this process's current thread, and so every thread it starts afterwards
/// (Linux threads inherit their creator's affinity), to `cpu`. Called by `main`
/// before the actix runtime exists.
pub fn pin_current_thread(cpu: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
        "could not pin the generator to CPU {cpu}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_urls_are_plain_http_with_a_host() {
        assert_eq!(
            EngineUrl::parse("http://10.0.0.7:8080/").map(|u| u.0),
            Ok("http://10.0.0.7:8080".to_owned())
        );
        assert_eq!(
            EngineUrl::parse("http://engine.internal").map(|u| u.0),
            Ok("http://engine.internal".to_owned())
        );
        for (bad, says) in [
            ("https://engine:443", "only http://"),
            ("ws://engine:8080", "only http://"),
            ("engine:8080", "only http://"),
            ("http://", "not a URL"),
            ("http://engine:8080/?x=1", "no query"),
            ("not a url", "not a URL"),
        ] {
            let err = EngineUrl::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn peer_urls_are_ws_and_get_their_port_written_out() {
        assert_eq!(
            PeerUrl::parse("ws://127.0.0.1:5050/media-stream").map(|u| u.0),
            Ok("ws://127.0.0.1:5050/media-stream".to_owned())
        );
        assert_eq!(
            PeerUrl::parse("ws://relay/media-stream").map(|u| u.0),
            Ok("ws://relay:80/media-stream".to_owned())
        );
        for (bad, says) in [
            ("wss://relay/media-stream", "only ws://"),
            ("http://relay/media-stream", "only ws://"),
            ("relay:5050", "only ws://"),
            ("ws://", "not a URL"),
        ] {
            let err = PeerUrl::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn cpus_must_exist_differ_and_pin_only_a_spawned_engine() {
        let usable = [0, 1];
        assert!(check_cpus(Some(0), Some(1), true, &usable).is_ok());
        assert!(check_cpus(None, Some(1), false, &usable).is_ok());
        let err = |e: Option<usize>, g: Option<usize>, spawned: bool| {
            check_cpus(e, g, spawned, &usable)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(Some(7), None, true)
            .contains("--engine-cpu 7: this process may run on CPUs 0,1 only"));
        assert!(err(None, Some(2), true).contains("--generator-cpu 2"));
        assert!(err(Some(1), Some(1), true).contains("different CPUs"));
        assert!(err(Some(0), Some(1), false).contains("taskset"));
        assert!(parse_cpu("0,1")
            .expect_err("a list")
            .contains("not a CPU number"));
        assert_eq!(parse_cpu("1"), Ok(1));
    }
}
