"""Lesson 15: generating digits with a self-attention GAN, and looking with recurrent glimpses.

One topic per submodule, all re-exported here:

- ``article``: the tutorial article's ``AttentionGAN``, reproduced with its two faults;
- ``data``: scikit-learn's digits upscaled to 16x16 in [-1, 1];
- ``gan``: a DCGAN-style generator and discriminator with an optional SAGAN layer (Zhang et al. 2019), hinge loss;
- ``fid``: the judge classifier, the Fréchet distance on its features (Heusel et al. 2017), class coverage;
- ``glimpse``: the multi-scale glimpse sensor (retina) of Mnih et al. 2014;
- ``ram``: the recurrent attention model with REINFORCE and a baseline, and its two controls.
"""

from course_lib.generation.article import ArticleAttentionGAN
from course_lib.generation.data import upscaled_digits
from course_lib.generation.fid import (
    DigitClassifier,
    DigitFeatures,
    class_coverage,
    frechet_distance,
    train_digit_classifier,
)
from course_lib.generation.gan import Discriminator, GANHistory, Generator, hinge_d_loss, hinge_g_loss, train_gan
from course_lib.generation.glimpse import glimpse_sensor, location_to_pixel
from course_lib.generation.ram import (
    ClutterCNN,
    RAMOutput,
    RecurrentAttentionModel,
    TrainLog,
    accuracy,
    ram_loss,
    train_cnn,
    train_ram,
)

__all__ = [
    "ArticleAttentionGAN",
    "upscaled_digits",
    "DigitClassifier",
    "DigitFeatures",
    "frechet_distance",
    "class_coverage",
    "train_digit_classifier",
    "Generator",
    "Discriminator",
    "hinge_d_loss",
    "hinge_g_loss",
    "GANHistory",
    "train_gan",
    "glimpse_sensor",
    "location_to_pixel",
    "RecurrentAttentionModel",
    "RAMOutput",
    "ram_loss",
    "ClutterCNN",
    "TrainLog",
    "train_ram",
    "train_cnn",
    "accuracy",
]
