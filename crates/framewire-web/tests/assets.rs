//! The page's assets and its documentation: the script stays small (no
//! framework), every asset is listed in docs/web.md, and every screenshot
//! docs/web.md shows is in the repository and taken by a browser test.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (name.ends_with(ext) && !name.ends_with(".test.mjs")).then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    v.sort();
    v
}

/// Under 200 KB of script in all (docs/web.md, "Quality").
const MAX_SCRIPT_BYTES: u64 = 200 * 1024;

#[test]
fn the_page_script_stays_under_200_kb_and_every_asset_is_listed() {
    let assets = root().join("crates/framewire-web/assets");
    let js = files(&assets, ".js");
    let total: u64 = js.iter().map(|(_, n)| n).sum();
    println!("page script: {total} bytes in {} files", js.len());
    assert!(total < MAX_SCRIPT_BYTES, "{total} bytes of script: {js:?}");
    let doc = std::fs::read_to_string(root().join("docs/web.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| GET | `/assets/{file}`"))
        .expect("the assets row");
    for (name, _) in js.iter().chain(files(&assets, ".css").iter()) {
        assert!(
            row.contains(&format!("`{name}`")),
            "docs/web.md's assets row lacks {name}"
        );
    }
}

#[test]
fn every_screenshot_in_the_docs_is_there_and_taken_by_a_browser_test() {
    let doc = std::fs::read_to_string(root().join("docs/web.md")).unwrap();
    let mut tests = String::new();
    for e in std::fs::read_dir(root().join("web-tests")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "mjs") {
            tests += &std::fs::read_to_string(path).unwrap();
        }
    }
    let mut shown = 0;
    for part in doc.split("](web/").skip(1) {
        let name = part.split(')').next().unwrap();
        assert!(name.ends_with(".png"), "{name}");
        assert!(
            root().join("docs/web").join(name).is_file(),
            "docs/web/{name} is missing"
        );
        // Taken as `'name.png'`, or by a template such as `live-${stream}.png`.
        let literal = tests.contains(&format!("'{name}'"));
        let templated = name
            .split_once('-')
            .is_some_and(|(prefix, _)| tests.contains(&format!("`{prefix}-${{")));
        assert!(literal || templated, "no browser test takes {name}");
        shown += 1;
    }
    assert!(shown >= 12, "{shown} screenshots");
}
