"""course_lib.generation: the article's generator, the GAN parts, the Fréchet distance, the glimpse sensor, RAM."""

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from course_lib.data.digits import make_cluttered_digits
from course_lib.generation import (
    ArticleAttentionGAN,
    ClutterCNN,
    DigitClassifier,
    DigitFeatures,
    Discriminator,
    Generator,
    RecurrentAttentionModel,
    accuracy,
    class_coverage,
    frechet_distance,
    glimpse_sensor,
    hinge_d_loss,
    hinge_g_loss,
    location_to_pixel,
    ram_loss,
    train_cnn,
    train_digit_classifier,
    train_gan,
    train_ram,
    upscaled_digits,
)
from course_lib.hard import reinforce_loss


# ---- the article's AttentionGAN ---------------------------------------------------------------------
def test_article_crashes_as_described():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(256x16 and 128x1\)"):
        ArticleAttentionGAN()(torch.randn(2, 100))


def test_repaired_article_draws_4x4_and_is_blind_to_positions():
    torch.manual_seed(0)
    g = ArticleAttentionGAN(repaired=True).eval()
    z = torch.randn(3, 100)
    img, w = g(z, need_weights=True)
    assert img.shape == (3, 1, 4, 4) and w.shape == (3, 16) and torch.allclose(w.sum(1), torch.ones(3))
    with torch.no_grad():
        feats = g.deconv1(z[:, :, None, None])
        perm = torch.randperm(16)
        c1, _ = g.attend(feats)
        c2, _ = g.attend(feats.flatten(2)[:, :, perm].view_as(feats))
    assert torch.allclose(c1, c2, atol=1e-5)


def test_article_bad_input():
    with pytest.raises(ValueError, match=r"z must have shape \(B, 100\), got \(2, 7\)"):
        ArticleAttentionGAN(repaired=True)(torch.randn(2, 7))
    with pytest.raises(TypeError, match="repaired must be a bool"):
        ArticleAttentionGAN(repaired=1)


# ---- data and GAN parts ------------------------------------------------------------------------------
def test_upscaled_digits():
    x, y = upscaled_digits("test", size=16)
    assert x.shape == (360, 1, 16, 16) and y.shape == (360,) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="split"):
        upscaled_digits("dev")
    with pytest.raises(ValueError, match="size must be >= 8"):
        upscaled_digits("train", size=4)


@pytest.mark.parametrize("attention", [False, True])
def test_generator_and_discriminator_shapes(attention):
    torch.manual_seed(0)
    g, d = Generator(8, 8, attention=attention), Discriminator(8, attention=attention)
    img, w = g(torch.randn(3, 8), need_weights=True)
    assert img.shape == (3, 1, 16, 16) and img.abs().max() < 1
    assert (w is None) != attention
    if attention:
        assert w.shape == (3, 64, 64) and torch.allclose(w.sum(-1), torch.ones(3, 64), atol=1e-5)
        assert g.attention.gamma.item() == 0.0 and d.attention.gamma.item() == 0.0
    assert d(img).shape == (3,)


def test_gan_bad_input():
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\), got \(2, 5\)"):
        Generator(8, 4)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 16, 16\), got \(2, 1, 8, 8\)"):
        Discriminator(4)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"images must have shape \(N >= 2, 1, 16, 16\)"):
        train_gan(Generator(8, 4), Discriminator(4), torch.randn(5, 1, 8, 8), steps=1)
    with pytest.raises(TypeError, match="attention must be a bool"):
        Generator(attention="yes")


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.25 + 0.5)
    assert hinge_g_loss(fake).item() == pytest.approx(1.0)


def test_train_gan_repeats_and_records():
    x, _ = upscaled_digits("val")
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        g, d = Generator(8, 8, attention=True), Discriminator(8, attention=True)
        h, avg = train_gan(g, d, x, steps=6, batch_size=8, seed=3, snapshot_every=3, snapshot_n=4, ema=0.9,
                           progress=False)
        results.append((h, g.sample(4, seed=1)))
    (h1, s1), (h2, s2) = results
    assert h1.d_loss == h2.d_loss and torch.equal(s1, s2)
    assert sorted(h1.snapshots) == [0, 3, 6] and h1.snapshots[0].shape == (4, 1, 16, 16)
    assert len(h1.gammas) == 6 and isinstance(avg, Generator)


# ---- Fréchet distance and coverage -------------------------------------------------------------------
def test_frechet_distance_matches_torchmetrics_and_properties():
    torch.manual_seed(0)
    clf = DigitClassifier(8).eval()
    a, b = torch.rand(60, 1, 16, 16) * 2 - 1, torch.rand(50, 1, 16, 16)
    with torch.no_grad():
        fa, fb = clf.features(a), clf.features(b)
    metric = FrechetInceptionDistance(feature=DigitFeatures(clf))
    metric.update(a, real=True)
    metric.update(b, real=False)
    ours = frechet_distance(fa, fb).item()
    assert metric.compute().item() == pytest.approx(ours, rel=1e-4)
    assert frechet_distance(fa, fa).item() == pytest.approx(0.0, abs=1e-6)
    shifted = frechet_distance(fa, fa + 2.0).item()
    assert shifted == pytest.approx(4.0 * fa.shape[1], rel=1e-6)  # a pure shift: |mu difference|^2


def test_frechet_bad_input():
    with pytest.raises(ValueError, match=r"must share d, got \(5, 3\) and \(5, 4\)"):
        frechet_distance(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(torch.randn(1, 3), torch.randn(5, 3))
    with pytest.raises(TypeError, match="DigitClassifier"):
        DigitFeatures(torch.nn.Linear(2, 2))


def test_class_coverage_and_classifier_training():
    assert class_coverage(torch.tensor([0, 0, 3, 9])) == 3
    assert class_coverage(torch.tensor([0, 0, 3, 9]), min_count=2) == 1
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        class_coverage(torch.tensor([1]), min_count=0)
    x, y = upscaled_digits("val")
    clf, losses = train_digit_classifier(x, y, epochs=3, seed=0)
    assert losses[-1] < losses[0] and not clf.training
    with pytest.raises(ValueError, match="same length"):
        train_digit_classifier(x, y[:5])


# ---- glimpse sensor ----------------------------------------------------------------------------------
def test_glimpse_sensor_crops_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    crops = glimpse_sensor(x, torch.zeros(1, 2), patch_size=2, num_scales=2)
    assert crops.shape == (1, 2, 2, 2)
    assert torch.equal(crops[0, 0], torch.tensor([[5.0, 6.0], [9.0, 10.0]]))
    assert torch.equal(crops[0, 1], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    corner = glimpse_sensor(x, torch.tensor([[-1.0, -1.0]]), patch_size=2, num_scales=1)
    assert torch.equal(corner[0, 0], torch.tensor([[0.0, 0.0], [0.0, 0.0]]) + torch.tensor([[0.0, 0.0], [0.0, 0.0]]))
    far = glimpse_sensor(x, torch.tensor([[1.0, 1.0]]), patch_size=2, num_scales=1)
    assert torch.equal(far[0, 0], torch.tensor([[10.0, 11.0], [14.0, 15.0]]))  # centre clipped to the last pixel


def test_glimpse_x_is_the_column():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 1, 6] = 1.0  # row 1, column 6
    loc = torch.tensor([[(6 + 0.5) / 8 * 2 - 1, (1 + 0.5) / 8 * 2 - 1]])
    assert location_to_pixel(loc, 8).tolist() == [[6, 1]]
    assert glimpse_sensor(x, loc, patch_size=2, num_scales=1)[0, 0, 1, 1] == 1.0


def test_glimpse_bad_input():
    with pytest.raises(ValueError, match=r"loc must have shape \(B, 2\) = \(2, 2\).*got \(3, 2\)"):
        glimpse_sensor(torch.rand(2, 1, 8, 8), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"one channel.*\(2, 3, 8, 8\)"):
        glimpse_sensor(torch.rand(2, 3, 8, 8), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="square"):
        glimpse_sensor(torch.rand(2, 1, 8, 6), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="patch_size must be a positive int"):
        glimpse_sensor(torch.rand(2, 1, 8, 8), torch.zeros(2, 2), patch_size=0)


# ---- RAM -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def canvases():
    return make_cluttered_digits(16, seed=0, split="val")


def test_ram_forward_shapes_and_detached_locations(canvases):
    torch.manual_seed(0)
    ram = RecurrentAttentionModel(num_glimpses=4).train()
    out = ram(canvases.images, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (16, 10) and out.locations.shape == (16, 4, 2) and out.step_logits.shape == (16, 4, 10)
    assert (out.locations[:, 0] == 0).all() and not out.locations.requires_grad
    assert (out.log_probs[:, 0] == 0).all() and out.log_probs[:, 1:].requires_grad
    ram.eval()
    mean_run = ram(canvases.images)
    assert torch.allclose(mean_run.locations[:, 1:], mean_run.means[:, 1:])


def test_ram_loss_uses_lesson_04_reinforce(canvases):
    torch.manual_seed(0)
    ram = RecurrentAttentionModel(num_glimpses=3).train()
    out = ram(canvases.images, generator=torch.Generator().manual_seed(1))
    total, parts = ram_loss(out, canvases.labels)
    reward = (out.logits.argmax(-1) == canvases.labels).float()
    expected = 3 * reinforce_loss(out.log_probs, reward[:, None].expand(-1, 3), out.baselines)
    assert parts["reinforce"] == pytest.approx(expected.item(), abs=1e-6)
    total.backward()
    assert ram.locator.weight.grad.abs().sum() > 0 and ram.baseline.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"labels must have shape \(16,\)"):
        ram_loss(out, canvases.labels[:3])


def test_cross_entropy_alone_does_not_train_the_locator(canvases):
    torch.manual_seed(0)
    ram = RecurrentAttentionModel(num_glimpses=3).train()
    out = ram(canvases.images, generator=torch.Generator().manual_seed(1))
    torch.nn.functional.cross_entropy(out.logits, canvases.labels).backward()
    assert ram.locator.weight.grad is None or ram.locator.weight.grad.abs().sum() == 0


def test_random_control_and_training_repeat(canvases):
    torch.manual_seed(0)
    rnd = RecurrentAttentionModel(num_glimpses=3, random_locations=True)
    out = rnd(canvases.images, generator=torch.Generator().manual_seed(2))
    assert (out.log_probs == 0).all() and out.locations[:, 1:].abs().max() <= 1
    logs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = RecurrentAttentionModel(num_glimpses=2)
        logs.append(train_ram(m, canvases.images, canvases.labels, steps=3, batch_size=8, progress=False).loss)
    assert logs[0] == logs[1]
    torch.manual_seed(0)
    cnn = ClutterCNN((4, 4, 4))
    log = train_cnn(cnn, canvases.images, canvases.labels, steps=2, batch_size=8, progress=False)
    assert len(log.loss) == 2 and 0.0 <= accuracy(cnn, canvases.images, canvases.labels) <= 1.0


def test_ram_bad_input():
    with pytest.raises(ValueError, match="num_glimpses must be a positive int"):
        RecurrentAttentionModel(num_glimpses=0)
    with pytest.raises(ValueError, match=r"images must have 4 dimensions \(B, 1, H, W\), got shape \(2, 40, 40\)"):
        RecurrentAttentionModel()(torch.rand(2, 40, 40))
