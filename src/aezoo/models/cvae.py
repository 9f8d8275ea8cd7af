"""The conditional variational autoencoder.

Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep Conditional Generative
Models" (NeurIPS 2015). With a one-hot label y joined to the encoder's input and to z before the
decoder, the conditional ELBO (nats per example) is
    -L(x|y) = -E_{q(z|x,y)}[log p(x|z,y)] + KL(q(z|x,y) || N(0, I)).
Because the decoder sees y, z need not carry the class: it keeps the "style", and decoding one z
with another y changes the class only.

The ELBO terms, the importance-weighted bound and the evaluation are the VAE's (they pass y on);
this file changes how y enters the encoder and the decoder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import check
from ..errors import ConfigError, DataError
from ..nn.distributions import DiagonalGaussian
from ..nn.nets import decoder_for, encoder_for
from ..registry import register
from .vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    num_classes: int = 10  # set from the data by `aezoo train`

    def __post_init__(self):
        super().__post_init__()
        check(self.num_classes >= 2, "num_classes", f"must be >= 2, got {self.num_classes}")


@register("cvae")
class CVAE(VAE):
    Config = CVAEConfig
    needs_labels = True

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        c = config
        k = c.num_classes
        # the VAE's networks, rebuilt wider to take the one-hot label
        if c.arch == "conv":  # y enters as k constant channels
            enc_shape = (c.input_shape[0] + k, *c.input_shape[1:])
        else:  # y enters as k more inputs
            enc_shape = (math.prod(c.input_shape) + k,)
        self.encoder = encoder_for(c, 2 * c.latent_dim, input_shape=enc_shape)
        self.decoder = decoder_for(c, c.latent_dim + k)

    def one_hot(self, y) -> torch.Tensor:
        k = self.config.num_classes
        if y is None:
            raise DataError(f"model {self.name!r} needs class labels y")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ConfigError(f"label out of range: this model knows classes 0..{k - 1}, got {int(y.min())}..{int(y.max())}")
        return F.one_hot(y.long(), k).float()  # (B, K)

    def _join_x(self, x, y) -> torch.Tensor:
        h = self.one_hot(y)
        if self.config.arch == "conv":
            return torch.cat([x, h[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)  # (B, C+K, H, W)
        return torch.cat([x.flatten(1), h], 1)  # (B, prod(input_shape) + K)

    def _join_z(self, z, y) -> torch.Tensor:
        h = self.one_hot(y)
        return torch.cat([z, h.expand(*z.shape[:-1], -1)], -1)  # (..., D + K)

    # --- the latent-variable interface, now conditioned on y --------------------------------------
    def posterior(self, x, y=None) -> DiagonalGaussian:
        mu, logvar = self.encoder(self._join_x(x, y)).chunk(2, dim=-1)  # (B, D) each
        return DiagonalGaussian(mu, logvar)

    def log_likelihood(self, z, x, y=None) -> torch.Tensor:
        """log p(x|z, y) for z of shape (K, B, D) -> (K, B)."""
        k, b = z.shape[:2]
        params = self.decoder(self._join_z(z, y).reshape(k * b, -1)).view(k, b, *x.shape[1:])
        return self.likelihood.log_prob(params, x, batch_dims=2)

    def encode(self, x, y=None):
        return self.posterior(x, y).mu

    def decode(self, z, y=None):
        return self.likelihood.mean(self.decoder(self._join_z(z, y)))

    @torch.no_grad()
    def infer_label(self, x) -> torch.Tensor:
        """argmax_y of the conditional ELBO at the posterior mean: the class whose decoder explains x
        best (Bayes' rule with a uniform p(y)); used to encode inputs whose label is not given."""
        scores = []
        for c in range(self.config.num_classes):
            y = torch.full((x.shape[0],), c, dtype=torch.long, device=x.device)
            q = self.posterior(x, y)
            scores.append(self.log_likelihood(q.mu[None], x, y)[0] - q.kl())
        return torch.stack(scores, 1).argmax(1)  # (B,)

    def sample(self, n, y=None, like=None):
        """n draws of class y (a label per draw; random classes if None). With ``like`` (inputs), z is
        their posterior mean, so the outputs keep their style and take the class y."""
        dev = self.device
        if y is None:
            y = torch.randint(self.config.num_classes, (n,), device=dev)
        y = y.to(dev).long().expand(n) if y.numel() == 1 else y.to(dev).long()
        if like is None:
            z = torch.randn(n, self.config.latent_dim, device=dev)
        else:
            shape = tuple(self.config.input_shape)
            if like.numel() % math.prod(shape):
                raise DataError(f"--like inputs of shape {tuple(like.shape)} do not fit the model's input shape {shape}")
            x = like.to(dev).float().reshape(-1, *shape)
            x = x[torch.arange(n, device=dev) % x.shape[0]]  # cycle the given inputs to n
            z = self.posterior(x, self.infer_label(x)).mu
        return self.decode(z, y)

    def eval_metrics(self, x, y=None, **options):
        out = super().eval_metrics(x, y, **options)
        if "nll_iw" in out:  # every bound here is conditional: -log p(x|y)
            out["cond_nll_iw"] = out.pop("nll_iw")
        return out
