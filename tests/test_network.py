import pytest
import torch

from network import Discriminator, Embedder, Generator
from network.blocks import AdaptiveInstanceNorm, ResidualBlock, SelfAttention
from params.config import PARAMS_DIR, load_config


def random_episode(batch: int, shots: int, size: int):
    frames = torch.rand(batch, shots, 3, size, size) * 2 - 1
    landmarks = torch.rand(batch, shots, 3, size, size) * 2 - 1
    return frames, landmarks


def test_shapes_at_tiny_config(tiny_config):
    model = tiny_config.model
    size, dim = model.image_size, model.embedding_dim
    embedder, generator = Embedder(model).eval(), Generator(model)
    discriminator = Discriminator(model, num_videos=5)
    frames, landmarks = random_episode(2, 3, size)
    per_frame = embedder.embed_frames(frames, landmarks)
    e_hat = embedder(frames, landmarks)
    assert per_frame.shape == (2, 3, dim) and e_hat.shape == (2, dim)
    assert torch.allclose(e_hat, per_frame.mean(1), atol=1e-6)
    assert (per_frame >= 0).all()  # ReLU after sum pooling
    fake = generator(landmarks[:, 0], e_hat)
    assert fake.shape == (2, 3, size, size)
    assert fake.min() >= -1 and fake.max() <= 1
    scores, activations = discriminator(fake, landmarks[:, 0], torch.tensor([0, 4]))
    assert scores.shape == (2,)
    assert activations[-1].shape == (2, dim, 4, 4)


def test_sigmoid_output_matches_zero_one_range(tiny_config):
    tiny_config.model.output_activation = "sigmoid"
    generator = Generator(tiny_config.model)
    out = generator(torch.rand(2, 3, 64, 64), torch.randn(2, tiny_config.model.embedding_dim))
    assert out.min() >= 0 and out.max() <= 1
    tiny_config.model.output_activation = "relu"
    with pytest.raises(ValueError, match="output_activation"):
        Generator(tiny_config.model)


def test_adain_parameter_count_equals_rows_of_p(tiny_config):
    generator = Generator(tiny_config.model)
    adain = [m for m in generator.modules() if isinstance(m, AdaptiveInstanceNorm)]
    assert generator.adain_param_count == sum(2 * layer.num_features for layer in adain)
    assert generator.projection.weight.shape == (
        generator.adain_param_count,
        tiny_config.model.embedding_dim,
    )
    # By hand for tiny.yaml: bottleneck block 16->16 ch: 2*(16+16); up 16->8: 2*(16+8);
    # up 8->4: 2*(8+4); final norm on 4 channels: 2*4.
    assert generator.adain_param_count == 64 + 48 + 24 + 8
    # Downsampling blocks use instance norm with their own affine parameters, not AdaIN.
    for block in generator.down:
        if isinstance(block, ResidualBlock):
            assert not isinstance(block.norm2, AdaptiveInstanceNorm)


def test_each_adain_layer_gets_its_own_slice_of_psi(tiny_config):
    """Changing one slice of psi changes the output; both norms of a block differ."""
    generator = Generator(tiny_config.model).eval()
    landmarks = torch.rand(1, 3, 64, 64)
    psi = torch.zeros(1, generator.adain_param_count)
    generator.use_trainable_psi(psi)
    base = generator(landmarks)
    offset = 0
    for layer in generator.adain_layers:
        generator.psi.data.zero_()
        generator.psi.data[0, offset : offset + layer.param_count] = 0.5
        assert not torch.allclose(generator(landmarks), base), "a psi slice had no effect"
        offset += layer.param_count
    assert offset == generator.adain_param_count


def test_trainable_psi_mode_matches_projection_and_trains_only_psi(tiny_config):
    generator = Generator(tiny_config.model)
    embedding = torch.randn(1, tiny_config.model.embedding_dim)
    landmarks = torch.rand(1, 3, 64, 64)
    generator.eval()  # freeze spectral-norm power iterations for an exact comparison
    with torch.no_grad():
        expected = generator(landmarks, embedding)
        psi = generator.project(embedding)
    generator.use_trainable_psi(psi)
    out = generator(landmarks)
    assert torch.allclose(out, expected, atol=1e-5)
    out.mean().backward()
    assert generator.psi.grad is not None and generator.psi.grad.abs().sum() > 0
    projection_params = list(generator.projection.parameters())
    assert all(p.grad is None for p in projection_params)
    with pytest.raises(ValueError, match="shape"):
        generator.use_trainable_psi(torch.zeros(1, 3))


def test_self_attention_starts_as_identity():
    attention = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(attention(x), x)
    with torch.no_grad():
        attention.gamma.fill_(1.0)
    assert not torch.allclose(attention(x), x)


def test_spectral_norm_on_every_conv_and_linear(tiny_config):
    model = tiny_config.model
    for network in (Embedder(model), Generator(model), Discriminator(model, 2)):
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                assert hasattr(module, "parametrizations"), module


def test_discriminator_person_projection(tiny_config):
    discriminator = Discriminator(tiny_config.model, num_videos=3).eval()
    image, landmarks = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    e_new = torch.rand(tiny_config.model.embedding_dim)
    v, _ = discriminator.features(image, landmarks)
    discriminator.use_person_projection(e_new)
    score, _ = discriminator(image, landmarks)
    expected = (v * (discriminator.w_0 + e_new)).sum() + discriminator.b
    assert torch.allclose(score, expected.reshape(1), atol=1e-5)


def test_paper_config_forward_pass():
    model = load_config(PARAMS_DIR / "default.yaml").model
    embedder, generator = Embedder(model), Generator(model)
    discriminator = Discriminator(model, num_videos=2)
    frames, landmarks = random_episode(1, 1, 256)
    with torch.no_grad():
        e_hat = embedder(frames, landmarks)
        fake = generator(landmarks[:, 0], e_hat)
        scores, _ = discriminator(fake, landmarks[:, 0], torch.tensor([1]))
    assert e_hat.shape == (1, 512)
    assert fake.shape == (1, 3, 256, 256)
    assert scores.shape == (1,) and torch.isfinite(scores).all()
    assert generator.projection.weight.shape[0] == generator.adain_param_count


def test_a_tiny_embedder_and_generator_overfit_two_frames(tiny_config):
    """E, G and P learn: the L1 error on two fixed smooth frames falls by more than half."""
    torch.manual_seed(0)
    model = tiny_config.model
    embedder, generator = Embedder(model), Generator(model)
    coarse = torch.rand(2, 3, 8, 8) * 2 - 1
    frames = torch.nn.functional.interpolate(coarse, size=64, mode="bilinear").unsqueeze(1)
    landmarks = torch.rand(2, 1, 3, 64, 64) * 2 - 1
    optimizer = torch.optim.Adam([*embedder.parameters(), *generator.parameters()], lr=2e-3)
    errors = []
    for _ in range(100):
        fake = generator(landmarks[:, 0], embedder(frames, landmarks))
        error = (fake - frames[:, 0]).abs().mean()
        optimizer.zero_grad()
        error.backward()
        optimizer.step()
        errors.append(error.item())
    assert errors[-1] < 0.5 * errors[0]


@pytest.mark.parametrize("size", [32, 128])
def test_other_image_sizes_from_the_config(tiny_config, size):
    model = tiny_config.model
    model.image_size = size
    model.generator_bottleneck_resolution = 8
    embedder, generator = Embedder(model), Generator(model)
    frames, landmarks = random_episode(1, 2, size)
    fake = generator(landmarks[:, 0], embedder(frames, landmarks))
    assert fake.shape == (1, 3, size, size)


def test_sizes_that_are_not_powers_of_two_apart_are_refused(tiny_config):
    tiny_config.model.image_size = 224  # VoxCeleb2's frame size: crops are resized instead
    with pytest.raises(ValueError, match="power of two"):
        Embedder(tiny_config.model)
