//! A run page rendered by a real browser: headless Chromium (Debian's `chromium`) takes a
//! screenshot, and the timeline must show up in it, not a blank page. Without Chromium the test
//! says so and passes, except under CI (env `CI` set), where `.ci/run` installs it.

mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long Chromium may take to start and render before the test gives up.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DETCD_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|path| path.is_file())
}

/// Renders `page` with Chromium into `png`.
fn screenshot(browser: &Path, page: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium exited with {status}");
            return;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counts the pixels within a small distance of `rgb`.
fn pixels_near(data: &[u8], channels: usize, rgb: [u8; 3]) -> usize {
    data.chunks(channels)
        .filter(|pixel| {
            pixel
                .iter()
                .zip(rgb)
                .all(|(have, want)| have.abs_diff(want) <= 12)
        })
        .count()
}

/// Goal: a browser draws the timeline: bars of ok and failed operations, the window band and
/// fault bands appear as pixels of their colours, in amounts only the bars can make (the
/// legend's swatches hold 144 pixels each). Method: render the fixture artifact's page with
/// headless Chromium and count pixels by colour in the screenshot.
#[test]
fn timeline_renders_in_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing under CI: .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("chromium not found: skipping the screenshot test (apt-get install chromium)");
        return;
    };
    let dir = fixtures::scratch("screenshot");
    let artifact = dir.join("seed-7");
    fixtures::write_artifact(&artifact);
    let page = artifact.join("report.html");
    std::fs::write(&page, reports::run_page(&artifact).unwrap()).unwrap();
    let png_path = dir.join("page.png");
    screenshot(&browser, &page, &png_path, &dir.join("profile"));
    let decoder = png::Decoder::new(std::fs::File::open(&png_path).expect("a screenshot"));
    let mut reader = decoder.read_info().expect("a png");
    let mut data = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut data).expect("a frame");
    let channels = frame.color_type.samples();
    let data = &data[..frame.buffer_size()];
    let white = pixels_near(data, channels, [255, 255, 255]);
    let total = data.len() / channels;
    assert!(white < total, "the page is blank");
    // ok #2da44e and failed #cf222e: bars of seconds of a ten-second run, 14 px high.
    let ok = pixels_near(data, channels, [0x2d, 0xa4, 0x4e]);
    let failed = pixels_near(data, channels, [0xcf, 0x22, 0x2e]);
    let down = pixels_near(data, channels, [0xfa, 0x45, 0x49]);
    assert!(ok > 2_000, "ok bars: {ok} pixels");
    assert!(failed > 1_000, "failed bar: {failed} pixels");
    assert!(down > 1_000, "member-down band: {down} pixels");
    std::fs::remove_dir_all(&dir).unwrap();
}
