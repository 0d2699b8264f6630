//! Any API path a flow or `/api-call` could produce: once accepted, no segment is a dot
//! segment or hides a separator, a path below /v1/workspaces/ names the installation's own
//! workspace, and the URL the client builds from it is read as the same segments.
#![no_main]

use addon_core::clockify::client::scoped_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(segments) = scoped_path(p, "ws1") else {
        return;
    };
    for s in &segments {
        assert!(s != "." && s != ".." && !s.is_empty(), "{p:?} -> {s:?}");
        assert!(!s.contains(['/', '\\', '?', '#', '%']), "{p:?} -> {s:?}");
    }
    // `/v1/workspaces` alone (the caller's workspaces) names none; anything below names ws1.
    if segments.get(1).map(String::as_str) == Some("workspaces") && segments.len() > 2 {
        assert_eq!(segments[2], "ws1", "{p:?}");
    }
    // What the client does next: join it to the API base; when the parser kept the path as
    // written (the client refuses otherwise), the server reads the same segments.
    let joined = format!("https://api.clockify.me/api{p}");
    if let Ok(url) = url::Url::parse(&joined)
        && url.path() == format!("/api{p}")
    {
        let served: Vec<String> = url.path_segments().into_iter().flatten().skip(1).map(|s| {
            percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
        }).collect();
        assert_eq!(served, segments, "{p:?}");
    }
});
