//! The inference fast path computes what the plain ops compute: BatchNorm folded into its
//! convolution and Winograd's transformed filters (both kept across calls, replaced when the
//! parameters change), against burn's
//! convolution then BatchNorm, to 1e-4 relative.

use burn::module::{Param, RunningState};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::Distribution;
use graft_models::default_device;
use graft_models::layers::ConvBnSpec;

fn assert_close(a: Tensor<4>, b: Tensor<4>) {
    assert_eq!(a.dims(), b.dims());
    let a = a.into_data().try_to_vec::<f32>().expect("f32");
    let b = b.into_data().try_to_vec::<f32>().expect("f32");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst / scale < 1e-4,
        "max abs difference {worst} (scale {scale})"
    );
}

#[test]
fn batchnorm_folded_into_the_convolution_matches_conv_then_batchnorm() {
    let device = default_device();
    let specs = [
        ConvBnSpec::torch([8, 16], 3, 2),
        // 3x3, stride 1, 16 channels in: Winograd, its transformed filters kept by the layer.
        ConvBnSpec::torch([16, 24], 3, 1),
        // Depthwise with TF "same" padding, as in EfficientNet-Lite.
        ConvBnSpec {
            groups: 16,
            padding: PaddingConfig2d::Same,
            bn_eps: 1e-3,
            ..ConvBnSpec::torch([16, 16], 5, 1)
        },
    ];
    for spec in specs {
        let mut cb = spec.init(&device);
        let x = Tensor::<4>::random(
            [2, spec.channels[0], 17, 15],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // The fold of the initial statistics is kept by the layer (and shared by its clone)...
        assert_close(
            cb.forward(x.clone()),
            cb.bn.forward(cb.conv.forward(x.clone())),
        );
        // (the second call runs with what the first one kept)
        assert_close(
            cb.forward(x.clone()),
            cb.bn.forward(cb.conv.forward(x.clone())),
        );
        let before = cb.clone();
        let c = spec.channels[1];
        let rand =
            |lo: f64, hi: f64| Tensor::<1>::random([c], Distribution::Uniform(lo, hi), &device);
        cb.bn.gamma = Param::from_tensor(rand(0.5, 1.5));
        cb.bn.beta = Param::from_tensor(rand(-0.5, 0.5));
        cb.bn.running_mean = RunningState::new(rand(-1.0, 1.0));
        cb.bn.running_var = RunningState::new(rand(0.1, 2.0));
        // ...and replaced once the parameters are other tensors; the clone keeps its own.
        assert_close(
            cb.forward(x.clone()),
            cb.bn.forward(cb.conv.forward(x.clone())),
        );
        let want = before.bn.forward(before.conv.forward(x.clone()));
        assert_close(before.forward(x), want);
    }
}

/// A VGG convolution keeps its transformed filters across inference calls and derives them
/// again once its weights are other tensors.
#[test]
fn vgg_convolution_with_kept_filters_matches_conv_then_relu() {
    let device = default_device();
    let mut vgg = graft_models::vgg::VggConfig {
        blocks: vec![vec![16, 16]],
        batch_norm: false,
        hidden: 8,
        num_classes: 3,
        dropout: 0.0,
    }
    .init(&device);
    let x = Tensor::<4>::random([2, 3, 20, 18], Distribution::Normal(0.0, 1.0), &device);
    let want = |v: &graft_models::vgg::Vgg| {
        let convs = &v.blocks[0].convs;
        let y = convs.iter().fold(x.clone(), |y, c| {
            burn::tensor::activation::relu(c.conv.forward(y))
        });
        v.blocks[0].pool.forward(y)
    };
    // The second 3x3 layer (16 channels in, stride 1) runs by Winograd: kept on the first call,
    // reused on the second.
    for _ in 0..2 {
        assert_close(vgg.forward_group(0, x.clone()), want(&vgg));
    }
    let conv = &mut vgg.blocks[0].convs[1].conv;
    conv.weight = Param::from_tensor(Tensor::random(
        conv.weight.dims(),
        Distribution::Normal(0.0, 0.1),
        &device,
    ));
    assert_close(vgg.forward_group(0, x.clone()), want(&vgg));
}

/// `layers::conv2d` (graft-kernels' backward pass) pads exactly like `Conv2d::forward` for every
/// padding the architectures use, and its gradients agree with burn's.
#[test]
fn graft_conv2d_matches_burns_conv2d_module_forward_and_gradients() {
    let device = Device::flex().autodiff();
    let specs = [
        ConvBnSpec::torch([4, 6], 3, 2),
        ConvBnSpec {
            padding: PaddingConfig2d::Same,
            groups: 6,
            ..ConvBnSpec::torch([6, 6], 5, 2)
        },
        ConvBnSpec {
            padding: PaddingConfig2d::Same,
            ..ConvBnSpec::torch([4, 6], 3, 1)
        },
        ConvBnSpec {
            padding: PaddingConfig2d::Valid,
            ..ConvBnSpec::torch([4, 6], 3, 1)
        },
    ];
    for spec in specs {
        let conv = spec.init(&device).conv;
        let x = Tensor::<4>::random(
            [2, spec.channels[0], 17, 14],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let ours = graft_models::layers::conv2d(&conv, x.clone());
        let theirs = conv.forward(x.clone());
        let r = Tensor::<4>::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (ours.clone() * r.clone()).sum().backward();
        let g_theirs = (theirs.clone() * r).sum().backward();
        assert_close(ours.inner(), theirs.inner());
        let grad = |g| x.grad(g).expect("x gradient");
        assert_close(grad(&g_ours), grad(&g_theirs));
        let wgrad = |g| conv.weight.val().grad(g).expect("weight gradient");
        assert_close(wgrad(&g_ours), wgrad(&g_theirs));
    }
}

/// `layers::batch_norm` (graft-kernels' fused training kernel) gives burn's `BatchNorm::forward`
/// output on the training device and leaves the same running statistics behind, step after step.
#[test]
fn graft_batch_norm_trains_like_burns_batchnorm_module() {
    let device = Device::flex().autodiff();
    let ours = ConvBnSpec::torch([4, 6], 3, 1).init(&device).bn;
    let theirs = ours.clone();
    for step in 0..3 {
        let x = Tensor::<4>::random(
            [3, 6, 5, 4],
            Distribution::Normal(step as f64, 2.0),
            &device,
        );
        assert_close(
            graft_models::layers::batch_norm(&ours, x.clone()).inner(),
            theirs.forward(x).inner(),
        );
        let stats = |bn: &burn::nn::BatchNorm| {
            let m = bn.running_mean.value().reshape([1, 1, 1, 6]);
            let v = bn.running_var.value().reshape([1, 1, 1, 6]);
            Tensor::cat(vec![m, v], 3).inner()
        };
        assert_close(stats(&ours), stats(&theirs));
    }
}

/// `layers::max_pool2d` (graft's inference max pool) gives `MaxPool2d::forward`'s output for
/// ResNet's padded 3x3/2 pool and VGG's 2x2/2, and the autodiff device keeps burn's.
#[test]
fn graft_max_pool_matches_burns_maxpool_module() {
    use burn::nn::pool::MaxPool2dConfig;
    let pools = [
        MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(),
        MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
    ];
    for device in [default_device(), Device::flex().autodiff()] {
        for pool in &pools {
            let x = Tensor::<4>::random([2, 3, 13, 11], Distribution::Normal(0.0, 1.0), &device);
            let ours = graft_models::layers::max_pool2d(pool, x.clone());
            assert_close(ours.inner(), pool.forward(x).inner());
        }
    }
}

/// `ConvBn::forward_relu` (ReLU fused into the inference kernel) is `relu(ConvBn::forward)` on
/// both devices.
#[test]
fn conv_bn_forward_relu_matches_relu_of_forward() {
    for device in [default_device(), Device::flex().autodiff()] {
        for spec in [
            ConvBnSpec::torch([3, 8], 7, 2),
            ConvBnSpec::torch([8, 8], 1, 1),
        ] {
            let cb = spec.init(&device);
            let x = Tensor::<4>::random(
                [2, spec.channels[0], 15, 13],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let want = burn::tensor::activation::relu(cb.forward(x.clone()));
            assert_close(cb.forward_relu(x).inner(), want.inner());
        }
    }
}

/// ResNet's 3x3 stride-1 layers run by Winograd over blocks of channels when a call has enough
/// tiles, by the direct kernel otherwise: a batch of 8 (its first group's 8x8 maps in calls of
/// 4 images or more, at least 16 tiles: Winograd) and each image alone (4 tiles: direct)
/// agree to 1e-4, residual joins and the transformed filters the layers keep included.
#[test]
fn resnet_layers_by_winograd_match_the_direct_kernel() {
    use graft_models::Arch;
    use graft_models::resnet::{BlockKind, ResNetConfig};
    let device = default_device();
    let net = Arch::ResNet(ResNetConfig {
        block: BlockKind::Basic,
        layers: [2, 1, 1, 1],
        stem: 16,
        widths: [16, 32, 48, 64],
        num_classes: 5,
    })
    .init(&device);
    let groups = net.group_names().len();
    let x = Tensor::<4>::random([8, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    for _ in 0..2 {
        let all = net.forward_groups(0..groups, x.clone());
        for n in 0..8 {
            let one = net.forward_groups(0..groups, x.clone().narrow(0, n, 1));
            assert_close(one, all.clone().narrow(0, n, 1));
        }
    }
}

/// The classifier's input pooled from the blocks an inference pass keeps equals the pool of the
/// last group's output in planes, to the bit: EfficientNet-Lite0 and a ResNet whose last group
/// fills only part of a block of 16 channels, over a batch that the pass splits between the
/// workers.
#[test]
fn embeddings_pooled_from_blocks_equal_the_pool_of_planes() {
    use graft_models::efficientnet_lite::EfficientNetLiteConfig;
    use graft_models::resnet::{BlockKind, ResNetConfig};
    let device = default_device();
    let resnet = ResNetConfig {
        block: BlockKind::Basic,
        layers: [1, 1, 1, 1],
        stem: 8,
        widths: [8, 16, 32, 40],
        num_classes: 5,
    };
    let archs = [
        graft_models::Arch::EfficientNetLite(EfficientNetLiteConfig::lite0()),
        graft_models::Arch::ResNet(resnet),
    ];
    for arch in archs {
        let net = arch.init(&device);
        let n = net.group_names().len();
        let x = Tensor::<4>::random([3, 3, 64, 64], Distribution::Default, &device);
        let pooled = net.embed_groups(0..n, x.clone());
        let planes = net.embed(net.forward_groups(0..n, x));
        assert_eq!(pooled.dims(), planes.dims());
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(values(pooled), values(planes));
    }
}
