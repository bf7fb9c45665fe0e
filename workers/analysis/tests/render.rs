//! The HTML report renders in headless Chromium: a screenshot is taken and must
//! show a real page (not blank), with the red SIMULATED banner on top when the
//! outcomes were simulated. With `CI` set, a missing Chromium fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cpo_analysis::synth::{SyntheticRun, write_run};

fn find_chromium() -> Option<PathBuf> {
    let candidates = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .map(PathBuf::from),
        );
    candidates.into_iter().find(|candidate| {
        Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs Chromium headless with a fresh profile; kills it after two minutes.
fn screenshot(chromium: &Path, page: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2000")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => {
                assert!(status.success(), "chromium exited with {status}");
                return;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("chromium did not finish within two minutes");
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

struct Image {
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
}

impl Image {
    fn load(path: &Path) -> Image {
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(path).expect("open png"),
        ));
        let mut reader = decoder.read_info().expect("png header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("png size")];
        let info = reader.next_frame(&mut pixels).expect("png frame");
        Image {
            width: info.width as usize,
            height: info.height as usize,
            channels: info.color_type.samples(),
            pixels,
        }
    }

    fn rgb(&self, x: usize, y: usize) -> (u8, u8, u8) {
        let i = (y * self.width + x) * self.channels;
        (self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
    }
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (apt-get install -y chromium)"
        );
        eprintln!("skipping: chromium not installed");
        return;
    };
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cpo-analysis-render");
    let _ = std::fs::remove_dir_all(&work);
    let run = work.join("run");
    write_run(
        &run,
        &SyntheticRun {
            customers: 6000,
            ..SyntheticRun::default()
        },
    )
    .expect("run");
    let paths = cpo_analysis::simulate_and_report(&run, 42).expect("report");
    let png = work.join("report.png");
    screenshot(
        &chromium,
        &std::fs::canonicalize(&paths.html).expect("path"),
        &png,
        &work.join("profile"),
    );
    eprintln!("screenshot: {}", png.display());

    let size = std::fs::metadata(&png).expect("screenshot written").len();
    assert!(size > 50_000, "screenshot is only {size} bytes");
    let image = Image::load(&png);
    assert_eq!((image.width, image.height), (1280, 2000));
    // A blank or broken page is one or two colours; a real report has many.
    let mut colours = std::collections::HashSet::new();
    for y in (0..image.height).step_by(7) {
        for x in (0..image.width).step_by(7) {
            colours.insert(image.rgb(x, y));
        }
    }
    assert!(
        colours.len() > 200,
        "only {} distinct colours: blank page?",
        colours.len()
    );
    // The SIMULATED banner spans the top of the page in dark red.
    let banner_red = (0..image.width).step_by(40).filter(|&x| {
        let (r, g, b) = image.rgb(x, 8);
        r > 100 && g < 60 && b < 60
    });
    assert!(
        banner_red.count() > 20,
        "no red SIMULATED banner at the top"
    );
}
