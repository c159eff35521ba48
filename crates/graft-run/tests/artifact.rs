//! The trained-model artifact is the reference model's own state dict: a fixture checkpoint
//! (made by PyTorch from torchvision's and efficientnet_pytorch's modules) loaded into graft and
//! written back as `model.safetensors` gives the same names, shapes and values, so PyTorch's
//! `load_state_dict(strict=True)` takes it; loaded back from that file alone, the model gives
//! the fixture's logits.

#[path = "../../../tests/fixtures/tiny.rs"]
mod tiny;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use graft_models::{Arch, Network, default_device};
use graft_run::artifact::{load_parts, safetensors_bytes, state_dict};
use graft_spec::HeadKind;
use graft_transfer::head::Head;
use graft_weights::LoadPolicy;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

/// name -> (dtype, shape, bytes) of a safetensors file.
fn tensors(bytes: &[u8]) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            )
        })
        .collect()
}

/// The fixture's classifier as graft's head: linear, or VGG's three layers.
fn head_kind(arch: &Arch) -> HeadKind {
    match arch {
        Arch::Vgg(c) => HeadKind::Mlp { hidden: c.hidden },
        _ => HeadKind::Linear,
    }
}

fn logits(net: &Network, head: &Head, input: &[f32], shape: &[usize]) -> Vec<f32> {
    let device = default_device();
    let x = Tensor::<4>::from_data(
        TensorData::new(input.to_vec(), [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let n = net.group_names().len();
    head.forward(net.embed(net.forward_groups(0..n, x)))
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

#[test]
fn every_architecture_round_trips_through_its_original_names() {
    let device = default_device();
    let tmp = tempfile::tempdir().expect("tmp");
    for (name, arch) in tiny::all() {
        let path = fixture(&format!("models/{name}.safetensors"));
        let classes = arch.num_classes();
        // The fixture's classifier becomes graft's new head, read the way a run's model is.
        let (net, _) = arch
            .load(&path, &LoadPolicy::strict(), name, &device)
            .expect("fixture loads");
        let (_, head) = load_parts(
            &arch,
            &path,
            head_kind(&arch),
            arch.classifier_name(),
            classes,
            &device,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes =
            safetensors_bytes(&state_dict(&arch, &net, &head).expect("state dict")).expect("bytes");
        let ours = tensors(&bytes);
        let theirs = tensors(&std::fs::read(&path).expect("fixture"));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}: the reference model's key set"
        );
        for (k, (dtype, shape, data)) in &theirs {
            let (d, s, b) = &ours[k];
            assert_eq!((d, s), (dtype, shape), "{name}: {k}");
            if !k.ends_with("num_batches_tracked") {
                assert_eq!(b, data, "{name}: {k} values");
            }
        }
        // From the artifact alone: the fixture's logits.
        let file = tmp.path().join(format!("{name}.model.safetensors"));
        std::fs::write(&file, &bytes).expect("write");
        let (net2, head2) = load_parts(
            &arch,
            &file,
            head_kind(&arch),
            arch.classifier_name(),
            classes,
            &device,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let io = fixture(&format!("models/{name}.io.safetensors"));
        let io = safetensors::SafeTensors::deserialize(&std::fs::read(&io).expect("io"))
            .expect("io")
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                let data: Vec<f32> = v
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (n, (data, v.shape().to_vec()))
            })
            .collect::<BTreeMap<_, _>>();
        let (input, shape) = &io["input"];
        let got = logits(&net2, &head2, input, shape);
        let want = &io["logits"].0;
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-4 * scale,
            "{name}: logits differ by {err} (scale {scale})"
        );
        // The same tensors always give the same bytes.
        let again = safetensors_bytes(&state_dict(&arch, &net2, &head2).expect("state dict"))
            .expect("bytes");
        assert_eq!(again, bytes, "{name}: byte-identical when written again");
    }
}
