//! Pieces of URLs the engine's HTTP clients (the provider clients, the `numbers`
//! command line) build from text they do not control: numbers, ids, workspaces.

/// RFC 3986's unreserved characters stay; every other byte is percent-encoded.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One URL path segment or query value: every byte but RFC 3986's unreserved ones
/// percent-encoded (`+` is `%2B`; a provider's raw, unparseable number can hold `/`
/// or spaces).
pub fn path_segment(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, NOT_UNRESERVED).to_string()
}
