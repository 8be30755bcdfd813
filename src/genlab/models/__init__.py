"""Model families and their registry (config name → classes)."""

from __future__ import annotations

from genlab.config import MODEL_CONFIGS, Config
from genlab.errors import ConfigError
from genlab.models.base import GenerativeModel
from genlab.models.cvae import CVAE, CVAEConfig
from genlab.models.gan import GAN, GANConfig
from genlab.models.vae import VAE, VAEConfig

#: model.family → model class
MODELS: dict[str, type[GenerativeModel]] = {"vae": VAE, "cvae": CVAE, "gan": GAN}
MODEL_CONFIGS.update({"vae": VAEConfig, "cvae": CVAEConfig, "gan": GANConfig})


def build_model(config: Config) -> GenerativeModel:
    """Instantiate the model of ``config.model.family``."""
    try:
        cls = MODELS[config.model.family]
    except KeyError:
        raise ConfigError(f"config key 'model.family': got {config.model.family!r}; "
                          f"allowed: {', '.join(sorted(MODELS))}") from None
    return cls(config)
