import pytest
import torch
import torchvision

from loss.adversarial import discriminator_hinge_loss, feature_matching_loss
from loss.objectives import discriminator_side_loss
from loss.perceptual import (
    ContentLoss,
    PerceptualWeightsError,
    caffe_vggface_preprocess,
    imagenet_preprocess,
    load_vgg19_features,
)
from loss.vggface import vgg_features
from network import Discriminator, Embedder, Generator

BATCH_VIDEOS = [1, 3]
NUM_VIDEOS = 5


@pytest.fixture
def setup(tiny_config):
    model = tiny_config.model
    networks = {
        "embedder": Embedder(model),
        "generator": Generator(model),
        "discriminator": Discriminator(model),
    }
    with pytest.warns(UserWarning, match="RANDOM"):
        content = ContentLoss(tiny_config.loss, model.output_activation)
    size = model.image_size
    frames = torch.rand(2, 2, 3, size, size) * 2 - 1
    landmarks = torch.rand(2, 2, 3, size, size) * 2 - 1
    target, target_landmarks = torch.rand(2, 3, size, size) * 2 - 1, torch.rand(2, 3, size, size)
    return tiny_config, networks, content, (frames, landmarks, target, target_landmarks)


def w_table(dim: int) -> torch.Tensor:
    """A stand-in for W: the batch's rows are gathered from it, so gradients land in rows."""
    return (torch.randn(NUM_VIDEOS, dim) * 0.02).requires_grad_()


def grads(module):
    return {name: p.grad for name, p in module.named_parameters()}


def test_hinge_loss_reaches_d_trunk_w0_b_and_batch_columns_only(setup):
    """The discriminator side's loss on its own (the meta step's routing: test_meta_step.py)."""
    _, nets, _, (frames, landmarks, target, target_landmarks) = setup
    table = w_table(nets["discriminator"].w_0.shape[0])
    fake = nets["generator"](target_landmarks, nets["embedder"](frames, landmarks))
    rows = table[torch.tensor(BATCH_VIDEOS)]
    loss = discriminator_side_loss(nets["discriminator"], fake, target, target_landmarks, rows)
    loss["total"].backward()
    for name in ("embedder", "generator"):
        leaked = [n for n, g in grads(nets[name]).items() if g is not None]
        assert leaked == [], f"hinge gradient reached {name}: {leaked}"
    missing = [n for n, g in grads(nets["discriminator"]).items() if g is None]
    assert missing == []
    assert nets["discriminator"].w_0.grad.abs().sum() > 0
    assert table.grad.abs().sum(dim=1).nonzero().flatten().tolist() == BATCH_VIDEOS


def test_hinge_loss_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: max(0, 1-2)=0, max(0, 1-0.5)=0.5 -> 0.25; fake: 0, 1 -> 0.5
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(0.75)


def test_feature_matching_is_zero_for_equal_activations():
    acts = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    assert feature_matching_loss(acts, acts).item() == 0
    shifted = [a + 1 for a in acts]
    assert feature_matching_loss(shifted, acts).item() == pytest.approx(2.0)


def test_content_loss_is_zero_for_identical_images_and_grows_with_perturbation(tiny_config):
    with pytest.warns(UserWarning):
        content = ContentLoss(tiny_config.loss, "tanh")
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    same = content(real, real.clone())
    assert same["vgg19"].item() == 0 and same["vggface"].item() == 0
    noise = torch.randn_like(real)
    small = content((real + 0.05 * noise).clamp(-1, 1), real)
    large = content((real + 0.5 * noise).clamp(-1, 1), real)
    for name in ("vgg19", "vggface"):
        assert 0 < small[name].item() < large[name].item()


def test_perceptual_networks_are_frozen_and_stay_in_eval(tiny_config):
    with pytest.warns(UserWarning):
        content = ContentLoss(tiny_config.loss, "tanh")
    content.train()
    assert not content.vgg19.training and not content.vggface.training
    assert not any(p.requires_grad for p in content.parameters())


def test_each_vgg_sees_its_own_input_convention():
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0  # pure red, RGB in [0, 1]
    caffe = caffe_vggface_preprocess()(red).flatten().tolist()
    # BGR order, 0..255, mean pixel (B, G, R) subtracted: red lands in the last channel.
    assert caffe == pytest.approx([-93.5940, -104.7624, 255 - 129.1863], abs=1e-4)
    imagenet = imagenet_preprocess()(red).flatten().tolist()
    assert imagenet == pytest.approx(
        [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], abs=1e-5
    )


def test_each_network_of_the_content_loss_gets_its_own_preprocessing(tiny_config):
    """Swapping the two preprocessing functions fails here: pure red reaches each network's
    first layer in that network's own convention."""
    with pytest.warns(UserWarning):
        content = ContentLoss(tiny_config.loss, "tanh")
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen[name] = args[0][0, :, 0, 0]

        return hook

    for name in ("vgg19", "vggface"):
        getattr(content, name).features[0].register_forward_hook(record(name))
    red = -torch.ones(1, 3, 32, 32)
    red[:, 0] = 1.0  # tanh range: red = (1, -1, -1)
    content(red, red)
    assert seen["vgg19"].tolist() == pytest.approx(
        [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], abs=1e-5
    )
    assert seen["vggface"].tolist() == pytest.approx([-93.594, -104.7624, 255 - 129.1863], abs=1e-3)


@pytest.mark.parametrize(
    "name, channels", [("vgg19", [64, 128, 256, 512, 512]), ("vggface", [64, 128, 256, 512, 512])]
)
def test_content_layers_are_the_relu_after_conv1_1_to_conv5_1(tiny_config, name, channels):
    """Shifting a layer index by one fails here: each activation taken must be the ReLU right
    after the first convolution of a block (the first after the input or a pooling)."""
    with pytest.warns(UserWarning):
        content = ContentLoss(tiny_config.loss, "tanh")
    network = getattr(content, name)
    modules = list(network.features)
    first_convs = [
        i
        for i, m in enumerate(modules)
        if isinstance(m, torch.nn.Conv2d)
        and (i == 0 or isinstance(modules[i - 1], torch.nn.MaxPool2d))
    ]
    assert sorted(network.layers) == [i + 1 for i in first_convs]
    assert all(isinstance(modules[i], torch.nn.ReLU) for i in network.layers)
    activations = network(torch.rand(1, 3, 32, 32))
    assert [a.shape[1] for a in activations] == channels
    assert [a.shape[-1] for a in activations] == [32, 16, 8, 4, 2]
    assert all((a >= 0).all() for a in activations)


def test_missing_vgg19_weights_name_the_option(tmp_path, monkeypatch):
    with pytest.raises(PerceptualWeightsError, match="loss.vgg19_weights"):
        load_vgg19_features(tmp_path / "missing.pth")

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(PerceptualWeightsError, match="loss.vgg19_weights"):
        load_vgg19_features(None)


def test_vgg19_loads_a_torchvision_state_dict_file(tmp_path):
    trunk = vgg_features(19)  # torchvision's file also holds the classifier: ignored
    path = tmp_path / "vgg19.pth"
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    torch.save({**state, "classifier.0.weight": torch.zeros(2, 2)}, path)
    features = load_vgg19_features(path)
    assert torch.equal(features[34].weight, trunk[34].weight)
    torch.save({"nothing": torch.zeros(1)}, path)
    with pytest.raises(PerceptualWeightsError, match="not a torchvision VGG19"):
        load_vgg19_features(path)
