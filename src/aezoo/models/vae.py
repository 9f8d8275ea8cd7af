"""The variational autoencoder.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv:1312.6114.
Objective (the negative ELBO, in nats per example):
    -L(x) = -E_{q(z|x)}[log p(x|z)] + KL(q(z|x) || N(0, I)),  q = N(mu(x), diag sigma^2(x)),
with z = mu + sigma * eps (reparameterisation), the KL in closed form (appendix B) and the
expectation estimated with L Monte Carlo samples. Summed over data dimensions, averaged over the
batch; the KL carries no hidden batch or dataset weighting.
Option ``iw_samples=K``: train on the importance-weighted bound instead, Burda, Grosse &
Salakhutdinov 2016, "Importance Weighted Autoencoders", arXiv:1509.00519:
    L_K(x) = E_{z_1..K ~ q} log (1/K) sum_k p(x, z_k) / q(z_k|x)   (L_1 is the ELBO).
The decoder's p(x|z) is a Bernoulli (a normalised likelihood on binary data only: ``likelihood_note``
in the evaluation says what the numbers are), the continuous Bernoulli of Loaiza-Ganem & Cunningham
2019 (a density on [0, 1]) or a Gaussian (``nn.likelihoods``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import check
from ..nn.distributions import DiagonalGaussian, log_mean_exp, standard_normal_log_prob
from ..nn.likelihoods import make_likelihood
from ..nn.nets import decoder_for, encoder_for
from ..registry import register
from .base import Claim, LatentVariableModel, ModelConfig, ModelOutput


@dataclass
class VAEConfig(ModelConfig):
    likelihood: Literal["bernoulli", "continuous_bernoulli", "gaussian"] = "bernoulli"
    sigma: float = 1.0  # Gaussian decoder's standard deviation (its initial value if learned)
    learn_sigma: bool = False
    sigma_per_feature: bool = False  # with learn_sigma: one sigma per input feature (a learned diagonal variance)
    mc_samples: int = 1  # L in the paper
    iw_samples: int = 1  # K > 1 trains on the importance-weighted bound (Burda et al. 2016) instead

    def __post_init__(self):
        super().__post_init__()
        check(self.sigma > 0, "sigma", f"must be > 0, got {self.sigma}")
        check(self.mc_samples >= 1, "mc_samples", f"must be >= 1, got {self.mc_samples}")
        check(self.iw_samples >= 1, "iw_samples", f"must be >= 1, got {self.iw_samples}")
        check(not self.sigma_per_feature or (self.learn_sigma and self.likelihood == "gaussian"), "sigma_per_feature",
              "needs likelihood=gaussian and learn_sigma=true")


@register("vae")
class VAE(LatentVariableModel):
    Config = VAEConfig
    generative = True
    likelihood_field = "likelihood"
    score_kinds = ("elbo", "nll_iw", "recon")
    # Until the decoder can use z, the KL term wins and the posterior sits on the prior. On the 8x8
    # digits (the fallback of `--data auto`) 10 epochs are 110 steps: KL 0.13 nats, nothing encoded
    # (KL warm-up or a 3x lr do not fix that: the decoder has not learned yet). 1,000 steps give
    # 4 active units and digit-like samples; on Fashion-MNIST 10 epochs are 4,220 steps already.
    train_defaults = {"min_steps": 1000}
    claims = (Claim("Kingma & Welling 2014",
                    "The ELBO bounds log p(x) from below (neg_elbo above nll_iw, which the importance-weighted bound tightens), "
                    "the codes fill the N(0, I) prior (agg_var near 1) with several active units, and prior samples look like the data.",
                    ("neg_elbo", "nll_iw", "kl", "active_units", "agg_var"), figure="samples"),)

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c = config
        self.encoder = encoder_for(c, 2 * c.latent_dim)
        self.decoder = decoder_for(c)
        self.likelihood = make_likelihood(c.likelihood, c.sigma, c.learn_sigma, tuple(c.input_shape) if c.sigma_per_feature else None)

    # --- the latent-variable interface shared with evaluation (ELBO, IWAE bound) ----------------
    def posterior(self, x, y=None) -> DiagonalGaussian:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, D) each
        return DiagonalGaussian(mu, logvar)

    def log_likelihood(self, z, x, y=None) -> torch.Tensor:
        """log p(x|z) for z of shape (K, B, D) -> (K, B)."""
        k, b = z.shape[:2]
        params = self.decoder(z.reshape(k * b, -1)).view(k, b, *x.shape[1:])
        return self.likelihood.log_prob(params, x, batch_dims=2)

    def prior_log_prob(self, z) -> torch.Tensor:
        return standard_normal_log_prob(z, batch_dims=z.dim() - 1)

    # --- the model contract ------------------------------------------------------------------
    def encode(self, x, y=None):
        return self.posterior(x).mu

    def decode(self, z, y=None):
        return self.likelihood.mean(self.decoder(z))

    def sample(self, n, y=None):
        z = torch.randn(n, self.config.latent_dim, device=self.device)
        return self.decode(z)

    def elbo_terms(self, x, y=None) -> tuple[torch.Tensor, torch.Tensor, DiagonalGaussian, torch.Tensor]:
        """Per-example reconstruction NLL and KL, the posterior, and one z sample (B, D)."""
        q = self.posterior(x, y)
        z = q.rsample(self.config.mc_samples)  # (L, B, D)
        recon = -self.log_likelihood(z, x, y).mean(0)  # (B,)
        return recon, q.kl(), q, z[0]

    def iw_terms(self, x, y=None, k: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For K samples z_k ~ q(z|x): log p(x|z_k) and log p(z_k) - log q(z_k|x), each (K, B), with
        gradients; their sum is the log importance weight log w_k of Burda et al. 2016, eq. 8."""
        q = self.posterior(x, y)
        z = q.rsample(k)  # (K, B, D)
        return self.log_likelihood(z, x, y), self.prior_log_prob(z) - q.log_prob(z), z

    def forward(self, x, y=None) -> ModelOutput:
        if self.config.iw_samples > 1:
            log_px_z, log_ratio, z = self.iw_terms(x, y, self.config.iw_samples)
            loss = -log_mean_exp(log_px_z + log_ratio, 0).mean()  # -L_K, the IWAE bound
            return ModelOutput(loss=loss, terms={"neg_iw_bound": loss}, z=z[0])
        recon, kl, q, z = self.elbo_terms(x, y)
        recon, kl = recon.mean(), kl.mean()
        loss = recon + kl
        return ModelOutput(loss=loss, terms={"recon": recon, "kl": kl, "neg_elbo": loss}, z=z)

    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        # the ELBO, the IWAE bound and active units are evaluation's, for every LatentVariableModel
        return {"likelihood_note": self.likelihood.note(x)}
