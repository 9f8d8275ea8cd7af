"""The conditional variational autoencoder.

Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep Conditional Generative
Models" (NeurIPS 2015). With the encoder q(z|x,y) and the decoder p(x|z,y) both reading a one-hot
label y, the conditional ELBO (nats per example) is
    -L(x|y) = -E_{q(z|x,y)}[log p(x|z,y)] + KL(q(z|x,y) || N(0, I)).
Because the decoder sees y, z need not carry the class: it keeps the "style", and decoding one z
with another y changes the class only.

Choices of ours (issue 11): y modulates every layer of both networks by FiLM (Perez et al. 2018,
see ``nn.nets``), not only their inputs, and z has 32 dimensions. Joined to the inputs alone, y was
10 of the decoder's 26 inputs and the decoder read the class from z as much as from y: after 5 epochs
on Fashion-MNIST, 52% of the samples were of the asked class (by a CNN trained on the real images,
88% accurate on them). A bias from y at every layer gave 79%, FiLM 85%, FiLM with 32 dimensions 88.5%
(one seed each); a narrower z did not help (with the bias, 8 dimensions gave 74%, 16 gave 79%).

Issue 24: that judge was the members' own ConvEncoder; an independent one (``evaluate/fidelity.py``: a
max-pooling CNN with its own seed, 89.4% on real test images) found 79.2% / 75.9% / 71.8% of the
samples in the asked class at latent 32 / 16 / 2 after 5 epochs: 89% / 85% / 80% of its accuracy.
Measured levers (5 epochs, one seed, shares of the judge's accuracy at latent 16 unless said):
sampling temperature 0.8 / 0.6: 88% / 89% (and 86% / 90% at latent 2); 10 epochs: 90.5%; Sohn et al.'s
hybrid objective (sec. 4.2, ``gsnn_weight`` = 1 - alpha) 0.5: 96% at every size but the samples
collapse to one image per class (within-class spread 0.16 of the data's; 0.2: 92.5%, spread 0.32);
a KL weight ``beta`` = 2: 92% at latent 16 and 88.5% at latent 2 (80% before), spread 0.98 and
1.05 of the data's. So the defaults weight the KL by beta = 2 (a choice of ours, not the paper's): a
dearer z keeps less of what y already says, and prior draws decode to the asked class. At the CLI's
10 epochs that gives 93.4% / 94.9% / 93.8% of the judge's accuracy at latent 2 / 16 / 32, spread 1.0.
``neg_elbo`` (the evaluation's and the logged term) stays the unweighted bound.

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
from .base import Claim, ConditionalModel, ModelOutput
from .vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    latent_dim: int = 32
    num_classes: int = 10  # set from the data by `aezoo train`
    beta: float = 2.0  # weight of the KL term in the loss (1: the ELBO); 2 since issue 24, see above
    gsnn_weight: float = 0.0  # 1 - alpha of Sohn et al.'s hybrid objective (sec. 4.2); 0 = the plain CVAE

    def __post_init__(self):
        super().__post_init__()
        check(self.num_classes >= 2, "num_classes", f"must be >= 2, got {self.num_classes}")
        check(0 <= self.gsnn_weight <= 1, "gsnn_weight", f"must be in [0, 1], got {self.gsnn_weight}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.beta == 1 or self.iw_samples == 1, "iw_samples", "a KL weight beta != 1 has no importance-weighted form here; use iw_samples=1")


@register("cvae")
class CVAE(ConditionalModel, VAE):
    Config = CVAEConfig
    sample_options = ("like",)
    claims = (Claim("Sohn, Lee & Yan 2015",
                    "The label y decides the class of a sample: an independent classifier trained on real data finds the "
                    "asked class in the samples at >= 90% of its accuracy on real test inputs (class_fidelity_share), the "
                    "samples of one class vary about as much as the data do (class_diversity near 1), and decoding an input's "
                    "code with another label keeps its style.",
                    ("class_fidelity_share", "class_fidelity", "fidelity_classifier_acc", "class_diversity", "cond_nll_iw"),
                    figure="class_samples"),)

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        c = config
        # the VAE's networks, rebuilt so that the one-hot label modulates every layer
        self.encoder = encoder_for(c, 2 * c.latent_dim, cond_dim=c.num_classes)
        self.decoder = decoder_for(c, cond_dim=c.num_classes)

    def forward(self, x, y=None) -> ModelOutput:
        out = super().forward(x, y)
        if self.config.beta != 1:
            out = ModelOutput(loss=out.terms["recon"] + self.config.beta * out.terms["kl"], terms=out.terms, z=out.z)
        w = self.config.gsnn_weight
        if w == 0:
            return out
        # Sohn et al. 2015, sec. 4.2: alpha L_CVAE + (1 - alpha) L_GSNN, L_GSNN = log p(x | z, y) with z drawn
        # from the prior, as at generation time (one sample)
        z = torch.randn(1, x.shape[0], self.config.latent_dim, device=x.device, dtype=x.dtype)
        gsnn = -self.log_likelihood(z, x, y)[0].mean()
        return ModelOutput(loss=(1 - w) * out.loss + w * gsnn, terms={**out.terms, "gsnn_nll": gsnn}, z=out.z)

    def one_hot(self, y) -> torch.Tensor:
        k = self.config.num_classes
        if y is None:
            raise DataError(f"model {self.name!r} needs class labels y")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ConfigError(f"label out of range: this model knows classes 0..{k - 1}, got {int(y.min())}..{int(y.max())}")
        return F.one_hot(y.long(), k).float()  # (B, K)

    # --- the latent-variable interface, now conditioned on y --------------------------------------
    def posterior(self, x, y=None) -> DiagonalGaussian:
        mu, logvar = self.encoder(x, self.one_hot(y)).chunk(2, dim=-1)  # (B, D) each
        return DiagonalGaussian(mu, logvar)

    def log_likelihood(self, z, x, y=None) -> torch.Tensor:
        """log p(x|z, y) for z of shape (K, B, D) -> (K, B)."""
        k, b = z.shape[:2]
        h = self.one_hot(y)  # (B, K_classes), the same label for each of the K samples
        params = self.decoder(z.reshape(k * b, -1), h.repeat(k, 1)).view(k, b, *x.shape[1:])
        return self.likelihood.log_prob(params, x, batch_dims=2)

    def encode(self, x, y=None):
        return self.posterior(x, y).mu

    def decode(self, z, y=None):
        h = self.one_hot(y)
        return self.likelihood.mean(self.decoder(z, h.expand(z.shape[0], -1)))

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
