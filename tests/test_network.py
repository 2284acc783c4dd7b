import copy

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
    discriminator = Discriminator(model)
    frames, landmarks = random_episode(2, 3, size)
    per_frame = embedder.embed_frames(frames, landmarks)
    e_hat = embedder(frames, landmarks)
    assert per_frame.shape == (2, 3, dim) and e_hat.shape == (2, dim)
    assert torch.allclose(e_hat, per_frame.mean(1), atol=1e-6)
    assert (per_frame >= 0).all()  # ReLU after sum pooling
    fake = generator(landmarks[:, 0], e_hat)
    assert fake.shape == (2, 3, size, size)
    assert fake.min() >= -1 and fake.max() <= 1
    scores, activations = discriminator(fake, landmarks[:, 0], torch.randn(2, dim))
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
    assert generator.adain_sizes == [32, 32, 32, 16, 16, 8, 8]
    # Downsampling blocks use instance norm with their own affine parameters, not AdaIN.
    for block in generator.down:
        if isinstance(block, ResidualBlock):
            assert not isinstance(block.norm2, AdaptiveInstanceNorm)


def test_each_adain_layer_gets_its_own_slice_of_psi(tiny_config):
    """Changing one slice of psi changes the output; both norms of a block differ."""
    generator = Generator(tiny_config.model).eval()
    landmarks = torch.rand(1, 3, 64, 64)
    psi = torch.zeros(1, generator.adain_param_count)
    base = generator.synthesize(landmarks, psi)
    offset = 0
    for size in generator.adain_sizes:
        psi.zero_()
        psi[0, offset : offset + size] = 0.5
        assert not torch.allclose(generator.synthesize(landmarks, psi), base), "no effect"
        offset += size
    assert offset == generator.adain_param_count


def test_adain_scale_and_bias_halves_act_differently():
    """The first half of a slice scales the normalised map, the second shifts it."""
    layer = AdaptiveInstanceNorm(4)
    x = torch.randn(2, 4, 8, 8) * 3 + 5
    scale_only = torch.cat([torch.full((2, 4), 1.0), torch.zeros(2, 4)], dim=1)
    out = layer(x, scale_only)
    assert out.mean(dim=(2, 3)).abs().max() < 1e-4  # no shift: still zero mean
    assert out.std(dim=(2, 3), correction=0).sub(2.0).abs().max() < 1e-3  # scale 1 + 1
    bias_only = torch.cat([torch.zeros(2, 4), torch.full((2, 4), 0.7)], dim=1)
    out = layer(x, bias_only)
    assert out.mean(dim=(2, 3)).sub(0.7).abs().max() < 1e-4
    assert out.std(dim=(2, 3), correction=0).sub(1.0).abs().max() < 1e-3


def test_self_attention_sits_at_the_configured_resolutions():
    model = load_config(PARAMS_DIR / "default.yaml").model
    seen: dict[str, list[int]] = {}
    for name, network in (("embedder", Embedder(model)), ("generator", Generator(model))):
        for module in network.modules():
            if isinstance(module, SelfAttention):
                module.register_forward_hook(
                    lambda m, args, out, name=name: seen.setdefault(name, []).append(
                        args[0].shape[-1]
                    )
                )
        with torch.no_grad():
            frames, landmarks = random_episode(1, 1, 256)
            if name == "embedder":
                network(frames, landmarks)
            else:
                network(landmarks[:, 0], torch.randn(1, 512))
    assert seen == {"embedder": [32], "generator": [32, 64]}  # SPEC section 2
    assert sum(isinstance(m, SelfAttention) for m in Discriminator(model).modules()) == 1


def test_a_copied_generator_checkpointed_or_compiled_gives_the_same_image(tiny_config):
    """No state between calls: copies, activation checkpointing and compile all work."""
    generator = Generator(tiny_config.model).eval()
    landmarks, embedding = torch.rand(2, 3, 64, 64), torch.randn(2, 32)
    with torch.no_grad():
        expected = generator(landmarks, embedding)
        assert torch.allclose(copy.deepcopy(generator)(landmarks, embedding), expected)
    embedding.requires_grad_(True)
    checkpointed = torch.utils.checkpoint.checkpoint(
        generator, landmarks, embedding, use_reentrant=False
    )
    checkpointed.mean().backward()  # re-runs the forward pass during backward
    assert torch.allclose(checkpointed, expected, atol=1e-6)
    assert embedding.grad is not None and embedding.grad.abs().sum() > 0
    compiled = torch.compile(generator, backend="eager", fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(landmarks, embedding), expected, atol=1e-6)


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
    for network in (Embedder(model), Generator(model), Discriminator(model)):
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                assert hasattr(module, "parametrizations"), module


def test_discriminator_person_projection(tiny_config):
    discriminator = Discriminator(tiny_config.model).eval()
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
    discriminator = Discriminator(model)
    frames, landmarks = random_episode(1, 1, 256)
    with torch.no_grad():
        e_hat = embedder(frames, landmarks)
        fake = generator(landmarks[:, 0], e_hat)
        scores, _ = discriminator(fake, landmarks[:, 0], torch.randn(1, 512))
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


def test_each_item_of_a_batch_is_drawn_with_its_own_psi(tiny_config):
    """G(y, e)[i] = G(y[i:i+1], e[i:i+1]): no item borrows another video's AdaIN values."""
    generator = Generator(tiny_config.model).eval()
    landmarks = torch.rand(3, 3, 64, 64) * 2 - 1
    embeddings = torch.rand(3, tiny_config.model.embedding_dim) * 4
    with torch.no_grad():
        together = generator(landmarks, embeddings)
        alone = torch.cat(
            [generator(landmarks[i : i + 1], embeddings[i : i + 1]) for i in range(3)]
        )
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(together[0], together[1], atol=1e-3)


def test_the_embedding_is_the_relu_of_a_sum_over_space(tiny_config):
    """E sums its last feature map over space (SPEC section 2), then ReLU; K frames averaged."""
    embedder = Embedder(tiny_config.model).eval()
    frames, landmarks = random_episode(2, 3, 64)
    with torch.no_grad():
        maps, _ = embedder.trunk(frames.flatten(0, 1), landmarks.flatten(0, 1))
        per_frame = torch.relu(maps.sum(dim=(2, 3))).view(2, 3, -1)
        assert maps.shape[-1] > 1  # a mean would differ from the sum
        assert torch.allclose(embedder(frames, landmarks), per_frame.mean(dim=1), atol=1e-4)
