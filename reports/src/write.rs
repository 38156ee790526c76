//! Writing reports to disk: a run page beside each failure artifact, and for the campaign
//! `report.html`, `junit.xml` and `report.json`. `detcd sim fuzz --out DIR` calls this for its
//! own directory, `detcd sim report DIR` regenerates, `detcd sim merge DIR... --out OUT`
//! combines shards.

use std::path::{Component, Path, PathBuf};

use crate::campaign::{merge, Campaign, Shard};
use crate::html::campaign_page;
use crate::junit::junit_xml;
use crate::run_page::{run_page, RunPageError};

/// The campaign format versions this build reads.
const CAMPAIGN_FORMAT_VERSION_MAX: u32 = 1;

/// Why reports could not be written; the message names the path.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A directory holds neither `campaign.json` nor `artifact.json`, or cannot be read.
    #[error("{0}: cannot read: {1} (give a directory written by `detcd sim fuzz --out` or `sim run --out`)")]
    Unreadable(PathBuf, std::io::Error),
    /// A file is corrupt.
    #[error("{0}: {1}")]
    Corrupt(PathBuf, String),
    /// A run page could not be made.
    #[error(transparent)]
    RunPage(#[from] RunPageError),
    /// A report could not be written.
    #[error("{0}: cannot write: {1}")]
    Write(PathBuf, std::io::Error),
}

/// What `write_reports` wrote and found.
#[derive(Clone, Debug)]
pub struct WrittenReports {
    /// The merged campaign (`None` when only a run artifact was given).
    pub campaign: Option<Campaign>,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

fn write_file(path: &Path, text: &str) -> Result<PathBuf, ReportError> {
    std::fs::write(path, text).map_err(|error| ReportError::Write(path.to_path_buf(), error))?;
    Ok(path.to_path_buf())
}

/// Reads `dir/campaign.json`.
pub(crate) fn read_shard(dir: &Path) -> Result<Shard, ReportError> {
    let path = dir.join("campaign.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|error| ReportError::Unreadable(path.clone(), error))?;
    let shard: Shard = serde_json::from_str(&text)
        .map_err(|error| ReportError::Corrupt(path.clone(), error.to_string()))?;
    if shard.format_version > CAMPAIGN_FORMAT_VERSION_MAX {
        return Err(ReportError::Corrupt(
            path,
            format!(
                "campaign format {} is newer than this build reads ({CAMPAIGN_FORMAT_VERSION_MAX})",
                shard.format_version
            ),
        ));
    }
    Ok(shard)
}

/// `to` as a link from a page in `from_dir`: relative when both resolve, else as given.
fn link(from_dir: &Path, to: &Path) -> String {
    let (Ok(from), Ok(target)) = (from_dir.canonicalize(), to.canonicalize()) else {
        return to.display().to_string();
    };
    let from: Vec<Component> = from.components().collect();
    let target: Vec<Component> = target.components().collect();
    let common = from
        .iter()
        .zip(&target)
        .take_while(|(left, right)| left == right)
        .count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        target[common..]
            .iter()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Writes the reports of `dirs` into `out`: each directory is a campaign shard (holds
/// `campaign.json`: a run page is written beside each of its failure artifacts, and all shards
/// merge into `out/report.html`, `out/junit.xml` and `out/report.json`) or a single run's
/// artifact (holds `artifact.json`: its page goes to `DIR/report.html`). `marks_declared`
/// names every coverage mark, so the campaign can list those never hit.
pub fn write_reports(
    dirs: &[PathBuf],
    out: &Path,
    marks_declared: &[&str],
) -> Result<WrittenReports, ReportError> {
    let mut files = Vec::new();
    let mut shards = Vec::new();
    for dir in dirs {
        if !dir.join("campaign.json").exists() && dir.join("artifact.json").exists() {
            files.push(write_file(&dir.join("report.html"), &run_page(dir)?)?);
            continue;
        }
        let shard = read_shard(dir)?;
        for failure in &shard.failures {
            let artifact = dir.join(&failure.artifact);
            if artifact.join("artifact.json").exists() {
                files.push(write_file(
                    &artifact.join("report.html"),
                    &run_page(&artifact)?,
                )?);
            }
        }
        shards.push((dir.clone(), shard));
    }
    if shards.is_empty() {
        return Ok(WrittenReports {
            campaign: None,
            files,
        });
    }
    std::fs::create_dir_all(out).map_err(|error| ReportError::Write(out.to_path_buf(), error))?;
    let linked = shards
        .into_iter()
        .map(|(dir, shard)| (link(out, &dir), shard))
        .collect();
    let campaign = merge(linked, marks_declared);
    files.push(write_file(
        &out.join("report.html"),
        &campaign_page(&campaign),
    )?);
    files.push(write_file(&out.join("junit.xml"), &junit_xml(&campaign))?);
    files.push(write_file(&out.join("report.json"), &campaign.to_json())?);
    Ok(WrittenReports {
        campaign: Some(campaign),
        files,
    })
}

/// `detcd sim report` and `detcd sim merge`: writes the reports and prints a summary; returns
/// the exit status: 0 every seed passed, 1 some seed failed, 2 an input could not be read.
pub fn report_command(dirs: &[PathBuf], out: &Path, marks_declared: &[&str]) -> i32 {
    match write_reports(dirs, out, marks_declared) {
        Ok(written) => {
            for file in &written.files {
                println!("wrote {}", file.display());
            }
            match written.campaign {
                Some(campaign) => {
                    for scenario in &campaign.scenarios {
                        println!(
                            "{} {}: {} seeds, {} failed, {:.1} seeds/s over {} shards",
                            if scenario.passed { "PASS" } else { "FAIL" },
                            scenario.name,
                            scenario.seeds_run,
                            scenario.seeds_failed,
                            scenario.seeds_per_second,
                            scenario.shards.len()
                        );
                    }
                    if !campaign.marks_never_hit.is_empty() {
                        println!(
                            "coverage marks never hit: {}",
                            campaign.marks_never_hit.join(", ")
                        );
                    }
                    i32::from(!campaign.passed)
                }
                None => 0,
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::link;

    /// Goal: links from the merged report to shard directories are relative.
    /// Method: two sibling directories under a temporary root.
    #[test]
    fn links_are_relative() {
        let root = std::env::temp_dir().join(format!("detcd-reports-link-{}", std::process::id()));
        let out = root.join("merged");
        let shard = root.join("shards").join("a");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&shard).unwrap();
        assert_eq!(link(&out, &shard), "../shards/a");
        assert_eq!(link(&out, &out), ".");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
